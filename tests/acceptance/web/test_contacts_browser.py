"""The contacts pages in a real browser (Debian's Chromium, driven by Playwright) against the app served
by uvicorn in this process: a marketer searches, opens a contact, tags it from the keyboard (the tag
shows after the post), and the contact page holds at phone width — with no console error."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leadflow.contacts import service as contacts
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

PASSWORD = "a long marketer secret"


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[str]:
    with live_console(sqlite_url) as console:
        add_user(console.ctx, "Mia Marketer", "mia@example.com", "marketer", PASSWORD)
        for email, first, plan in (("ann@example.com", "Ann", "pro"), ("bob@example.com", "Bob", "free")):
            data = contacts.ContactUpsert(email=email, first_name=first, traits={"plan": plan})
            contacts.upsert(console.ctx, data, actor="test")
        console.start()
        yield console.url


def test_search_open_a_contact_and_tag_it(live: str) -> None:
    watch = Watch()
    with chromium() as browser:
        page = watch.page(browser.new_page(viewport=DESKTOP))
        sign_in(
            page, "mia@example.com", PASSWORD, login_url=live + "/app/login", landed="[data-kpi=contacts]"
        )
        page.get_by_role("link", name="Contacts", exact=True).click()
        page.get_by_label("Search").fill("bob")
        page.get_by_role("button", name="Filter").click()
        page.wait_for_selector("[data-total]")
        assert page.locator("[data-contact]").count() == 1
        assert page.locator('[data-contact="bob@example.com"]').count() == 1
        page.get_by_role("link", name="Bob").click()
        page.wait_for_selector("h1:has-text('Bob')")

        field = page.get_by_label("Add tags (comma-separated)")
        field.focus()
        page.keyboard.type("webinar, VIP")
        page.keyboard.press("Enter")  # the form posts from the keyboard
        page.wait_for_selector('[data-tag="vip"]')
        tags = page.locator("[data-tag]").evaluate_all("items => items.map(i => i.dataset.tag)")
        assert tags == ["vip", "webinar"]
        assert page.get_by_role("button", name="Remove tag vip").count() == 1
        assert page.locator(".note", has_text="Saved").count() == 1

        page.set_viewport_size(PHONE)  # a phone: nothing wider than the screen
        page.reload()
        assert_fits(page)
    assert watch.errors == []
