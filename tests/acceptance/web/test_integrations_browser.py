"""The Integrations pages in a real browser (Debian's Chromium, driven by Playwright) against the app
served by uvicorn in this process: an admin creates an API key and sees its secret once (not after a
reload, and the key works against the API), and a form's page shows its embed snippets with Copy
buttons that the page's script reveals and that copy the snippet — with no console error."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from playwright.sync_api import Page, sync_playwright

from leadflow.api.app import create_app
from leadflow.capture import service as capture
from leadflow.crm import service as crm
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context
from leadflow.web import service as web
from tests.support import databases
from tests.support.server import free_port

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
PASSWORD = "a long admin secret"


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[tuple[str, str]]:
    """The served app and the id of a form."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI installs Debian's chromium (.ci/run)")
        pytest.skip("needs Debian's chromium (/usr/bin/chromium): apt-get install chromium")
    databases.empty_tables(sqlite_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    ctx = build_context(Settings(database_url=sqlite_url, secret_key="test-secret", base_url=url))
    admin = crm.create_user(
        ctx, crm.UserCreate(name="Ada Admin", email="ada@example.com", role="admin"), actor="test"
    )
    web.set_password(ctx, admin.id, PASSWORD, actor="test")
    fields = [{"name": "email", "label": "Email", "type": "email", "required": True}]
    form = capture.create(ctx, capture.FormFields(name="Newsletter", fields=fields), actor="test")
    server = uvicorn.Server(uvicorn.Config(create_app(ctx, run_worker=False), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.05)
    yield url, form.id
    server.should_exit = True
    thread.join(10)
    ctx.close()


def test_api_key_secret_seen_once_and_snippet_copy_buttons(live: tuple[str, str]) -> None:
    url, form_id = live
    errors: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
            page: Page = context.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/app/login")
            page.get_by_label("Email").fill("ada@example.com")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("h1")
            page.get_by_role("link", name="Integrations", exact=True).click()
            page.get_by_role("link", name="API keys").first.click()
            page.get_by_label("Name").fill("Zapier")
            page.get_by_label("write").check()
            page.get_by_role("button", name="Create key").click()
            secret = page.get_by_label("Secret key").input_value()
            assert secret.startswith("lf_")
            assert page.get_by_role("button", name="Copy").is_visible()
            page.get_by_role("button", name="Copy").click()
            page.wait_for_selector(".once .copied:has-text('Copied')")
            assert page.evaluate("navigator.clipboard.readText()") == secret
            answer = httpx.get(f"{url}/api/v1/forms", headers={"Authorization": f"Bearer {secret}"})
            assert answer.status_code == 200

            page.goto(url + "/app/integrations/keys")  # again: the secret is not shown
            assert page.locator("[data-secret]").count() == 0
            assert secret not in page.content()
            assert page.locator("tr[data-key]", has_text="Zapier").count() == 1

            page.goto(f"{url}/app/integrations/forms/{form_id}")
            script = page.locator("#snippet-script").input_value()
            assert f'data-leadflow-form="{form_id}"' in script
            button = page.get_by_role("button", name="Copy script snippet")
            assert button.is_visible()
            assert page.get_by_role("button", name="Copy HTML snippet").is_visible()
            button.click()
            page.wait_for_selector("section .copied:has-text('Copied')")
            assert page.evaluate("navigator.clipboard.readText()") == script
            page.set_viewport_size({"width": 375, "height": 800})  # a phone: nothing wider than the screen
            for path in (f"/app/integrations/forms/{form_id}", "/app/integrations/keys"):
                page.goto(url + path)
                assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0, path
        finally:
            browser.close()
    assert errors == []
