"""The console in a real browser (Debian's Chromium, driven by Playwright) against the app served by
uvicorn in this process (a thread; ``leadflow serve`` prints the same link, tests/integration/web):
the first start's link sets the admin's password, the admin signs in, opens every page, invites a
user and signs out — with no console error and no request leaving leadflow; the layout holds at phone
width and the keyboard reaches the skip link first."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, Route, sync_playwright

from leadflow.api.app import create_app
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context
from leadflow.web import service as web
from tests.support import databases
from tests.support.server import free_port

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PASSWORD = "a long admin secret"
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
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI installs Debian's chromium (.ci/run)")
        pytest.skip("needs Debian's chromium (/usr/bin/chromium): apt-get install chromium")
    databases.empty_tables(sqlite_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ctx = build_context(Settings(database_url=sqlite_url, secret_key="test-secret", base_url=url))
    banner = web.first_start_banner(ctx)
    assert banner is not None
    server = uvicorn.Server(uvicorn.Config(create_app(ctx, run_worker=False), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    yield Live(url, banner)
    server.should_exit = True
    thread.join(10)
    ctx.close()


def test_first_start_sign_in_every_page_and_sign_out(live: Live) -> None:
    words = live.banner.split()
    email = words[words.index("of") + 1]
    link = next(w for w in words if "/app/reset/" in w).removeprefix(live.url)
    errors: list[str] = []
    outside: list[str] = []

    def route(request: Route) -> None:
        if request.request.url.startswith(live.url):
            request.continue_()
        else:
            outside.append(request.request.url)
            request.abort()

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", route)
            page.goto(live.url + link)
            page.get_by_label("New password", exact=True).fill(PASSWORD)
            page.get_by_label("New password again").fill(PASSWORD)
            page.get_by_role("button", name="Set password").click()
            page.wait_for_selector("text=Your password is set")
            page.get_by_label("Email").fill(email)
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("[data-kpi=contacts]")
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

            page.set_viewport_size({"width": 375, "height": 800})  # a phone: nothing wider than the screen
            for path in PAGES:
                page.goto(live.url + path)
                width = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert width <= 0, path
            page.keyboard.press("Tab")
            assert page.evaluate("document.activeElement.textContent") == "Skip to content"

            page.get_by_role("button", name="Sign out", exact=True).click()
            page.wait_for_selector("text=You are signed out")
            page.goto(live.url + "/app/users")
            assert "/app/login" in page.url
        finally:
            browser.close()
    assert errors == []
    assert outside == []
