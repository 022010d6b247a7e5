"""The console in a real browser: what every test under tests/acceptance/web shares.

The app is served by uvicorn in this process (a thread) on a free port against a fresh context; the
browser is Debian's Chromium (``/usr/bin/chromium``) driven by Playwright, never a downloaded one.
Without Chromium the browser tests are skipped, except in CI, which installs it (``.ci/run``) and
so fails instead. :class:`Watch` collects what a page must not do: log a console error, throw, or
(when fenced) ask anywhere but leadflow.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Route, ViewportSize, sync_playwright

from leadflow.api.app import create_app
from leadflow.crm import service as crm
from leadflow.crm.schemas import Role
from leadflow.kernel.clock import Clock
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context
from leadflow.web import service as web
from tests.support import databases
from tests.support.server import free_port

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 375, "height": 800}
WITHIN_WINDOW = "window.innerWidth"
WITHIN_CLIENT = "document.documentElement.clientWidth"  # the window less its scrollbar


def need_chromium() -> None:
    """Skip without Debian's Chromium — or fail in CI, which installs it."""
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI installs Debian's chromium (.ci/run)")
        pytest.skip("needs Debian's chromium (/usr/bin/chromium): apt-get install chromium")


@dataclass
class LiveConsole:
    """A fresh context on an emptied database, and the app it serves once :meth:`start` is called."""

    url: str
    port: int
    ctx: AppContext
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def start(self, *, run_worker: bool = False) -> None:
        """Serve the app (with the worker's threads if ``run_worker``) and wait until it listens."""
        app = create_app(self.ctx, run_worker=run_worker)
        self._server = uvicorn.Server(uvicorn.Config(app, port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            self._thread.join(0.05)

    def stop(self, timeout: float) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout)
        self._server = self._thread = None


@contextmanager
def live_console(
    sqlite_url: str, *, clock: Clock | None = None, stop_timeout: float = 10.0, **settings: Any
) -> Iterator[LiveConsole]:
    """A context whose base URL is a free port's, on ``sqlite_url`` emptied; extra ``settings`` go to
    :class:`Settings`. Stops the server (if started) and closes the context on the way out."""
    need_chromium()
    databases.empty_tables(sqlite_url)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = Settings(database_url=sqlite_url, secret_key="test-secret", base_url=url, **settings)
    live = LiveConsole(url, port, build_context(config, clock=clock))
    try:
        yield live
    finally:
        live.stop(stop_timeout)
        live.ctx.close()


def add_user(ctx: AppContext, name: str, email: str, role: Role, password: str) -> str:
    """A console user who can sign in with ``password``; their id."""
    user = crm.create_user(ctx, crm.UserCreate(name=name, email=email, role=role), actor="test")
    web.set_password(ctx, user.id, password, actor="test")
    return user.id


def first_start_link(banner: str) -> tuple[str, str]:
    """The admin's email and the set-your-password link in the first start's banner."""
    words = banner.split()
    return words[words.index("of") + 1], next(w for w in words if "/app/reset/" in w)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, closed on the way out."""
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watch:
    """What the watched pages did wrong: console errors and uncaught exceptions in ``errors``; with a
    ``home``, every request elsewhere is refused and kept in ``outside``."""

    home: str | None = None
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def page(self, page: Page) -> Page:
        page.on("console", self._console)
        page.on("pageerror", self._thrown)
        if self.home is not None:
            page.route("**/*", self._route)
        return page

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _thrown(self, error: Error) -> None:
        self.errors.append(str(error))

    def _route(self, route: Route) -> None:
        assert self.home is not None
        if route.request.url.startswith(self.home):
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()


def sign_in(
    page: Page, email: str, password: str, *, login_url: str | None = None, landed: str | None = "h1"
) -> None:
    """Sign in on the login page (opened first if ``login_url``); wait for ``landed`` if given."""
    if login_url is not None:
        page.goto(login_url)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    if landed is not None:
        page.wait_for_selector(landed)


def set_password_and_sign_in(page: Page, link: str, email: str, password: str) -> None:
    """Follow a set-your-password link (first start, invitation), set it, and sign in with it."""
    page.goto(link)
    page.get_by_label("New password", exact=True).fill(password)
    page.get_by_label("New password again").fill(password)
    page.get_by_role("button", name="Set password").click()
    page.wait_for_selector("text=Your password is set")
    sign_in(page, email, password, landed="[data-kpi=contacts]")


def overflow(page: Page, within: str = WITHIN_WINDOW) -> int:
    """How many pixels the document is wider than ``within`` (above 0: the page scrolls sideways)."""
    width: int = page.evaluate(f"document.documentElement.scrollWidth - {within}")
    return width


def assert_fits(page: Page, within: str = WITHIN_WINDOW) -> None:
    """The page as it is now does not scroll sideways."""
    width = overflow(page, within)
    assert width <= 0, f"{page.url} scrolls sideways by {width}px"


def assert_pages_fit(page: Page, url: str, paths: Iterable[str], within: str = WITHIN_WINDOW) -> None:
    """Each of ``paths`` (after ``url``), opened in turn, does not scroll sideways."""
    for path in paths:
        page.goto(url + path)
        assert_fits(page, within)
