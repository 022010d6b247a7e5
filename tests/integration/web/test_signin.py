"""Signing in and out of the console, sessions, CSRF, the sign-in rate limit, set-password links."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.crm import service as crm
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.web import passwords, sessions
from leadflow.web import service as web
from tests.integration.web.conftest import PASSWORD, csrf_of, sign_in


def _audit(ctx: AppContext, action: str) -> list[str]:
    with ctx.db.read() as conn:
        rows = conn.execute(sa.text("SELECT actor FROM audit_log WHERE action = :a"), {"a": action})
        return [row.actor for row in rows]


def test_sign_in_then_out_and_wrong_passwords(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    assert client.get("/app/", follow_redirects=False).headers["location"] == "/app/login?next=/app/"
    csrf = sign_in(client, "ADMIN@example.com")
    cookie = client.cookies.get(sessions.COOKIE)
    assert cookie
    assert sessions.token_of(ctx.secret_key, cookie)
    page = client.get("/app/")
    assert page.status_code == 200
    assert 'data-kpi="contacts"' in page.text
    assert "user:admin@example.com" in _audit(ctx, "web.signed_in")
    out = client.post("/app/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set(sessions.COOKIE, cookie, path="/app")  # a copy of the old cookie is dead too
    assert client.get("/app/", follow_redirects=False).status_code == 303
    client.cookies.clear()
    # a wrong password and an unknown email get the same answer
    token = csrf_of(client.get("/app/login").text)
    for email, password in (("admin@example.com", "wrong password!"), ("nobody@example.com", PASSWORD)):
        answer = client.post("/app/login", data={"email": email, "password": password, "csrf": token})
        assert answer.status_code == 401
        assert "Wrong email or password." in answer.text
    assert sessions.COOKIE not in client.cookies


def test_csrf_refused_without_the_token(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    answer = client.post("/app/login", data={"email": "admin@example.com", "password": PASSWORD})
    assert answer.status_code == 403
    assert "CSRF" in answer.text
    sign_in(client, "admin@example.com")
    invite = {"name": "Sam", "email": "sam@example.com", "role": "sales"}
    refused = client.post("/app/users", data=invite)
    assert refused.status_code == 403
    assert "CSRF" in refused.text
    forged = client.post("/app/users", data={**invite, "csrf": "0" * 64})
    assert forged.status_code == 403
    huge = client.post("/app/users", data={**invite, "name": "x" * 100_000})
    assert huge.status_code == 413  # a console form is small (LEADFLOW_FORM_MAX_BODY_BYTES)
    assert all(u.email != "sam@example.com" for u in crm.list_users(ctx, after=None, limit=50))


def test_login_rate_limited_per_account(
    client: TestClient, clock: VirtualClock, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    token = csrf_of(client.get("/app/login").text)
    wrong = {"email": "admin@example.com", "password": "not the password", "csrf": token}
    codes = [client.post("/app/login", data=wrong).status_code for _ in range(6)]
    assert codes == [401] * 5 + [429]
    right = client.post("/app/login", data={**wrong, "password": PASSWORD}, follow_redirects=False)
    assert right.status_code == 429
    assert "Too many sign-in attempts" in right.text
    assert int(right.headers["retry-after"]) > 0
    clock.advance(timedelta(minutes=2))
    again = client.post("/app/login", data={**wrong, "password": PASSWORD}, follow_redirects=False)
    assert again.status_code == 303


def test_session_expires_when_idle_and_absolutely(
    client: TestClient, clock: VirtualClock, user_of: Callable[..., crm.User]
) -> None:
    user_of("viewer")
    sign_in(client, "viewer@example.com")
    clock.advance(sessions.IDLE - timedelta(minutes=1))
    assert client.get("/app/").status_code == 200  # seen: idle time starts again
    clock.advance(sessions.IDLE - timedelta(minutes=1))
    assert client.get("/app/").status_code == 200
    clock.advance(sessions.IDLE + timedelta(seconds=1))
    assert client.get("/app/", follow_redirects=False).status_code == 303
    sign_in(client, "viewer@example.com")
    for _ in range(int(sessions.ABSOLUTE / (sessions.IDLE / 2))):  # never idle, but a week has passed
        clock.advance(sessions.IDLE / 2)
        if client.get("/app/", follow_redirects=False).status_code == 303:
            break
    else:
        raise AssertionError("the session outlived its absolute expiry")


def test_log_out_everywhere(ctx: AppContext, client: TestClient, user_of: Callable[..., crm.User]) -> None:
    user_of("marketer")
    csrf = sign_in(client, "marketer@example.com")
    other = TestClient(client.app)
    sign_in(other, "marketer@example.com")
    assert "(this one)" in client.get("/app/account").text
    client.post("/app/account/sign-out-everywhere", data={"csrf": csrf})
    assert other.get("/app/", follow_redirects=False).status_code == 303
    assert client.get("/app/", follow_redirects=False).status_code == 303
    assert _audit(ctx, "web.signed_out_everywhere") == ["user:marketer@example.com"]


def _mailed_links(ctx: AppContext) -> set[str]:
    """The set-password links in the outbox (paths)."""
    with ctx.db.read() as conn:
        rows = conn.execute(sa.text("SELECT context FROM messages")).all()
    found = set()
    for row in rows:
        context = row.context if isinstance(row.context, dict) else json.loads(row.context)
        found.add(context["vars"]["url"].removeprefix(ctx.settings.public_url))
    return found


def test_reset_link_is_single_use_and_expires(
    client: TestClient, ctx: AppContext, clock: VirtualClock, user_of: Callable[..., crm.User]
) -> None:
    user_of("sales")
    token = csrf_of(client.get("/app/reset").text)
    sent = client.post("/app/reset", data={"email": "sales@example.com", "csrf": token})
    assert sent.status_code == 200
    assert "on its way" in sent.text
    (link,) = _mailed_links(ctx)
    form = client.get(link)
    assert form.status_code == 200
    new = {"password": "a brand new secret", "again": "a brand new secret", "csrf": csrf_of(form.text)}
    assert client.post(link, data=new, follow_redirects=False).status_code == 303
    assert client.get(link).status_code == 400  # used: the password hash it was signed with is gone
    sign_in(client, "sales@example.com", "a brand new secret")
    client.post("/app/reset", data={"email": "sales@example.com", "csrf": token})
    (late,) = _mailed_links(ctx) - {link}
    clock.advance(passwords.RESET_FOR + timedelta(seconds=1))
    expired = client.get(late)
    assert expired.status_code == 400
    assert "expired" in expired.text


def test_first_start_link_sets_the_admin_password(client: TestClient, ctx: AppContext) -> None:
    banner = web.first_start_banner(ctx)
    assert banner is not None
    assert "/app/reset/" in banner
    link = banner.split(ctx.settings.public_url, 1)[1].split()[0]
    form = client.get(link)
    data = {"password": "the admin's secret", "again": "the admin's secret", "csrf": csrf_of(form.text)}
    assert client.post(link, data=data, follow_redirects=False).status_code == 303
    assert web.first_start_banner(ctx) is None
    admin = next(u for u in crm.list_users(ctx, after=None, limit=10) if u.role == "admin")
    sign_in(client, admin.email, "the admin's secret")


def test_login_rate_limited_per_address(client: TestClient, user_of: Callable[..., crm.User]) -> None:
    """Guessing across many accounts from one address stops too (10 attempts, then one per 6 s)."""
    user_of("admin")
    token = csrf_of(client.get("/app/login").text)
    codes = [
        client.post("/app/login", data={"email": f"u{n}@example.com", "password": "x" * 12, "csrf": token})
        for n in range(11)
    ]
    assert [answer.status_code for answer in codes] == [401] * 10 + [429]
    right = {"email": "admin@example.com", "password": PASSWORD, "csrf": token}
    assert client.post("/app/login", data=right, follow_redirects=False).status_code == 429
