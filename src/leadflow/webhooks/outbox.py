"""The outgoing webhook outbox: queueing deliveries, the signing secret, and the operator's view (the
deliveries log, a retry).

Rows are written by the code that decides to send a webhook (the journey engine), inside its own
transaction, through :func:`enqueue_many`; the :mod:`leadflow.webhooks.deliverer`
sends them later. Each row's ``key`` makes a repeated decision a no-op, and its ``id`` is the Standard
Webhooks ``webhook-id``: delivery is at-least-once (a crash between the POST and recording its outcome
sends the same message again, with the same id), so receivers de-duplicate on ``webhook-id``.

Receivers verify requests with the secret :func:`signing_secret` returns (``leadflow webhooks secret``
prints it), e.g. ``standardwebhooks.Webhook(secret).verify(body, headers)``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.engine import Connection

from leadflow.kernel.context import AppContext, Slot
from leadflow.kernel.db import chunked, on_commit
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.webhooks import queries

CHANNEL = "webhooks"
QUEUED = "queued"
DELIVERED = "delivered"
FAILED = "failed"
CANCELLED = "cancelled"  # its contact was erased before it went
STATUSES = (QUEUED, DELIVERED, FAILED, CANCELLED)
ERASED = "contact erased"

SECRET_PREFIX = "whsec_"
_DERIVATION_LABEL = b"leadflow-webhooks"
_INSERT_CHUNK = 1000  # rows per INSERT: 15 columns each stays below SQLite's bound-variable limit
_OPTIONAL = ("contact_id", "journey_id", "run_id", "endpoint_id", "replay_of")


@dataclass(frozen=True)
class WebhookCounters:
    """State changes of deliveries, registered once on the context's metrics registry."""

    delivered: Counter
    retried: Counter
    failed: Counter
    requeued: Counter


def _make_counters(ctx: AppContext) -> WebhookCounters:
    registry = ctx.metrics.registry
    return WebhookCounters(
        delivered=Counter("leadflow_webhooks_delivered", "Webhooks a receiver accepted", registry=registry),
        retried=Counter(
            "leadflow_webhooks_retried",
            "Webhook attempts that failed and were rescheduled",
            registry=registry,
        ),
        failed=Counter("leadflow_webhooks_failed", "Webhooks given up on", registry=registry),
        requeued=Counter(
            "leadflow_webhooks_requeued", "Failed webhooks queued again by an operator", registry=registry
        ),
    )


_COUNTERS: Slot[WebhookCounters] = Slot("webhooks.counters", _make_counters)


def counters(ctx: AppContext) -> WebhookCounters:
    """The webhook counters of ``ctx`` (created on first use: the kernel's Metrics stays generic)."""
    return ctx.get(_COUNTERS)


def signing_secret(ctx: AppContext) -> str:
    """The Standard Webhooks secret (``whsec_`` + base64 key) every delivery is signed with.

    ``LEADFLOW_WEBHOOK_SECRET`` when set; otherwise derived from the instance's secret key as
    ``whsec_ + base64(HMAC-SHA256(secret_key, "leadflow-webhooks"))``, so it is stable across restarts
    and processes without being stored. Receivers verify signatures with it. Read it outside any
    transaction (the secret key may be generated on first read).
    """
    configured = ctx.settings.webhook_secret
    if configured is not None:
        return configured.get_secret_value()
    digest = hmac.new(ctx.secret_key.encode(), _DERIVATION_LABEL, hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode()


def _make_announcer(ctx: AppContext) -> Callable[[], None]:
    return lambda: ctx.signals.announce(CHANNEL)


_ANNOUNCE: Slot[Callable[[], None]] = Slot("webhooks.announce", _make_announcer)


def _announcer(ctx: AppContext) -> Callable[[], None]:
    """One callback per context, so many enqueues in one transaction wake the deliverer once."""
    return ctx.get(_ANNOUNCE)


def _row(item: dict[str, Any], created_at: datetime) -> dict[str, Any]:
    row = {
        # A bare ULID: the column holds 26 characters, so there is no room for a "msg_" prefix.
        "id": item.get("id") or new_id(),
        "key": item["key"],
        "url": item["url"],
        "event": item["event"],
        "payload": item["payload"],
        "status": QUEUED,
        "due_at": item["at"],
        "attempts": 0,
        "created_at": created_at,
    }
    row.update({name: item.get(name) for name in _OPTIONAL})
    return row


def enqueue_many(conn: Connection, ctx: AppContext, rows: Sequence[dict[str, Any]]) -> int:
    """Queue many webhooks in the caller's transaction; returns how many were new.

    Each item has ``key``, ``url``, ``event``, ``payload``, ``at`` (when it is due) and optionally
    ``contact_id``, ``journey_id``, ``run_id``, ``endpoint_id``, ``replay_of``, ``id`` (chosen by the
    caller who needs to name the delivery). An item whose ``key`` is already queued (or was sent)
    is ignored. The deliverer is woken once the transaction commits.
    """
    if not rows:
        return 0
    created_at = ctx.clock.now()
    inserted = 0
    for batch in chunked(rows, _INSERT_CHUNK):
        statement = queries.enqueue(conn.dialect.name, [_row(item, created_at) for item in batch])
        result = conn.execute(statement)
        inserted += len(result.all())  # rowcount is -1 for multi-row VALUES on psycopg
    if inserted:
        on_commit(conn, _announcer(ctx))
    return inserted


def _view(row: sa.Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


def listing(ctx: AppContext, *, status: str | None, after: str | None, limit: int) -> list[dict[str, Any]]:
    """Deliveries in id order (oldest first), optionally of one status, after the id ``after``."""
    if status is not None and status not in STATUSES:
        raise Invalid(f"status must be one of {', '.join(STATUSES)}", code="invalid_status")
    query = queries.page(status, after, limit)
    with ctx.db.read() as conn:
        return [_view(row) for row in conn.execute(query)]


def get(ctx: AppContext, delivery_id: str) -> dict[str, Any]:
    with ctx.db.read() as conn:
        row = conn.execute(queries.delivery(delivery_id)).first()
    if row is None:
        raise NotFound(f"webhook delivery {delivery_id} not found")
    return _view(row)


def retry(ctx: AppContext, delivery_id: str) -> None:
    """Send a failed delivery again now, with a fresh retry schedule and the same ``webhook-id``.

    A queued delivery is left alone (it will be sent anyway); a delivered one cannot be retried.
    """
    with ctx.db.write() as conn:
        status = conn.execute(queries.status_of(delivery_id)).scalar()
        if status is None:
            raise NotFound(f"webhook delivery {delivery_id} not found")
        if status == DELIVERED:
            raise Conflict(f"webhook delivery {delivery_id} was delivered", code="already_delivered")
        if status == CANCELLED:
            raise Conflict(f"webhook delivery {delivery_id} was cancelled", code="delivery_cancelled")
        if status == QUEUED:
            return
        conn.execute(queries.requeue_failed(delivery_id, ctx.clock.now()))
        on_commit(conn, _announcer(ctx))
    counters(ctx).requeued.inc()


def on_contacts_erased(conn: Connection, message: Any) -> None:
    """GDPR erasure: the people's deliveries still queued are ``cancelled`` (never sent); every delivery
    about them keeps its id, status and times but loses its payload and the receiver's answers."""
    conn.execute(queries.clear_payloads(message.contact_ids))
    conn.execute(queries.cancel_queued(message.contact_ids, ERASED))


def on_contacts_merged(conn: Connection, message: Any) -> None:
    """A merge: the merged contact's deliveries are the survivor's (its erasure and export find them)."""
    pairs = [{"loser": loser, "survivor": survivor} for loser, survivor in message.pairs]
    if pairs:
        conn.execute(queries.MOVE_TO_SURVIVOR, pairs)


def export(conn: Connection, contact_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The webhook deliveries about these people (GDPR export)."""
    return [_view(row) for row in conn.execute(queries.of_contacts(contact_ids))]
