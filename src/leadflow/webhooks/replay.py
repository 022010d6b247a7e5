"""Incoming provider webhooks: refusing a signature replayed with new content.

Some providers sign less than the whole request. Mailgun signs only ``timestamp + token``: anyone who
saw one signed request can, while the timestamp is fresh, post the same signature block with other
``event-data``, and the signature still verifies. So each token an applied webhook carried is
remembered, with a digest of its content, until its signature could no longer verify anyway:

* a token never seen: recorded, in the same transaction that applies the webhook (a request that fails
  and rolls back leaves no trace, so the provider's retry is applied normally);
* the same token with the same content: the provider delivering again; nothing is applied twice;
* the same token with other content: a replay, refused with ``409 signature_replayed``, nothing applied.

Each recording first deletes a bounded batch of tokens past their expiry (``SKIP LOCKED`` on
PostgreSQL, so concurrent requests never wait on each other's pruning): the table holds only the tokens
of the last few minutes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.engine import Connection

from leadflow.kernel.errors import Conflict
from leadflow.webhooks import queries

__all__ = ["PRUNE_BATCH", "Seal", "digest", "remember"]

PRUNE_BATCH = 100  # expired tokens deleted per recording: far more than one recording adds


@dataclass(frozen=True)
class Seal:
    """A verified signature's replayable part: ``token`` of ``source``, the ``digest`` of what it came
    with, and when the signature stops verifying (``expires_at``)."""

    source: str
    token: str
    digest: str
    expires_at: datetime


def digest(payload: Any) -> str:
    """SHA-256 of the payload's canonical JSON (sorted keys, compact): the same content, however the
    sender spaced or ordered it, has the same digest."""
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _prune(conn: Connection, now: datetime) -> None:
    conn.execute(queries.prune_tokens(conn.dialect.name, now, PRUNE_BATCH))


def remember(conn: Connection, seal: Seal, now: datetime) -> bool:
    """Record ``seal`` in the caller's transaction. ``True``: first seen, apply the webhook; ``False``:
    the same content was applied before, apply nothing; :class:`Conflict` ``signature_replayed``: the
    token came before with other content."""
    _prune(conn, now)
    row = {"source": seal.source, "token": seal.token, "body_digest": seal.digest}
    statement = queries.record_token(
        conn.dialect.name, {**row, "seen_at": now, "expires_at": seal.expires_at}
    )
    inserted = conn.execute(statement).first()
    if inserted is not None:
        return True
    seen = conn.execute(queries.token_digest(seal.source, seal.token)).scalar()
    if seen == seal.digest:
        return False
    raise Conflict(
        f"this {seal.source} signature was already used with other content (a replay)",
        code="signature_replayed",
    )
