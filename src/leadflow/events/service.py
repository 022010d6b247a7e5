"""What other domains may do with the event log."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from leadflow.events.api import read_body as read_body
from leadflow.events.ingest import CHANNEL as CHANNEL
from leadflow.events.ingest import store as store
from leadflow.events.models import events
from leadflow.events.schemas import batch_rows as batch_rows
from leadflow.kernel.db import bulk_update, chunked, insert_new, where_in
from leadflow.kernel.facts import ContactsErased, ContactsMerged

EVENT_FIELDS = (
    "id",
    "message_id",
    "type",
    "event",
    "name",
    "properties",
    "context",
    "timestamp",
    "received_at",
)


def pending(conn: Connection, limit: int) -> Sequence[Any]:
    """The oldest unprocessed events, in arrival order."""
    return conn.execute(
        sa.select(events).where(events.c.processed_at.is_(None)).order_by(events.c.id).limit(limit)
    ).all()


def mark_processed(conn: Connection, assignments: dict[int, str], at: datetime) -> None:
    """Record each event's contact and that it has been applied (one statement on PostgreSQL)."""
    rows = [
        {"id": event_id, "contact_id": contact_id, "processed_at": at}
        for event_id, contact_id in assignments.items()
    ]
    bulk_update(conn, events, "id", rows)


def mark_failed(conn: Connection, event_id: int, error: str, at: datetime) -> None:
    conn.execute(events.update().where(events.c.id == event_id).values(processed_at=at, error=error[:2000]))


def delete(conn: Connection, event_ids: Iterable[int]) -> None:
    for chunk in chunked(list(event_ids), 5000):
        conn.execute(events.delete().where(events.c.id.in_(chunk)))


def backlog(conn: Connection) -> tuple[int, datetime | None]:
    """How many events wait for processing, and when the oldest arrived."""
    waiting = events.c.processed_at.is_(None)
    count = conn.execute(sa.select(sa.func.count()).select_from(events).where(waiting)).scalar_one()
    oldest = conn.execute(
        sa.select(events.c.received_at).where(waiting).order_by(events.c.id).limit(1)
    ).scalar()
    return int(count), oldest


def failed_count(conn: Connection) -> int:
    """Events the processor gave up on (kept with their error; see :func:`requeue_failed`)."""
    query = sa.select(sa.func.count()).select_from(events).where(events.c.error.is_not(None))
    return int(conn.execute(query).scalar_one())


def requeue_failed(conn: Connection) -> int:
    """Put every failed event back in the queue, in its original order (after a fix is deployed)."""
    failed = events.c.error.is_not(None)
    count = failed_count(conn)
    conn.execute(events.update().where(failed).values(processed_at=None, error=None))
    return count


def on_contacts_merged(conn: Connection, message: ContactsMerged) -> None:
    conn.execute(
        events.update()
        .where(events.c.contact_id == sa.bindparam("loser"))
        .values(contact_id=sa.bindparam("survivor")),
        [{"loser": loser, "survivor": survivor} for loser, survivor in message.pairs],
    )


def on_contacts_erased(conn: Connection, message: ContactsErased) -> None:
    """Erasure: the person's events go, including any still waiting to be processed."""
    for chunk in chunked(list(message.contact_ids), 1000):
        conn.execute(events.delete().where(events.c.contact_id.in_(chunk)))
    waiting = events.c.processed_at.is_(None)
    for chunk in chunked(list(message.user_ids), 1000):
        conn.execute(events.delete().where(waiting, events.c.user_id.in_(chunk)))
    for chunk in chunked(list(message.anonymous_ids), 1000):
        conn.execute(events.delete().where(waiting, events.c.anonymous_id.in_(chunk)))


def count_for_contacts(conn: Connection, contact_ids: Sequence[str]) -> int:
    query = sa.select(sa.func.count()).select_from(events).where(events.c.contact_id.in_(list(contact_ids)))
    return int(conn.execute(query).scalar_one())


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
    query = sa.select(*[events.c[f] for f in EVENT_FIELDS]).where(events.c.contact_id.in_(list(contact_ids)))
    if kind:
        query = query.where(events.c.type == kind)
    if name:
        query = query.where(sa.or_(events.c.event == name, events.c.name == name))
    if source:
        query = query.where(events.c.source == source)
    if before is not None:
        stamp, event_id = before
        query = query.where(
            sa.or_(events.c.timestamp < stamp, sa.and_(events.c.timestamp == stamp, events.c.id < event_id))
        )
    query = query.order_by(events.c.timestamp.desc(), events.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
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


#: The columns of :func:`insert_internal`'s ``SELECT``, in order.
INTERNAL_COLUMNS = (
    "message_id",
    "type",
    "event",
    "contact_id",
    "properties",
    "timestamp",
    "received_at",
    "source",
)


def insert_internal(select: sa.Select[Any], *, returning_ids: bool = False) -> Any:
    """Internal events written set-based by one ``INSERT … SELECT`` (segment entries and exits of a
    refresh, score band crossings of a rebuild); ``select`` yields :data:`INTERNAL_COLUMNS`."""
    statement = events.insert().from_select(list(INTERNAL_COLUMNS), select)
    return statement.returning(events.c.id) if returning_ids else statement


def insert_internal_once(dialect: str, select: sa.Select[Any]) -> Any:
    """:func:`insert_internal`, skipping an event whose message id is stored already (``ON CONFLICT
    (message_id) DO NOTHING``): email status events written set-based by a broadcast."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(events).from_select(list(INTERNAL_COLUMNS), select)
    return statement.on_conflict_do_nothing(index_elements=["message_id"])


def message_ids(conn: Connection, event_ids: Sequence[int]) -> dict[int, str]:
    """The ``messageId`` of each of these events still stored, in one query."""
    if not event_ids:
        return {}
    query = where_in(conn, sa.select(events.c.id, events.c.message_id), events.c.id, list(event_ids))
    return {row.id: row.message_id for row in conn.execute(query)}
