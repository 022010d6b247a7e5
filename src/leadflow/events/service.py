"""What other domains may do with the event log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.events import queries
from leadflow.events.body import read_body as read_body
from leadflow.events.ingest import CHANNEL as CHANNEL
from leadflow.events.ingest import store as store
from leadflow.events.models import events
from leadflow.events.queries import EVENT_FIELDS as EVENT_FIELDS
from leadflow.events.queries import INTERNAL_COLUMNS as INTERNAL_COLUMNS
from leadflow.events.queries import insert_internal as insert_internal
from leadflow.events.queries import insert_internal_once as insert_internal_once
from leadflow.events.queries import insert_tracked as insert_tracked
from leadflow.events.schemas import batch_rows as batch_rows
from leadflow.events.schemas import to_row as to_row
from leadflow.kernel.db import bulk_update, chunked, insert_new
from leadflow.kernel.facts import ContactsErased, ContactsMerged


def pending(conn: Connection, limit: int) -> Sequence[Any]:
    """The oldest unprocessed events, in arrival order."""
    return conn.execute(queries.PENDING, {"limit": limit}).all()


def mark_processed(conn: Connection, assignments: dict[int, str], at: datetime) -> None:
    """Record each event's contact and that it has been applied (one statement on PostgreSQL)."""
    rows = [
        {"id": event_id, "contact_id": contact_id, "processed_at": at}
        for event_id, contact_id in assignments.items()
    ]
    bulk_update(conn, events, "id", rows)


def mark_failed(conn: Connection, event_id: int, error: str, at: datetime) -> None:
    conn.execute(queries.MARK_FAILED, {"event_id": event_id, "at": at, "error": error[:2000]})


def delete(conn: Connection, event_ids: Iterable[int]) -> None:
    for chunk in chunked(list(event_ids), 5000):
        conn.execute(queries.delete(chunk))


def backlog(conn: Connection) -> tuple[int, datetime | None]:
    """How many events wait for processing, and when the oldest arrived."""
    count = conn.execute(queries.BACKLOG_COUNT).scalar_one()
    oldest = conn.execute(queries.OLDEST_WAITING).scalar()
    return int(count), oldest


def failed_count(conn: Connection) -> int:
    """Events the processor gave up on (kept with their error; see :func:`requeue_failed`)."""
    return int(conn.execute(queries.FAILED_COUNT).scalar_one())


def requeue_failed(conn: Connection) -> int:
    """Put every failed event back in the queue, in its original order (after a fix is deployed)."""
    count = failed_count(conn)
    conn.execute(queries.REQUEUE_FAILED)
    return count


def on_contacts_merged(conn: Connection, message: ContactsMerged) -> None:
    conn.execute(
        queries.MOVE_TO_SURVIVOR,
        [{"loser": loser, "survivor": survivor} for loser, survivor in message.pairs],
    )


def on_contacts_erased(conn: Connection, message: ContactsErased) -> None:
    """Erasure: the person's events go, including any still waiting to be processed."""
    for chunk in chunked(list(message.contact_ids), 1000):
        conn.execute(queries.delete_of_contacts(chunk))
    for chunk in chunked(list(message.user_ids), 1000):
        conn.execute(queries.delete_waiting_of("user", chunk))
    for chunk in chunked(list(message.anonymous_ids), 1000):
        conn.execute(queries.delete_waiting_of("anon", chunk))


def count_for_contacts(conn: Connection, contact_ids: Sequence[str]) -> int:
    return int(conn.execute(queries.count_of_contacts(contact_ids)).scalar_one())


def for_contacts(
    conn: Connection,
    contact_ids: Sequence[str],
    *,
    kind: str | None = None,
    name: str | None = None,
    source: str | None = None,
    before: tuple[datetime, int] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """A contact's events, newest first; ``before`` is the (timestamp, id) to continue after."""
    query = queries.of_contacts(contact_ids, kind=kind, name=name, source=source, before=before, limit=limit)
    return [dict(row._mapping) for row in conn.execute(query)]


def emit(
    conn: Connection, contact_id: str, event: str, properties: dict[str, Any], at: datetime, key: str
) -> None:
    """Record an internal event (``leadflow.*``) for a contact; it flows through the normal pipeline.
    ``key`` makes it idempotent: the same key is stored once."""
    emit_many(conn, [(contact_id, event, properties, key)], at)


def emit_many(conn: Connection, items: Sequence[tuple[str, str, dict[str, Any], str]], at: datetime) -> None:
    """Several internal events: ``(contact_id, event, properties, key)`` each."""
    if not items:
        return
    rows = [
        {
            "message_id": key[:100],
            "type": "track",
            "event": event,
            "contact_id": contact_id,
            "properties": properties,
            "timestamp": at,
            "received_at": at,
            "source": "internal",
        }
        for contact_id, event, properties, key in items
    ]
    insert_new(conn, events, rows, conflict=["message_id"])


def message_ids(conn: Connection, event_ids: Sequence[int]) -> dict[int, str]:
    """The ``messageId`` of each of these events still stored, in one query."""
    if not event_ids:
        return {}
    query = queries.message_ids(conn.dialect.name, event_ids)
    return {row.id: row.message_id for row in conn.execute(query)}


def timeline_of(
    conn: Connection,
    contact_id: str,
    names: Sequence[str],
    *,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A contact's page views and events named ``names``, newest first, ``limit`` of them continuing
    before ``(timestamp, id)`` (a CRM lead's timeline); one query."""
    query = queries.timeline([contact_id], names, before=before, limit=limit)
    return [dict(row._mapping) for row in conn.execute(query)]


def recent(conn: Connection, limit: int) -> Sequence[Any]:
    """The newest ``limit`` events received: type, event, name, contact id, received_at."""
    return conn.execute(queries.RECENT, {"limit": limit}).all()


#: The event log table, read (never written) by analytics' rollups.
event_log = events
