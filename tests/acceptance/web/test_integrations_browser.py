"""The Integrations pages in a real browser (Debian's Chromium, driven by Playwright) against the app
served by uvicorn in this process: an admin creates an API key and sees its secret once (not after a
reload, and the key works against the API), and a form's page shows its embed snippets with Copy
buttons that the page's script reveals and that copy the snippet — with no console error."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from leadflow.capture import service as capture
from tests.support.console_browser import (
    DESKTOP,
    PHONE,
    Watch,
    add_user,
    assert_pages_fit,
    chromium,
    live_console,
    sign_in,
)

PASSWORD = "a long admin secret"


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[tuple[str, str]]:
    """The served app and the id of a form."""
    with live_console(sqlite_url) as console:
        add_user(console.ctx, "Ada Admin", "ada@example.com", "admin", PASSWORD)
        fields = [{"name": "email", "label": "Email", "type": "email", "required": True}]
        form = capture.create(console.ctx, capture.FormFields(name="Newsletter", fields=fields), actor="test")
        console.start()
        yield console.url, form.id


def test_api_key_secret_seen_once_and_snippet_copy_buttons(live: tuple[str, str]) -> None:
    url, form_id = live
    watch = Watch()
    with chromium() as browser:
        context = browser.new_context(viewport=DESKTOP)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
        page = watch.page(context.new_page())
        sign_in(page, "ada@example.com", PASSWORD, login_url=url + "/app/login")
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
        page.set_viewport_size(PHONE)  # a phone: nothing wider than the screen
        assert_pages_fit(page, url, (f"/app/integrations/forms/{form_id}", "/app/integrations/keys"))
    assert watch.errors == []
