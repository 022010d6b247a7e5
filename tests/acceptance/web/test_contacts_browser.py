"""The contacts pages in a real browser (Debian's Chromium, driven by Playwright) against the app served
by uvicorn in this process: a marketer searches, opens a contact, tags it from the keyboard (the tag
shows after the post), and the contact page holds at phone width — with no console error."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, sync_playwright

from leadflow.api.app import create_app
from leadflow.contacts import service as contacts
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
    marketer = crm.create_user(
        ctx, crm.UserCreate(name="Mia Marketer", email="mia@example.com", role="marketer"), actor="test"
    )
    web.set_password(ctx, marketer.id, PASSWORD, actor="test")
    for email, first, plan in (("ann@example.com", "Ann", "pro"), ("bob@example.com", "Bob", "free")):
        data = contacts.ContactUpsert(email=email, first_name=first, traits={"plan": plan})
        contacts.upsert(ctx, data, actor="test")
    server = uvicorn.Server(uvicorn.Config(create_app(ctx, run_worker=False), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    yield url
    server.should_exit = True
    thread.join(10)
    ctx.close()


def test_search_open_a_contact_and_tag_it(live: str) -> None:
    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page: Page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(live + "/app/login")
            page.get_by_label("Email").fill("mia@example.com")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("[data-kpi=contacts]")
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

            page.set_viewport_size({"width": 375, "height": 800})  # a phone: nothing wider than the screen
            page.reload()
            assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        finally:
            browser.close()
    assert errors == []
