"""A hosted form in a real browser (Debian's Chromium, driven by Playwright), embedded in a page of
another site (a second local HTTP server, so another origin): with JavaScript the script snippet
injects the form and posts it as JSON through CORS; without JavaScript the plain HTML snippet posts
itself and the browser lands on the thank-you page. Both submissions arrive with their UTM fields."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import sync_playwright

from leadflow.capture.models import form_submissions
from tests.support import databases
from tests.support.server import LiveServer, free_port

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """Another origin: a plain static file server on its own port."""
    root = tmp_path_factory.mktemp("site")
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI installs Debian's chromium (.ci/run)")
        pytest.skip("needs Debian's chromium (/usr/bin/chromium): apt-get install chromium")
    workdir = tmp_path_factory.mktemp("forms")
    port = free_port()
    server = LiveServer(
        database_url=databases.migrated_copy("sqlite", workdir),
        workdir=workdir,
        port=port,
        env={"LEADFLOW_BASE_URL": f"http://127.0.0.1:{port}"},
    )
    server.start()
    yield server
    server.stop()


def _submissions(live: LiveServer) -> list[Any]:
    engine = sa.create_engine(live.database_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(sa.select(form_submissions).order_by(form_submissions.c.created_at)))
    finally:
        engine.dispose()


def test_form_embedded_on_another_site_with_and_without_javascript(
    live: LiveServer, site: tuple[str, Path]
) -> None:
    origin, root = site
    auth = {"Authorization": f"Bearer {live.admin_key}"}
    definition = {
        "name": "Course news",
        "fields": [
            {"name": "email", "label": "Email", "type": "email", "required": True},
            {"name": "first_name", "label": "First name", "required": True},
        ],
        "consent": {"text": "I agree to receive course news."},
        "allowed_origins": [origin],
        "thank_you": "Thanks for signing up!",
    }
    created = httpx.post(f"{live.url}/api/v1/forms", json=definition, headers=auth)
    assert created.status_code == 201, created.text
    form_id = created.json()["id"]
    snippets = httpx.get(f"{live.url}/api/v1/forms/{form_id}/embed", headers=auth).json()
    (root / "landing.html").write_text(f"<!doctype html><title>Courses</title>{snippets['script']}")
    (root / "plain.html").write_text(f"<!doctype html><title>Courses</title>{snippets['html']}")

    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{origin}/landing.html?utm_source=chromium&utm_campaign=launch")
            page.fill("input[name=email]", "ann@example.com")
            page.fill("input[name=first_name]", "Ann")
            page.click("button[type=submit]")  # without consent: the errors are shown, nothing is stored
            page.wait_for_selector(".lf-error", timeout=20_000)
            page.check("input[name=consent]")
            page.click("button[type=submit]")
            page.wait_for_selector("text=Thanks for signing up!", timeout=20_000)

            plain = browser.new_context(java_script_enabled=False).new_page()
            plain.goto(f"{origin}/plain.html")
            plain.fill("input[name=email]", "bob@example.com")
            plain.fill("input[name=first_name]", "Bob")
            plain.check("input[name=consent]")
            plain.click("button[type=submit]")
            plain.wait_for_selector("text=Thanks for signing up!", timeout=20_000)
            assert plain.url == f"{live.url}/f/{form_id}"
        finally:
            browser.close()

    ann, bob = _submissions(live)
    assert (ann.email, ann.utm) == ("ann@example.com", {"utm_source": "chromium", "utm_campaign": "launch"})
    assert ann.page_url == f"{origin}/landing.html?utm_source=chromium&utm_campaign=launch"
    assert ann.consent_text == "I agree to receive course news."
    assert bob.email == "bob@example.com"
    assert bob.consent_text == "I agree to receive course news."
    # no script: the browser's Referer says where it was (cross-site, Chromium sends the origin only)
    assert bob.page_url == f"{origin}/"
