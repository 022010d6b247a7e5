"""Server-side sessions of the console.

The browser holds ``lf_session``: a random token and its HMAC (signed with the installation's secret),
``HttpOnly``, ``SameSite=Lax``, ``Secure`` when the public URL is https. The table stores the token's
SHA-256 only. A session ends after :data:`IDLE` without a request or :data:`ABSOLUTE` after sign-in,
whichever comes first, on the injected clock. The CSRF token of a session is derived from its token
(an HMAC), so forms carry it without a second table (a synchronizer token).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from leadflow.audit import service as audit
from leadflow.kernel.context import AppContext
from leadflow.web import queries

COOKIE = "lf_session"
IDLE = timedelta(hours=12)
ABSOLUTE = timedelta(days=7)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often per session


@dataclass(frozen=True)
class Session:
    token: str
    id_hash: str
    user_id: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


def _mac(secret: str, purpose: str, value: str) -> str:
    key = hashlib.sha256(f"leadflow-web-{purpose}:{secret}".encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def cookie_value(secret: str, token: str) -> str:
    return f"{token}.{_mac(secret, 'cookie', token)}"


def token_of(secret: str, cookie: str | None) -> str | None:
    """The token a cookie carries, when its signature holds."""
    if not cookie:
        return None
    token, _, signature = cookie.rpartition(".")
    if token and hmac.compare_digest(_mac(secret, "cookie", token), signature):
        return token
    return None


def csrf_token(secret: str, token: str) -> str:
    return _mac(secret, "csrf", token)


def csrf_ok(secret: str, token: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(secret, token), given or "")


def open_session(ctx: AppContext, user_id: str, user_agent: str | None, *, actor: str) -> str:
    token, now = secrets.token_urlsafe(32), ctx.clock.now()
    with ctx.db.write() as conn:
        conn.execute(queries.DELETE_EXPIRED, {"now": now})
        conn.execute(
            queries.INSERT_SESSION,
            {
                "id_hash": digest(token),
                "user_id": user_id,
                "created_at": now,
                "last_seen_at": now,
                "expires_at": now + ABSOLUTE,
                "user_agent": (user_agent or "")[:300] or None,
            },
        )
        audit.record(
            conn, ctx.clock, actor=actor, action="web.signed_in", entity_type="crm_user", entity_id=user_id
        )
    return token


def find(ctx: AppContext, token: str) -> Session | None:
    """The live session of ``token`` (refreshing its last-seen time), or None."""
    now, id_hash = ctx.clock.now(), digest(token)
    with ctx.db.read() as conn:
        row = conn.execute(queries.SESSION, {"id_hash": id_hash}).first()
    if row is None or row.expires_at <= now or row.last_seen_at + IDLE <= now:
        return None
    if now - row.last_seen_at >= TOUCH_EVERY:
        with ctx.db.write() as conn:
            conn.execute(queries.TOUCH_SESSION, {"session": id_hash, "now": now})
    return Session(token, id_hash, row.user_id, row.created_at, now, row.expires_at)


def close(ctx: AppContext, session: Session, *, actor: str) -> None:
    with ctx.db.write() as conn:
        conn.execute(queries.DELETE_SESSION, {"id_hash": session.id_hash})
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="web.signed_out",
            entity_type="crm_user",
            entity_id=session.user_id,
        )


def close_all(ctx: AppContext, user_id: str, *, actor: str) -> None:
    with ctx.db.write() as conn:
        conn.execute(queries.DELETE_USER_SESSIONS, {"user_id": user_id})
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="web.signed_out_everywhere",
            entity_type="crm_user",
            entity_id=user_id,
        )


def of_user(ctx: AppContext, user_id: str) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(queries.USER_SESSIONS, {"user_id": user_id}))
