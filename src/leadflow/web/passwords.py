"""Console passwords (argon2id) and the links that set them.

A set-password link (reset, invitation, first start) is a signed token: the user's id and an expiry,
signed with the installation's secret *and the user's current password hash*. It is single-use without
a table: setting the password changes the hash (a fresh salt, even for the same password), which breaks
every link signed before; it expires at its own ``expires`` whatever happens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.web import queries

MIN_LENGTH, MAX_LENGTH = 10, 256
RESET_FOR = timedelta(hours=1)  # a link asked for on the sign-in page
INVITE_FOR = timedelta(days=3)  # an invitation, the first start's link
_hasher = PasswordHasher()  # argon2id, the library's (RFC 9106 low-memory) parameters


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def matches(stored: str | None, password: str) -> bool:
    if stored is None:
        _hasher.hash(password)  # the same work either way: timing does not tell who has a password
        return False
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def check_new(password: str) -> None:
    if not MIN_LENGTH <= len(password) <= MAX_LENGTH:
        raise Invalid(f"a password has {MIN_LENGTH} to {MAX_LENGTH} characters", code="weak_password")


def stored_hash(conn: Connection, user_id: str) -> str | None:
    found: str | None = conn.execute(queries.PASSWORD_OF, {"user_id": user_id}).scalar()
    return found


def with_password(conn: Connection) -> set[str]:
    return set(conn.execute(queries.HAVE_PASSWORDS).scalars())


def set_password(ctx: AppContext, user_id: str, password: str, *, actor: str) -> None:
    """Store a new password and end every session of the user (whoever knew the old one is out)."""
    check_new(password)
    digest = hash_password(password)
    with ctx.db.write() as conn:
        conn.execute(queries.DELETE_PASSWORD, {"user_id": user_id})
        conn.execute(
            queries.INSERT_PASSWORD,
            {"user_id": user_id, "password_hash": digest, "changed_at": ctx.clock.now()},
        )
        conn.execute(queries.DELETE_USER_SESSIONS, {"user_id": user_id})
        audit.record(
            conn, ctx.clock, actor=actor, action="web.password_set", entity_type="crm_user", entity_id=user_id
        )


def _signature(secret: str, payload: str, stored: str | None) -> str:
    key = hashlib.sha256(f"leadflow-web-link:{secret}".encode()).digest()
    mac = hmac.new(key, f"{payload}|{stored or ''}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def link_token(ctx: AppContext, user_id: str, stored: str | None, valid_for: timedelta) -> str:
    expires = int((ctx.clock.now() + valid_for).timestamp())
    payload = f"{user_id}.{expires}"
    return f"{payload}.{_signature(ctx.secret_key, payload, stored)}"


def link_user(ctx: AppContext, conn: Connection, token: str) -> str:
    """The user a set-password link is for; :class:`Invalid` (``invalid_link``) when it is forged,
    expired or already used."""
    user_id, _, rest = token.partition(".")
    expires, _, signature = rest.partition(".")
    if not (user_id and expires.isdigit() and signature):
        raise Invalid("this link is not valid", code="invalid_link")
    expected = _signature(ctx.secret_key, f"{user_id}.{expires}", stored_hash(conn, user_id))
    if not hmac.compare_digest(expected, signature):
        raise Invalid("this link is not valid or was already used", code="invalid_link")
    if datetime.fromtimestamp(int(expires), UTC) <= ctx.clock.now():
        raise Invalid("this link has expired: ask for a new one", code="expired_link")
    return user_id
