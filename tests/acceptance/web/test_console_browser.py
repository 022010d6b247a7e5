"""The console in a real browser (Debian's Chromium, driven by Playwright) against the app served by
uvicorn in this process (a thread; ``leadflow serve`` prints the same link, tests/integration/web):
the first start's link sets the admin's password, the admin signs in, opens every page, invites a
user and signs out — with no console error and no request leaving leadflow; the layout holds at phone
width and the keyboard reaches the skip link first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from leadflow.web import service as web
from tests.support.console_browser import (
    DESKTOP,
    PHONE,
    Watch,
    assert_pages_fit,
    chromium,
    first_start_link,
    live_console,
    set_password_and_sign_in,
)

PASSWORD = "a long admin secret"
PAGES: tuple[str, ...]  # every console page; add yours below (add-only)
PAGES = ("/app/", "/app/users", "/app/account", "/app/crm/leads", "/app/crm/board")
PAGES += ("/app/contacts",)
PAGES += ("/app/journeys",)
PAGES += (
    "/app/integrations",
    "/app/integrations/keys",
    "/app/integrations/webhooks",
    "/app/integrations/incoming",
    "/app/integrations/connectors",
    "/app/integrations/forms",
)
PAGES += ("/app/segments", "/app/segments/new")
PAGES += ("/app/email", "/app/email/templates/new", "/app/email/layouts/new", "/app/email/broadcasts")
PAGES += ("/app/email/reports",)
PAGES += ("/app/reports",)
PAGES += ("/app/reports/alerts", "/app/reports/digests")


@dataclass
class Live:
    url: str
    banner: str


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[Live]:
    with live_console(sqlite_url) as console:
        banner = web.first_start_banner(console.ctx)
        assert banner is not None
        console.start()
        yield Live(console.url, banner)


def test_first_start_sign_in_every_page_and_sign_out(live: Live) -> None:
    email, link = first_start_link(live.banner)
    assert link.startswith(live.url + "/app/reset/")
    watch = Watch(home=live.url)
    with chromium() as browser:
        page = watch.page(browser.new_page(viewport=DESKTOP))
        set_password_and_sign_in(page, link, email, PASSWORD)
        for path in PAGES:
            answer = page.goto(live.url + path)
            assert answer is not None
            assert answer.status == 200, path
            assert page.locator("h1").count() == 1, path
        page.goto(live.url + "/app/users")
        page.get_by_label("Name").fill("Sam Sales")
        page.get_by_label("Email").fill("sam@example.com")
        page.get_by_label("Role", exact=True).select_option("sales")
        page.get_by_role("button", name="Send invitation").click()
        page.wait_for_selector("text=Invitation sent")
        assert page.locator('[data-user="sam@example.com"]').count() == 1

        page.set_viewport_size(PHONE)  # a phone: nothing wider than the screen
        assert_pages_fit(page, live.url, PAGES)
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"

        page.get_by_role("button", name="Sign out", exact=True).click()
        page.wait_for_selector("text=You are signed out")
        page.goto(live.url + "/app/users")
        assert "/app/login" in page.url
    assert watch.errors == []
    assert watch.outside == []
