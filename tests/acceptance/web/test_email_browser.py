"""The email editor in a real browser (Debian's Chromium, driven by Playwright) against the app served by
uvicorn in this process: a marketer signs in, previews a template for a contact (the sandboxed frame
shows the email rendered with the contact's name), edits the subject and body, previews the draft into
the frame without saving, saves, and sees the saved version previewed — with no console error, and
no horizontal scroll at phone width."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, sync_playwright

from leadflow.api.app import create_app
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import service as crm
from leadflow.kernel.settings import Settings
from leadflow.messaging import templates
from leadflow.runtime.context import build_context
from leadflow.web import service as web
from tests.support import databases
from tests.support import events as ingest
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
    ingest.send(
        ctx, {"type": "identify", "userId": "u1", "traits": {"email": "ada@example.com", "first_name": "Ada"}}
    )
    EventProcessor(ctx).drain()
    fields = templates.TemplateCreate(
        key="welcome",
        name="Welcome",
        subject="Welcome, {{ contact.first_name }}",
        html="<h2 style='color:#0b5cad'>Hello {{ contact.first_name }}</h2>",
    )
    templates.create(ctx, fields, actor="test")
    server = uvicorn.Server(uvicorn.Config(create_app(ctx, run_worker=False), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    yield url
    server.should_exit = True
    thread.join(10)
    ctx.close()


def test_edit_a_template_and_preview_it_for_a_contact(live: str) -> None:
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
            page.wait_for_selector("h1")
            page.get_by_role("link", name="Email", exact=True).click()
            page.get_by_role("link", name="Welcome").click()

            page.get_by_label("Contact (email or id)").fill("ada@example.com")
            page.get_by_role("button", name="Preview", exact=True).click()
            assert page.locator("[data-subject]").inner_text() == "Welcome, Ada"
            frame = page.frame_locator('iframe[name="preview-frame"]')
            assert frame.locator("h2").inner_text() == "Hello Ada"

            page.get_by_label("Subject (Liquid)").fill("Good to see you, {{ contact.first_name }}")
            page.get_by_label("HTML (Liquid)").fill("<p>Dear {{ contact.first_name }}, news inside.</p>")
            page.get_by_role("button", name="Preview draft").click()  # into the frame, not saved
            assert frame.locator("p").inner_text() == "Dear Ada, news inside."
            assert page.locator("[data-subject]").inner_text() == "Welcome, Ada"  # the saved one

            page.get_by_role("button", name="Save").click()
            page.wait_for_selector("text=Saved (revision 2).")
            assert page.locator("[data-subject]").inner_text() == "Good to see you, Ada"
            assert frame.locator("p").inner_text() == "Dear Ada, news inside."

            page.set_viewport_size({"width": 375, "height": 800})
            page.reload()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, f"the page scrolls sideways at phone width ({width}px)"
        finally:
            browser.close()
    assert errors == []
