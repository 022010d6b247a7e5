"""The email outbox: messages written in the transaction that decided to send them, and their events.

A message row is unique by its idempotency ``key`` (a journey step, a broadcast recipient …): writing
it again is a no-op, so a retried decision never queues a second email. Every status a message takes
(queued, sent, deferred, bounced, failed, suppressed, opened, clicked, unsubscribed) is also an internal
event ``leadflow.email_<status>`` in the pipeline, so it can trigger journeys and scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import chunk_size, chunked, insert_new, on_commit
from leadflow.kernel.ids import new_id
from leadflow.messaging.delivery import queries
from leadflow.messaging.models import messages

CHANNEL = "email"
COUNTED = queries.COUNTED  # what counts against the frequency cap
PERSONAL = ("marketing", "transactional")  # messages to the contact (internal notices are about them)


class MissingTemplate(LookupError):
    pass


def template_ids(conn: Connection, keys: Sequence[str]) -> dict[str, str]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    return {row.key: row.id for row in conn.execute(queries.template_ids(wanted))}


def enqueue_many(conn: Connection, ctx: AppContext, rows: Sequence[dict[str, Any]], now: datetime) -> int:
    """Write messages (``template`` is a template key); returns how many were new. A key already
    written is skipped. Raises :class:`MissingTemplate` when a template does not exist."""
    if not rows:
        return 0
    ids = template_ids(conn, [row["template"] for row in rows])
    missing = sorted({row["template"] for row in rows} - set(ids))
    if missing:
        raise MissingTemplate(f"email template {', '.join(missing)} does not exist")
    records = [_record(row, ids[row["template"]], now) for row in rows]
    new = _insert(conn, records)
    fresh = [r for r in records if r["key"] in new]
    emit(conn, ctx, [(r, r["status"]) for r in fresh], now)
    if any(r["status"] == "queued" for r in fresh):
        on_commit(conn, lambda: ctx.signals.announce(CHANNEL))
    return len(fresh)


def _record(row: dict[str, Any], template_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": row.get("id") or new_id(),
        "key": row["key"],
        "kind": row["kind"],
        "contact_id": row.get("contact_id"),
        "to_address": row.get("to_address"),
        "template_id": template_id,
        "topic": row.get("topic"),
        "journey_id": row.get("journey_id"),
        "run_id": row.get("run_id"),
        "step_id": row.get("step_id"),
        "broadcast_id": row.get("broadcast_id"),
        "status": row.get("status", "queued"),
        "due_at": row.get("due_at") or now,
        "attempts": 0,
        "context": row.get("context"),
        "error": row.get("error"),
        "created_at": now,
    }


def _insert(conn: Connection, records: list[dict[str, Any]]) -> set[str]:
    return set(insert_new(conn, messages, records, conflict=["key"], returning="key"))


def emit(
    conn: Connection,
    ctx: AppContext,
    changed: Sequence[tuple[dict[str, Any], str]],
    at: datetime,
    *,
    key_suffix: str = "",
    **extra: Any,
) -> None:
    """Status events for messages to contacts: ``(message row, status)`` each. An event is stored once
    per message and status; ``key_suffix`` keeps a second kind apart (machine-generated hits)."""
    items = []
    for row, status in changed:
        if row.get("kind") not in PERSONAL or not row.get("contact_id"):
            continue
        properties = {
            "message_id": row["id"],
            "journey_id": row.get("journey_id"),
            "broadcast_id": row.get("broadcast_id"),
            "step_id": row.get("step_id"),
            "template_id": row.get("template_id"),
            "kind": row.get("kind"),
            **({"reason": row["error"]} if row.get("error") else {}),
            **extra,
        }
        items.append(
            (
                row["contact_id"],
                f"leadflow.email_{status}",
                properties,
                f"email:{row['id']}:{status}{key_suffix}",
            )
        )
    if items:
        events.emit_many(conn, items, at)
        on_commit(conn, lambda: ctx.signals.announce("events"))


def over_cap(conn: Connection, ctx: AppContext, contact_ids: Sequence[str], now: datetime) -> set[str]:
    """Contacts who already have the most marketing emails allowed in the last day or week (the global
    frequency cap, across journeys and broadcasts; transactional mail is never counted or capped)."""
    per_day, per_week = ctx.settings.frequency_cap_per_day, ctx.settings.frequency_cap_per_week
    if not contact_ids or (per_day == 0 and per_week == 0):
        return set()
    day_ago, week_ago = now - timedelta(days=1), now - timedelta(days=7)
    capped: set[str] = set()
    for chunk in chunked(sorted(set(contact_ids)), chunk_size(conn)):
        query = queries.cap_counts(conn.dialect.name, day_ago, week_ago, chunk)
        for contact_id, in_day, in_week in conn.execute(query):
            if (per_day and (in_day or 0) >= per_day) or (per_week and in_week >= per_week):
                capped.add(contact_id)
    return capped
