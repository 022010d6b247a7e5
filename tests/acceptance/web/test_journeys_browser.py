"""The journeys pages in a real browser (Debian's Chromium, driven by Playwright) against the app served
by uvicorn in this process: a marketer creates the welcome series from its template, sees its graph,
simulates it and reads the first rendered email in the page's frame, then publishes it — with no
console error and no request leaving leadflow; at phone width no page is wider than the screen."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leadflow.journeys import service as journeys
from leadflow.kernel.context import AppContext
from tests.support.console_browser import (
    DESKTOP,
    PHONE,
    Watch,
    add_user,
    assert_pages_fit,
    chromium,
    live_console,
    sign_in,
)

PASSWORD = "a long marketer secret"


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[tuple[str, AppContext]]:
    address = "1 Main St, Springfield"  # a marketing journey needs one to publish
    with live_console(sqlite_url, brand_address=address) as console:
        add_user(console.ctx, "Mia Marketer", "mia@example.com", "marketer", PASSWORD)
        console.start()
        yield console.url, console.ctx


def test_create_the_welcome_series_simulate_it_and_publish_it(live: tuple[str, AppContext]) -> None:
    url, ctx = live
    watch = Watch(home=url)
    with chromium() as browser:
        page = watch.page(browser.new_page(viewport=DESKTOP))
        sign_in(page, "mia@example.com", PASSWORD, login_url=url + "/app/login")

        page.goto(url + "/app/journeys")
        page.get_by_label("From a ready-made journey").select_option(label="Welcome series")
        page.get_by_role("button", name="Create from template").click()
        page.wait_for_selector("text=Journey created")
        assert page.locator("h1").inner_text() == "Welcome series"
        assert page.locator("[data-status]").inner_text() == "draft"
        assert page.locator('svg.journey-graph [data-node="send-welcome"]').count() == 1
        assert page.locator('svg.journey-graph [data-node="__end__"]').count() == 1

        page.get_by_role("link", name="Simulate").click()
        page.get_by_label("First name").fill("Sam")
        page.get_by_label("Run for").select_option("7d")
        page.get_by_role("button", name="Simulate", exact=True).click()
        page.wait_for_selector("[data-subject]", timeout=60_000)
        subjects = page.locator("[data-subject]").all_inner_texts()
        assert len(subjects) == 4
        assert subjects[0].endswith(", Sam")
        email = page.frame_locator("iframe.email-frame").first
        assert email.locator("h1").inner_text() == "Welcome, Sam!"

        page.get_by_role("link", name="Welcome series").click()
        page.get_by_role("button", name="Publish").click()
        page.wait_for_selector("text=Published")
        assert page.locator("[data-status]").inner_text() == "active"

        page.set_viewport_size(PHONE)  # a phone: nothing wider than the screen
        journey = page.url.split("?")[0]
        assert_pages_fit(
            page, "", (journey, journey + "/edit", journey + "/simulate", journey + "/versions/1")
        )
    assert journeys.get(ctx, "welcome-series").status == "active"
    assert watch.errors == []
    assert watch.outside == []
