"""The reports area in a real browser (Debian's Chromium, driven by Playwright) against the app served by
uvicorn in this process: a marketer signs in, opens Reports from the menu, downloads the KPIs' CSV,
creates an alert rule and schedules a digest from the keyboard (plain forms), and sees them listed —
with no console error, and no horizontal scroll at phone width."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, sync_playwright

from leadflow.api.app import create_app
from leadflow.crm import service as crm
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context
from leadflow.web import service as web
from tests.support import databases
from tests.support.server import free_port

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PASSWORD = "a long marketer secret"


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[str]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI installs Debian's chromium (.ci/run)")
        pytest.skip("needs Debian's chromium (/usr/bin/chromium): apt-get install chromium")
    databases.empty_tables(sqlite_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ctx = build_context(Settings(database_url=sqlite_url, secret_key="test-secret", base_url=url))
    user = crm.create_user(
        ctx, crm.UserCreate(name="Mia Marketer", email="mia@example.com", role="marketer"), actor="test"
    )
    web.set_password(ctx, user.id, PASSWORD, actor="test")
    server = uvicorn.Server(uvicorn.Config(create_app(ctx, run_worker=False), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    yield url
    server.should_exit = True
    thread.join(10)
    ctx.close()


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert width <= 0, page.url


def test_download_a_report_create_an_alert_and_a_digest(live: str) -> None:
    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page: Page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(live + "/app/login")
            page.get_by_label("Email").fill("mia@example.com")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("h1")
            page.get_by_role("link", name="Reports", exact=True).first.click()
            assert page.locator("h1").inner_text() == "Reports"
            with page.expect_download() as download:
                page.locator('[data-csv="kpis"]').click()
            saved = Path(download.value.path())
            assert saved.read_text().splitlines()[0].startswith("figure,")

            page.get_by_role("link", name="Alerts").click()
            page.get_by_label("Name", exact=True).fill("Complaints")
            page.get_by_label("Figure", exact=True).select_option("complaint_rate")
            page.get_by_label("Mia Marketer (mia@example.com)").check()
            page.get_by_label("Name", exact=True).press("Enter")  # the keyboard submits the plain form
            page.wait_for_selector('[role="status"]')
            assert page.locator("[data-table=alert-rules] th[scope=row]").inner_text() == "Complaints"

            page.get_by_role("link", name="Email digests").click()
            page.get_by_label("Mia Marketer (mia@example.com, UTC)").check()
            page.get_by_role("button", name="Schedule digest").click()
            page.wait_for_selector('[role="status"]')
            assert "0 8 * * 1" in page.locator("[data-table=digests]").inner_text()

            page.set_viewport_size({"width": 375, "height": 800})
            for path in ("/app/reports", "/app/reports/alerts", "/app/reports/digests"):
                page.goto(live + path)
                _no_sideways_scroll(page)
        finally:
            browser.close()
    assert errors == []
