"""The statements of the webhooks domain: the outgoing delivery outbox (queueing, the operator's view,
a retry, GDPR erasure and export, the deliverer's claim and record) and the incoming providers' replay
tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.expression import Executable

from leadflow.webhooks.models import webhook_deliveries as deliveries
from leadflow.webhooks.models import webhook_replay_tokens as tokens

QUEUED = "queued"
FAILED = "failed"
CANCELLED = "cancelled"

# --- the outbox -------------------------------------------------------------------------------------


def _insert(dialect: str, table: sa.Table) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def enqueue(dialect: str, rows: Sequence[dict[str, Any]]) -> Any:
    """Insert deliveries, skipping a ``key`` already queued (or sent); returns the new ids."""
    statement = _insert(dialect, deliveries).on_conflict_do_nothing(index_elements=["key"])
    return statement.returning(deliveries.c.id).values(list(rows))


def page(status: str | None, after: str | None, limit: int) -> sa.Select[Any]:
    """Deliveries in id order (oldest first), optionally of one status, after the id ``after``."""
    query = sa.select(deliveries).order_by(deliveries.c.id).limit(limit)
    if status is not None:
        query = query.where(deliveries.c.status == status)
    return query.where(deliveries.c.id > after) if after else query


def delivery(delivery_id: str) -> sa.Select[Any]:
    return sa.select(deliveries).where(deliveries.c.id == delivery_id)


def status_of(delivery_id: str) -> sa.Select[Any]:
    return sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id)


def requeue_failed(delivery_id: str, now: datetime) -> sa.Update:
    """A failed delivery queued again now, with a fresh retry schedule (attempts from 0)."""
    return (
        deliveries.update()
        .where(deliveries.c.id == delivery_id, deliveries.c.status == FAILED)
        .values(status=QUEUED, due_at=now, attempts=0, response_code=None, error=None)
    )


def clear_payloads(contact_ids: Sequence[str]) -> sa.Update:
    """GDPR erasure: every delivery about the people loses its payload and the receiver's answers."""
    mine = deliveries.c.contact_id.in_(list(contact_ids))
    return deliveries.update().where(mine).values(payload={}, error=None)


def cancel_queued(contact_ids: Sequence[str], reason: str) -> sa.Update:
    mine = deliveries.c.contact_id.in_(list(contact_ids))
    return (
        deliveries.update().where(mine, deliveries.c.status == QUEUED).values(status=CANCELLED, error=reason)
    )


def of_contacts(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return (
        sa.select(deliveries).where(deliveries.c.contact_id.in_(list(contact_ids))).order_by(deliveries.c.id)
    )


# --- the deliverer ----------------------------------------------------------------------------------

_d = deliveries.c
NEXT_DUE = sa.select(sa.func.min(_d.due_at)).where(_d.status == QUEUED)  # min() keeps the UTC type
RECORDED = ("status", "due_at", "response_code", "error", "delivered_at")
#: One delivery's outcome, guarded by its claim (``b_id``, ``b_attempts``): values ``v_<column>``.
RECORD = (
    deliveries.update()
    .where(_d.id == sa.bindparam("b_id"), _d.attempts == sa.bindparam("b_attempts"), _d.status == QUEUED)
    .values({name: sa.bindparam(f"v_{name}", type_=_d[name].type) for name in RECORDED})
)


def claim(dialect: str, now: datetime, limit: int) -> sa.Select[Any]:
    """Due queued deliveries, oldest due first; locked, skipping those another worker holds, on
    PostgreSQL."""
    query = (
        sa.select(_d.id, _d.url, _d.event, _d.payload, _d.created_at, _d.attempts)
        .where(_d.status == QUEUED, _d.due_at <= now)
        .order_by(_d.due_at)
        .limit(limit)
    )
    return query.with_for_update(skip_locked=True) if dialect == "postgresql" else query


def lease(delivery_ids: Sequence[str], until: datetime) -> sa.Update:
    """The claimed deliveries fall due again at the lease's end, one attempt more."""
    return (
        deliveries.update()
        .where(_d.id.in_(list(delivery_ids)))
        .values(due_at=until, attempts=_d.attempts + 1)
    )


# --- incoming providers' replay tokens ----------------------------------------------------------------


def prune_tokens(dialect: str, now: datetime, batch: int) -> sa.Delete:
    """Delete up to ``batch`` tokens past their expiry (``SKIP LOCKED`` on PostgreSQL: concurrent
    requests never wait on each other's pruning)."""
    expired = (
        sa.select(tokens.c.source, tokens.c.token)
        .where(tokens.c.expires_at < now)
        .order_by(tokens.c.expires_at)
        .limit(batch)
    )
    if dialect == "postgresql":
        expired = expired.with_for_update(skip_locked=True)
    return tokens.delete().where(sa.tuple_(tokens.c.source, tokens.c.token).in_(expired))


def record_token(dialect: str, row: dict[str, Any]) -> Any:
    """Insert a token unless it is known; returns the token when it was new."""
    statement = _insert(dialect, tokens).values(**row)
    return statement.on_conflict_do_nothing(index_elements=["source", "token"]).returning(tokens.c.token)


def token_digest(source: str, token: str) -> sa.Select[Any]:
    return sa.select(tokens.c.body_digest).where(tokens.c.source == source, tokens.c.token == token)


_AT = datetime(2026, 1, 1, tzinfo=UTC)
_ROW = {
    "id": "d1",
    "key": "k",
    "url": "https://example.com",
    "event": "e",
    "payload": {},
    "status": QUEUED,
    "due_at": _AT,
    "attempts": 0,
    "created_at": _AT,
    "contact_id": None,
    "journey_id": None,
    "run_id": None,
}
_TOKEN = {
    "source": "mailgun",
    "token": "t",
    "body_digest": "d",
    "seen_at": _AT,
    "expires_at": _AT + timedelta(minutes=5),
}
SAMPLES: list[Callable[[], Executable | Sequence[Executable]]] = [
    lambda: [enqueue(d, [_ROW]) for d in ("postgresql",)],
    lambda: [page(QUEUED, "d0", 10), page(None, None, 10), delivery("d1"), status_of("d1")],
    lambda: [
        requeue_failed("d1", _AT),
        clear_payloads(["c1"]),
        cancel_queued(["c1"], "x"),
        of_contacts(["c1"]),
    ],
    lambda: [prune_tokens(d, _AT, 100) for d in ("sqlite", "postgresql")],
    lambda: [record_token(d, _TOKEN) for d in ("postgresql",)],
    lambda: [token_digest("mailgun", "t")],
    lambda: [claim(d, _AT, 10) for d in ("sqlite", "postgresql")] + [lease(["d1"], _AT)],
]
