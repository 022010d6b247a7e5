"""``/docs`` and ``/redoc`` in a real browser (Debian's Chromium, driven by Playwright) with every request
to anywhere but leadflow refused: both pages still render the whole API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, Route, sync_playwright

from tests.support import databases
from tests.support.server import LiveServer

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI installs Debian's chromium (.ci/run)")
        pytest.skip("needs Debian's chromium (/usr/bin/chromium): apt-get install chromium")
    workdir = tmp_path_factory.mktemp("browser")
    server = LiveServer(database_url=databases.migrated_copy("sqlite", workdir), workdir=workdir)
    server.start()
    yield server
    server.stop()


def _render(live: LiveServer, path: str, selector: str) -> tuple[int, list[str], list[str]]:
    """Open the page with only leadflow reachable: how many ``selector`` it shows, what it asked leadflow
    for, and what it tried to fetch elsewhere."""
    asked: list[str] = []
    outside: list[str] = []

    def route(found: Route) -> None:
        url = found.request.url
        if url.startswith(live.url):
            asked.append(url.removeprefix(live.url))
            found.continue_()
        else:
            outside.append(url)
            found.abort()

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page: Page = browser.new_page()
            page.route("**/*", route)
            page.goto(live.url + path)
            page.wait_for_selector(selector, timeout=60_000)
            shown = page.locator(selector).count()
        finally:
            browser.close()
    return shown, asked, outside


def test_swagger_ui_renders_without_internet(live: LiveServer) -> None:
    shown, asked, outside = _render(live, "/docs", ".opblock-tag")
    assert shown >= 10  # one per router tag: contacts, segments, scoring, journeys, ...
    assert "/docs-assets/swagger-ui-bundle.js" in asked
    assert "/openapi.json" in asked
    assert outside == []


def test_redoc_renders_without_internet(live: LiveServer) -> None:
    shown, asked, outside = _render(live, "/redoc", "[data-section-id]")
    assert shown >= 50  # a section per operation
    assert "/docs-assets/redoc.standalone.js" in asked
    assert outside == []  # the Redocly logo is kept out by the page's Content-Security-Policy
