"""The fan-out: events the pipeline applies become deliveries to every active endpoint subscribed to
their type, in the transaction that applied them.

It subscribes to ``ContactsTouched`` (wired in :mod:`leadflow.runtime.context`): each applied event
whose name maps to a catalogue type (:func:`leadflow.webhooks.catalogue.type_of`), and each contact the
batch created or changed (``contact.created`` / ``contact.updated``), is offered to the active endpoints
(read once per batch). All deliveries of a batch are written by one multi-row ``INSERT`` (in chunks of
1,000), with the contacts' summaries read in one query.

Exactly one delivery per (event, endpoint): the delivery ``key`` (unique) is ``evt:<event id>:<endpoint>``
for an applied event and ``contact:<contact>:<created|updated>:<time of the batch>:<endpoint>`` for a
profile change. The deliveries commit or roll back with the batch, so a batch that fails and is applied
again queues them once; an event offered twice (a replayed bus message) finds its key taken.
Endpoints registered after an event was applied do not receive it (replay is per delivery).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts
from leadflow.kernel.context import AppContext
from leadflow.kernel.facts import ContactsTouched
from leadflow.webhooks import catalogue, endpoints, outbox

CONTACT_FIELDS = ("id", "email", "user_id", "first_name", "last_name", "lifecycle_stage")
#: fields whose change alone is not a ``contact.updated`` (every event moves them)
QUIET = frozenset({"last_seen_at", "updated_at"})
CREATED = "*"


@dataclass(frozen=True)
class Occurrence:
    """One thing that happened, before it meets the endpoints."""

    key: str
    type: str
    contact_id: str
    data: dict[str, Any]


def _events(fact: ContactsTouched) -> Iterator[Occurrence]:
    for event in fact.events:
        if event.type != "track":
            continue
        name = catalogue.type_of(event.event)
        if name is not None:
            yield Occurrence(f"evt:{event.id}", name, event.contact_id, dict(event.properties or {}))


def _changes(fact: ContactsTouched) -> Iterator[Occurrence]:
    survivors = {survivor for _, survivor in fact.merged}
    stamp = fact.at.isoformat()
    for contact_id, fields in fact.changes.items():
        if CREATED in fields and contact_id not in survivors:
            yield Occurrence(f"contact:{contact_id}:created:{stamp}", "contact.created", contact_id, {})
            continue
        changed = sorted(fields - QUIET)
        if changed:
            data = {"changed": changed}
            yield Occurrence(f"contact:{contact_id}:updated:{stamp}", "contact.updated", contact_id, data)


def occurrences(fact: ContactsTouched) -> list[Occurrence]:
    """What of this batch the catalogue publishes."""
    return [*_events(fact), *_changes(fact)]


def _subscribers(conn: Connection) -> list[tuple[str, str, frozenset[str]]]:
    return [(row.id, row.url, frozenset(row.event_types or ())) for row in endpoints.active(conn)]


def _summaries(conn: Connection, contact_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = contacts.rows_of(conn, CONTACT_FIELDS, contact_ids)
    return {row.id: dict(row._mapping) for row in rows}


def deliveries(
    found: list[Occurrence],
    subscribers: list[tuple[str, str, frozenset[str]]],
    summaries: dict[str, dict[str, Any]],
    at: datetime,
) -> list[dict[str, Any]]:
    """The outbox rows: each occurrence for each endpoint subscribed to its type (or to ``*``)."""
    rows: list[dict[str, Any]] = []
    for occurrence in found:
        targets = [s for s in subscribers if occurrence.type in s[2] or catalogue.ANY in s[2]]
        if not targets:
            continue
        contact = summaries.get(occurrence.contact_id) or {"id": occurrence.contact_id}
        payload = {**occurrence.data, "contact": contact}
        for endpoint_id, url, _ in targets:
            rows.append(
                {
                    "key": f"{occurrence.key}:{endpoint_id}",
                    "url": url,
                    "event": occurrence.type,
                    "payload": payload,
                    "at": at,
                    "contact_id": occurrence.contact_id,
                    "endpoint_id": endpoint_id,
                }
            )
    return rows


def fan_out(conn: Connection, ctx: AppContext, fact: ContactsTouched) -> int:
    """Queue this batch's deliveries in the caller's transaction; returns how many were new."""
    found = occurrences(fact)
    if not found:
        return 0
    subscribers = _subscribers(conn)
    if not subscribers:
        return 0
    wanted = {name for _, _, types in subscribers for name in types}
    if catalogue.ANY not in wanted:
        found = [occurrence for occurrence in found if occurrence.type in wanted]
        if not found:
            return 0
    summaries = _summaries(conn, sorted({occurrence.contact_id for occurrence in found}))
    return outbox.enqueue_many(conn, ctx, deliveries(found, subscribers, summaries, ctx.clock.now()))


def handler(ctx: AppContext) -> Callable[[Connection, ContactsTouched], None]:
    """The bus subscriber for ``ContactsTouched``."""

    def on_touched(conn: Connection, fact: ContactsTouched) -> None:
        fan_out(conn, ctx, fact)

    return on_touched
