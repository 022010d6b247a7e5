"""The email editor in a real browser (Debian's Chromium, driven by Playwright) against the app served by
uvicorn in this process: a marketer signs in, previews a template for a contact (the sandboxed frame
shows the email rendered with the contact's name), edits the subject and body, previews the draft into
the frame without saving, saves, and sees the saved version previewed — with no console error, and
no horizontal scroll at phone width."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leadflow.contacts.processor import EventProcessor
from leadflow.messaging import templates
from tests.support import events as ingest
from tests.support.console_browser import (
    DESKTOP,
    PHONE,
    Watch,
    add_user,
    assert_fits,
    chromium,
    live_console,
    sign_in,
)

PASSWORD = "a long marketer secret"


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[str]:
    with live_console(sqlite_url) as console:
        ctx = console.ctx
        add_user(ctx, "Mia Marketer", "mia@example.com", "marketer", PASSWORD)
        ingest.send(
            ctx,
            {"type": "identify", "userId": "u1", "traits": {"email": "ada@example.com", "first_name": "Ada"}},
        )
        EventProcessor(ctx).drain()
        fields = templates.TemplateCreate(
            key="welcome",
            name="Welcome",
            subject="Welcome, {{ contact.first_name }}",
            html="<h2 style='color:#0b5cad'>Hello {{ contact.first_name }}</h2>",
        )
        templates.create(ctx, fields, actor="test")
        console.start()
        yield console.url


def test_edit_a_template_and_preview_it_for_a_contact(live: str) -> None:
    watch = Watch()
    with chromium() as browser:
        page = watch.page(browser.new_page(viewport=DESKTOP))
        sign_in(page, "mia@example.com", PASSWORD, login_url=live + "/app/login")
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

        page.set_viewport_size(PHONE)
        page.reload()
        assert_fits(page)  # the page does not scroll sideways at phone width
    assert watch.errors == []
