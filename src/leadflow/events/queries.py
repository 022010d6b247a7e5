"""The event log's SQL: the tracking API's insert, the processor's queue, a contact's events, and what
merges and erasures do to the log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.events.models import events
from leadflow.kernel import jsonutil
from leadflow.kernel.db import Sample, insert_for, where_in_dialect

# --- the tracking API's write path (leadflow.events.ingest) ------------------------------------------

#: The columns a tracked message fills, in the order of :data:`INGEST_POSTGRES`'s record.
COLUMNS = (
    "message_id",
    "type",
    "event",
    "name",
    "user_id",
    "anonymous_id",
    "group_id",
    "previous_id",
    "contact_id",
    "source",
    "properties",
    "traits",
    "context",
    "integrations",
    "timestamp",
    "received_at",
)

#: PostgreSQL: a whole request's rows as one JSON document (psycopg's ``%s``), expanded by the server;
#: a repeated message id is stored once. Answers the type of each row stored. Run with
#: ``exec_driver_sql``: one short statement the server prepares once.
INGEST_POSTGRES = (
    "INSERT INTO events (message_id, type, event, name, user_id, anonymous_id, group_id, previous_id, "
    "contact_id, source, properties, traits, context, integrations, timestamp, received_at) "
    "SELECT message_id, type, event, name, user_id, anonymous_id, group_id, previous_id, contact_id, "
    "source, properties, traits, context, integrations, timestamp, received_at "
    "FROM json_to_recordset(%s::json) AS r(message_id varchar, type varchar, event varchar, "
    "name varchar, user_id varchar, anonymous_id varchar, group_id varchar, previous_id varchar, "
    "contact_id varchar, source varchar, properties jsonb, traits jsonb, context jsonb, "
    "integrations jsonb, timestamp timestamptz, received_at timestamptz) "
    "ON CONFLICT (message_id) DO NOTHING RETURNING type"
)


def insert_tracked(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[str]:
    """Store tracked messages (a repeated message id once); answers the type of each row stored. On
    PostgreSQL the whole batch is one JSON document, expanded into rows by the server."""
    values = [{name: row.get(name) for name in COLUMNS} for row in rows]
    if conn.dialect.name == "postgresql":
        return [kind for (kind,) in conn.exec_driver_sql(INGEST_POSTGRES, (jsonutil.dumps(values),))]
    return [kind for (kind,) in conn.execute(ingest(conn.dialect.name), values)]


def ingest(dialect: str) -> Any:
    """The other databases: rows of :data:`COLUMNS` (executemany), a repeated message id stored once;
    answers the type of each row stored."""
    statement = insert_for(dialect, events).on_conflict_do_nothing(index_elements=["message_id"])
    return statement.returning(events.c.type)


# --- the processor's queue -----------------------------------------------------------------------

_WAITING = events.c.processed_at.is_(None)
_FAILED = events.c.error.is_not(None)

#: The oldest unprocessed events, in arrival order.
PENDING = sa.select(events).where(_WAITING).order_by(events.c.id).limit(sa.bindparam("limit"))
MARK_FAILED = (
    events.update()
    .where(events.c.id == sa.bindparam("event_id"))
    .values(processed_at=sa.bindparam("at"), error=sa.bindparam("error"))
)
BACKLOG_COUNT = sa.select(sa.func.count()).select_from(events).where(_WAITING)
OLDEST_WAITING = sa.select(events.c.received_at).where(_WAITING).order_by(events.c.id).limit(1)
FAILED_COUNT = sa.select(sa.func.count()).select_from(events).where(_FAILED)
REQUEUE_FAILED = events.update().where(_FAILED).values(processed_at=None, error=None)


def delete(event_ids: Sequence[int]) -> sa.Delete:
    return events.delete().where(events.c.id.in_(list(event_ids)))


# --- merges and erasures -------------------------------------------------------------------------

#: Executed with ``[{"loser": …, "survivor": …}, …]``.
MOVE_TO_SURVIVOR = (
    events.update()
    .where(events.c.contact_id == sa.bindparam("loser"))
    .values(contact_id=sa.bindparam("survivor"))
)


def delete_of_contacts(contact_ids: Sequence[str]) -> sa.Delete:
    return events.delete().where(events.c.contact_id.in_(list(contact_ids)))


def delete_waiting_of(kind: str, ids: Sequence[str]) -> sa.Delete:
    """Events still waiting that carry one of these ``user`` or ``anon`` (anonymous) ids."""
    column = events.c.user_id if kind == "user" else events.c.anonymous_id
    return events.delete().where(_WAITING, column.in_(list(ids)))


# --- reads -----------------------------------------------------------------------------------------

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


def count_of_contacts(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(sa.func.count()).select_from(events).where(events.c.contact_id.in_(list(contact_ids)))


def of_contacts(
    contact_ids: Sequence[str],
    *,
    kind: str | None,
    name: str | None,
    source: str | None,
    before: tuple[datetime, int] | None,
    limit: int | None,
) -> sa.Select[Any]:
    """Contacts' events newest first; ``before`` is the (timestamp, id) to continue after."""
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
    return query if limit is None else query.limit(limit)


def timeline(
    contact_ids: Sequence[str], names: Sequence[str], *, before: tuple[datetime, int] | None, limit: int
) -> sa.Select[Any]:
    """A contact's page views and the events named ``names``, newest first (a CRM lead's timeline),
    through the ``(contact_id, timestamp)`` index; ``before`` as in :func:`of_contacts`."""
    query = of_contacts(contact_ids, kind=None, name=None, source=None, before=before, limit=limit)
    return query.where(sa.or_(events.c.type == "page", events.c.event.in_(list(names))))


def message_ids(dialect: str, event_ids: Sequence[int]) -> Any:
    """The ``messageId`` of each of these events still stored."""
    return where_in_dialect(
        dialect, sa.select(events.c.id, events.c.message_id), events.c.id, list(event_ids)
    )


# --- internal events written set-based ---------------------------------------------------------------

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
    statement = insert_for(dialect, events).from_select(list(INTERNAL_COLUMNS), select)
    return statement.on_conflict_do_nothing(index_elements=["message_id"])


def _internal_sample() -> sa.Select[Any]:
    columns: list[Any] = [sa.literal(name).label(name) for name in INTERNAL_COLUMNS]
    return sa.select(*columns)


_AT = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLES: list[Sample] = [
    lambda: timeline(["c1"], ["leadflow.email_sent"], before=(datetime(2026, 1, 1, tzinfo=UTC), 5), limit=10),
    lambda: ingest("postgresql"),  # (SQLite's ON CONFLICT construct compiles on SQLite only)
    lambda: delete([1, 2]),
    lambda: [
        delete_of_contacts(["c1"]),
        delete_waiting_of("user", ["u1"]),
        delete_waiting_of("anon", ["a1"]),
    ],
    lambda: count_of_contacts(["c1"]),
    lambda: of_contacts(["c1"], kind="track", name="Signed Up", source="segment", before=(_AT, 5), limit=10),
    lambda: [message_ids("sqlite", [1, 2]), message_ids("postgresql", [1, 2])],
    lambda: [insert_internal(_internal_sample(), returning_ids=True)],
    lambda: insert_internal_once("postgresql", _internal_sample()),
]


# The newest events received (the console's dashboard).
RECENT = (
    sa.select(events.c.type, events.c.event, events.c.name, events.c.contact_id, events.c.received_at)
    .order_by(events.c.id.desc())
    .limit(sa.bindparam("limit"))
)
