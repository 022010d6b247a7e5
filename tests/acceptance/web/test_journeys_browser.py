"""The journeys pages in a real browser (Debian's Chromium, driven by Playwright) against the app served
by uvicorn in this process: a marketer creates the welcome series from its template, sees its graph,
simulates it and reads the first rendered email in the page's frame, then publishes it — with no
console error and no request leaving leadflow; at phone width no page is wider than the screen."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Route, sync_playwright

from leadflow.api.app import create_app
from leadflow.crm import service as crm
from leadflow.journeys import service as journeys
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context
from leadflow.web import service as web
from tests.support import databases
from tests.support.server import free_port

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PASSWORD = "a long marketer secret"


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[tuple[str, AppContext]]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI installs Debian's chromium (.ci/run)")
        pytest.skip("needs Debian's chromium (/usr/bin/chromium): apt-get install chromium")
    databases.empty_tables(sqlite_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    address = "1 Main St, Springfield"  # a marketing journey needs one to publish
    settings = Settings(
        database_url=sqlite_url, secret_key="test-secret", base_url=url, brand_address=address
    )
    ctx = build_context(settings)
    marketer = crm.create_user(
        ctx, crm.UserCreate(name="Mia Marketer", email="mia@example.com", role="marketer"), actor="test"
    )
    web.set_password(ctx, marketer.id, PASSWORD, actor="test")
    server = uvicorn.Server(uvicorn.Config(create_app(ctx, run_worker=False), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    yield url, ctx
    server.should_exit = True
    thread.join(10)
    ctx.close()


def test_create_the_welcome_series_simulate_it_and_publish_it(live: tuple[str, AppContext]) -> None:
    url, ctx = live
    errors: list[str] = []
    outside: list[str] = []

    def route(request: Route) -> None:
        if request.request.url.startswith(url):
            request.continue_()
        else:
            outside.append(request.request.url)
            request.abort()

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", route)
            page.goto(url + "/app/login")
            page.get_by_label("Email").fill("mia@example.com")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("h1")

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

            page.set_viewport_size({"width": 375, "height": 800})  # a phone: nothing wider than the screen
            journey = page.url.split("?")[0]
            for path in (journey, journey + "/edit", journey + "/simulate", journey + "/versions/1"):
                page.goto(path)
                assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, path
        finally:
            browser.close()
    assert journeys.get(ctx, "welcome-series").status == "active"
    assert errors == []
    assert outside == []
