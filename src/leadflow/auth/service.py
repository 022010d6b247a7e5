"""API keys: created with scopes, shown once, stored as a SHA-256 digest, revocable."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from leadflow.audit import service as audit
from leadflow.auth import queries
from leadflow.auth.scopes import SCOPES as SCOPES
from leadflow.auth.scopes import granted, parse_scopes
from leadflow.kernel.clock import Clock, SystemClock
from leadflow.kernel.db import Database
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.kernel.ids import new_id, new_token
from leadflow.kernel.principal import KEY_PREFIX as KEY_PREFIX
from leadflow.kernel.principal import Principal as Principal

KEY_CACHE_SECONDS = 5.0
"""How long a server process trusts a key look-up: a key revoked by another process is refused within
this many seconds (at once by the process that revoked it)."""
LAST_USED_GRAIN = timedelta(minutes=1)
"""``last_used_at`` is kept to within this: a key in constant use costs one UPDATE a minute, not one a
request."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None


def digest(key: str) -> str:
    """Keys are 190 random bits: a plain SHA-256 is enough, and lets us look a key up by its digest."""
    return hashlib.sha256(key.encode()).hexdigest()


def _view(row: Any) -> ApiKey:
    return ApiKey(
        id=row["id"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=list(row["scopes"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )


def create_key(
    conn: Connection, clock: Clock, *, name: str, scopes: Iterable[str], actor: str
) -> tuple[ApiKey, str]:
    """Create a key; the plaintext is returned here and never again."""
    name = name.strip()
    if not name or len(name) > 200:
        raise Invalid("a key needs a name of 1 to 200 characters", code="invalid_name")
    scope_list = parse_scopes(scopes)
    plaintext = KEY_PREFIX + new_token(24)
    row: dict[str, Any] = {
        "id": new_id(),
        "name": name,
        "prefix": plaintext[:10],
        "key_hash": digest(plaintext),
        "scopes": scope_list,
        "created_at": clock.now(),
        "created_by": actor,
        "revoked_at": None,
        "last_used_at": None,
    }
    conn.execute(queries.INSERT, row)
    audit.record(
        conn,
        clock,
        actor=actor,
        action="key.created",
        entity_type="api_key",
        entity_id=row["id"],
        data={"name": name, "scopes": scope_list},
    )
    return _view(row), plaintext


def list_keys(conn: Connection, *, include_revoked: bool = True) -> list[ApiKey]:
    return [_view(row._mapping) for row in conn.execute(queries.listing(include_revoked=include_revoked))]


def get_key(conn: Connection, key_id: str) -> ApiKey:
    row = conn.execute(queries.BY_ID, {"key_id": key_id}).first()
    if row is None:
        raise NotFound(f"no API key {key_id}", code="key_not_found")
    return _view(row._mapping)


def revoke_key(conn: Connection, clock: Clock, key_id: str, *, actor: str) -> ApiKey:
    key = get_key(conn, key_id)
    if key.revoked_at is None:
        conn.execute(queries.REVOKE, {"key_id": key_id, "at": clock.now()})
        audit.record(conn, clock, actor=actor, action="key.revoked", entity_type="api_key", entity_id=key_id)
    return get_key(conn, key_id)


def count_keys(conn: Connection) -> int:
    return int(conn.execute(queries.COUNT).scalar_one())


def lookup(conn: Connection, key: str) -> Principal | None:
    return lookup_digest(conn, digest(key))


def lookup_digest(conn: Connection, key_hash: str) -> Principal | None:
    return _principal(conn.execute(queries.LIVE_BY_DIGEST, {"key_hash": key_hash}).first())


def _principal(row: Any) -> Principal | None:
    if row is None:
        return None
    return Principal(key_id=row.id, name=row.name, scopes=tuple(row.scopes), grants=granted(row.scopes))


class KeyCache:
    """Remembers recent key look-ups, by the key's SHA-256 (never the key itself), for ``ttl`` seconds
    (:data:`KEY_CACHE_SECONDS`), so that no request reads the key table while its key is remembered:
    a hit costs one hash and a dictionary read, and an async route checks it without leaving the event
    loop (:meth:`recall`). A revocation made through this process (API or console) takes effect at
    once; one made elsewhere (another server process, ``leadflow keys revoke``) within ``ttl`` seconds.
    Unknown keys are remembered as unknown for as long, so a flood of bad keys does not reach the
    database either.

    Each look-up that reads the table (at most one per key every ``ttl`` seconds) also records when the
    key was last used, to within :data:`LAST_USED_GRAIN`, on ``clock``."""

    def __init__(self, db: Database, clock: Clock | None = None, ttl: float = KEY_CACHE_SECONDS) -> None:
        self._db = db
        self._clock = clock or SystemClock()
        self._ttl = ttl
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def recall(self, key: str) -> tuple[bool, Principal | None]:
        """``(True, principal)`` when the key's look-up is remembered and fresh (``None``: not a live
        key), else ``(False, None)``: :meth:`authenticate` must read the database."""
        if not _plausible(key):
            return True, None
        with self._lock:
            cached = self._entries.get(digest(key))
        if cached and cached[0] > time.monotonic():
            return True, cached[1]
        return False, None

    def authenticate(self, key: str) -> Principal | None:
        if not _plausible(key):
            return None
        key_hash = digest(key)
        now = time.monotonic()
        with self._lock:
            cached = self._entries.get(key_hash)
        if cached and cached[0] > now:
            return cached[1]
        with self._db.read() as conn:
            row = conn.execute(queries.LIVE_BY_DIGEST, {"key_hash": key_hash}).first()
        principal = _principal(row)
        if row is not None:
            self._note_use(row.id, row.last_used_at)
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[key_hash] = (now + self._ttl, principal)
        return principal

    def _note_use(self, key_id: str, recorded: datetime | None) -> None:
        at = self._clock.now()
        if recorded is not None and recorded > at - LAST_USED_GRAIN:
            return
        try:
            with self._db.write() as conn:
                conn.execute(queries.USED, {"key_id": key_id, "at": at, "stale": at - LAST_USED_GRAIN})
        except SQLAlchemyError as exc:  # the request goes on: only the key's last use goes unrecorded
            log.warning("could not record the last use of API key %s: %s", key_id, type(exc).__name__)

    def invalidate(self) -> None:
        with self._lock:
            self._entries.clear()


def _plausible(key: str) -> bool:
    return key.startswith(KEY_PREFIX) and len(key) <= 100
