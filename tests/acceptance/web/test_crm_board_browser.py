"""The pipeline board in a real browser (Debian's Chromium, driven by Playwright) against the app served
by uvicorn in this process: a sales user signs in, sees every column at 1,280 px without scrolling
sideways, drags a deal card to the next column (it lands, the column totals follow, and it is still
there after a reload), drops another on "won" (the card asks for the reason instead of moving), moves
one with its keyboard form, and at phone width the columns scroll sideways inside the board, not the
page — with no console error."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from playwright.sync_api import Page, Position

from leadflow.crm import deals
from leadflow.crm import service as crm
from tests.support.console_browser import (
    DESKTOP,
    PHONE,
    Watch,
    add_user,
    assert_fits,
    chromium,
    live_console,
    sign_in,
)

PASSWORD = "a long seller secret"
GRIP: Position = {"x": 12, "y": 12}  # a card is dragged by its title, not by its form's controls


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """The served app, and the ids of the default pipeline's stages by name."""
    with live_console(sqlite_url) as console:
        ctx = console.ctx
        seller = add_user(ctx, "Sam Seller", "sam@example.com", "sales", PASSWORD)
        crm.ensure_default_pipeline(ctx)
        for title, value in (("Alpha course", "1000"), ("Beta course", "300"), ("Gamma course", "50")):
            data = deals.DealCreate(title=title, value=Decimal(value), currency="EUR", owner_id=seller)
            deals.create(ctx, data, actor="test")
        stages = {s.name: s.id for s in next(p for p in crm.list_pipelines(ctx) if p.is_default).stages}
        console.start()
        yield console.url, stages


def _in(page: Page, stage_id: str, title: str) -> int:
    return page.locator(f'.column[data-stage="{stage_id}"] .deal h3', has_text=title).count()


def test_drag_a_deal_to_the_next_column_and_move_another_with_the_keyboard(
    live: tuple[str, dict[str, str]],
) -> None:
    url, stages = live
    interest, booked, won = stages["interest"], stages["consultation booked"], stages["won"]
    watch = Watch()
    with chromium() as browser:
        page = watch.page(browser.new_page(viewport=DESKTOP))
        # a sales user lands on the leads
        sign_in(
            page,
            "sam@example.com",
            PASSWORD,
            login_url=url + "/app/login",
            landed='form[aria-label="Filter leads"]',
        )
        page.get_by_role("link", name="Pipeline").click()
        page.wait_for_selector(".board")
        assert _in(page, interest, "Alpha course") == 1
        # at 1,280 px the five columns fit: the page does not scroll sideways and each column is in view
        assert_fits(page)
        board = page.evaluate(
            "(r => [r.left, r.right])(document.getElementById('board').getBoundingClientRect())"
        )
        boxes = page.evaluate(
            "[...document.querySelectorAll('.column')].map(c => c.getBoundingClientRect())"
            ".map(r => [r.left, r.right, r.width])"
        )
        assert len(boxes) == 5
        assert board[0] >= 0
        assert board[1] <= 1280
        assert all(board[0] <= left and right <= board[1] and width > 100 for left, right, width in boxes)

        alpha = page.locator(".deal", has_text="Alpha course")
        page.drag_and_drop(
            f"#{alpha.get_attribute('id')}",
            f'.column[data-stage="{booked}"] .cards-list',
            source_position=GRIP,
        )
        page.wait_for_selector("text=Deal moved.")
        assert _in(page, booked, "Alpha course") == 1
        assert page.locator(f'.column[data-stage="{booked}"] [data-count]').inner_text() == "1"
        assert page.locator(f'.column[data-stage="{booked}"] [data-weighted]').inner_text() == "400.00 EUR"
        page.reload()
        assert _in(page, booked, "Alpha course") == 1
        assert _in(page, interest, "Alpha course") == 0

        beta = page.locator(".deal", has_text="Beta course")
        page.drag_and_drop(
            f"#{beta.get_attribute('id')}",
            f'.column[data-stage="{won}"] .cards-list',
            source_position=GRIP,
        )
        assert page.locator("#board-status").inner_text().startswith("Moving to “won” needs a reason")
        assert page.evaluate("document.activeElement.name") == "reason"
        page.keyboard.type("paid by card")
        page.keyboard.press("Tab")
        with page.expect_navigation():
            page.keyboard.press("Enter")  # the card's own Move button: a real POST
        assert _in(page, won, "Beta course") == 1

        page.get_by_label("Move Gamma course to").focus()
        page.get_by_label("Move Gamma course to").select_option(label="proposal")
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Move"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert _in(page, stages["proposal"], "Gamma course") == 1
        assert _in(page, interest, "Gamma course") == 0

        page.set_viewport_size(PHONE)  # a phone: the columns scroll, not the page
        assert_fits(page)
        assert page.evaluate("(b => b.scrollWidth > b.clientWidth)(document.getElementById('board'))")
    assert watch.errors == []
