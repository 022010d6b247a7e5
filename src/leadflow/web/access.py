"""Who is looking at a page: the signed-in user, their role, the CSRF check, and the page errors.

Roles (a CRM user's ``role``): ``admin`` may do everything; ``marketer`` works on contacts, segments,
journeys, email and reports; ``sales`` on the CRM (their leads); ``viewer`` reads and changes nothing.
A page states the areas it belongs to with :func:`page` (reading) or :func:`change` (writing); a role
outside them gets the 403 page. Every request that changes something (POST) carries the CSRF token.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates

from leadflow.crm import service as crm
from leadflow.kernel import inputs
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import LeadflowError
from leadflow.kernel.ratelimit import RateLimiter
from leadflow.web import sessions

ROLES = ("admin", "marketer", "sales", "viewer")
AREAS: dict[str, frozenset[str]] = {
    "dashboard": frozenset(ROLES),
    "account": frozenset(ROLES),  # one's own password and sessions
    "users": frozenset({"admin"}),
    "contacts": frozenset({"admin", "marketer", "viewer"}),
    "segments": frozenset({"admin", "marketer", "viewer"}),
    "journeys": frozenset({"admin", "marketer", "viewer"}),
    "email": frozenset({"admin", "marketer", "viewer"}),
    "reports": frozenset({"admin", "marketer", "viewer"}),
    "crm": frozenset({"admin", "sales", "viewer"}),
    "integrations": frozenset({"admin", "viewer"}),  # webhooks, connectors, forms, API keys
}
READ_ONLY = frozenset({"viewer"})
PRE_COOKIE = "lf_csrf"  # the double-submit token of the forms shown before signing in


class PageError(Exception):
    """An error the console answers with a page (not the API's JSON)."""

    def __init__(self, status: int, title: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status, self.title, self.message, self.retry_after = status, title, message, retry_after


class SignInNeeded(Exception):
    """No live session: the browser goes to the sign-in page (and comes back after)."""

    def __init__(self, back: str) -> None:
        super().__init__(back)
        self.back = back


@dataclass
class Console:
    """What the pages share: the context, templates, the sign-in rate limits, the cookie flags."""

    ctx: AppContext
    templates: Jinja2Templates
    by_ip: RateLimiter
    by_account: RateLimiter
    secure: bool
    nav: list[tuple[str, str, str]] = field(default_factory=list)  # (area, label, path)

    @property
    def secret(self) -> str:
        return self.ctx.secret_key


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a request."""

    user: crm.User
    session: sessions.Session
    csrf: str

    @property
    def actor(self) -> str:
        return f"user:{self.user.email}"

    @property
    def role(self) -> str:
        return self.user.role

    def may(self, area: str) -> bool:
        return self.role in AREAS.get(area, frozenset({"admin"}))

    def may_change(self, area: str) -> bool:
        return self.may(area) and self.role not in READ_ONLY


def console(request: Request) -> Console:
    found: Console = request.app.state.web
    return found


def viewer(request: Request, web: Console = Depends(console)) -> Viewer:
    token = sessions.token_of(web.secret, request.cookies.get(sessions.COOKIE))
    session = sessions.find(web.ctx, token) if token else None
    if session is None:
        raise SignInNeeded(request.url.path)
    user = crm.get_user(web.ctx, session.user_id)
    if not user.active:
        raise SignInNeeded(request.url.path)
    return Viewer(user=user, session=session, csrf=sessions.csrf_token(web.secret, session.token))


async def _form_token(request: Request) -> str | None:
    header = request.headers.get("x-csrf-token")
    if header:
        return header
    value = (await request.form()).get("csrf")
    return value if isinstance(value, str) else None


def page(area: str) -> Callable[..., Viewer]:
    """The dependency of a page of ``area``: its viewer, or the 403 page for a role outside it."""

    def allowed(found: Viewer = Depends(viewer)) -> Viewer:
        if not found.may(area):
            raise PageError(403, "Not allowed", f"Your role ({found.role}) cannot open this page.")
        return found

    return allowed


def change(area: str, *, own: bool = False) -> Callable[..., Coroutine[Any, Any, Viewer]]:
    """The dependency of a POST of ``area``: the CSRF token checked, then the role (a viewer changes
    nothing but, with ``own``, their own password and sessions)."""

    async def allowed(request: Request, found: Viewer = Depends(viewer)) -> Viewer:
        if not sessions.csrf_ok(console(request).secret, found.session.token, await _form_token(request)):
            raise PageError(403, "Form expired", "This form is out of date (CSRF check): reload the page.")
        if not found.may(area) or (found.role in READ_ONLY and not own):
            raise PageError(403, "Not allowed", f"Your role ({found.role}) cannot change this.")
        return found

    return allowed


def pre_token(request: Request) -> str:
    """The double-submit token of a form shown before signing in (set as a cookie by the page)."""
    return request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(24)


async def check_pre_token(request: Request) -> None:
    cookie, given = request.cookies.get(PRE_COOKIE), await _form_token(request)
    if not cookie or not given or not secrets.compare_digest(cookie, given):
        raise PageError(403, "Form expired", "This form is out of date (CSRF check): reload the page.")


async def clean_input(request: Request) -> None:
    """Every console request: the path, the query and a form's fields hold no NUL and no lone surrogate
    (PostgreSQL refuses NUL in text; neither is anything a person types), else the 422 page. Runs before
    the page's own dependencies (it is the routers' dependency, see ``web.app.install``)."""
    try:
        inputs.check_text(request.url.path, "the address")
        for name, value in request.query_params.multi_items():
            inputs.check_text(name + value, f"the parameter {name[:40]!r}")
        kind = request.headers.get("content-type", "")
        if request.method == "POST" and kind.startswith(("application/x-www-form-urlencoded", "multipart/")):
            for name, item in (await request.form()).multi_items():
                if isinstance(item, str):
                    inputs.check_text(name + item, f"the field {name[:40]!r}")
    except LeadflowError as exc:
        raise PageError(422, "Bad input", f"{exc} — remove it and try again.") from None
