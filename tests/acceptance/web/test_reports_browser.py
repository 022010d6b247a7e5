"""The reports area in a real browser (Debian's Chromium, driven by Playwright) against the app served by
uvicorn in this process: a marketer signs in, opens Reports from the menu, downloads the KPIs' CSV,
creates an alert rule and schedules a digest from the keyboard (plain forms), and sees them listed —
with no console error, and no horizontal scroll at phone width."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.console_browser import (
    DESKTOP,
    PHONE,
    WITHIN_CLIENT,
    Watch,
    add_user,
    assert_pages_fit,
    chromium,
    live_console,
    sign_in,
)

PASSWORD = "a long marketer secret"


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[str]:
    with live_console(sqlite_url) as console:
        add_user(console.ctx, "Mia Marketer", "mia@example.com", "marketer", PASSWORD)
        console.start()
        yield console.url


def test_download_a_report_create_an_alert_and_a_digest(live: str) -> None:
    watch = Watch()
    with chromium() as browser:
        page = watch.page(browser.new_page(viewport=DESKTOP, accept_downloads=True))
        sign_in(page, "mia@example.com", PASSWORD, login_url=live + "/app/login")
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

        page.set_viewport_size(PHONE)
        paths = ("/app/reports", "/app/reports/alerts", "/app/reports/digests")
        assert_pages_fit(page, live, paths, within=WITHIN_CLIENT)
    assert watch.errors == []
