"""The statements of delivery: the outbox (templates by key, the frequency cap), the deliverer (claim,
lease check, hard-bounce suppressions) and broadcasts (their rows, and writing a chunk of recipients
set-based: one ``INSERT … SELECT`` of messages, their events with them).

The deliverer's claim is the hot path: on PostgreSQL with ``FOR UPDATE SKIP LOCKED``, so that several
workers share the outbox.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import visitors
from sqlalchemy.sql.expression import Executable, Grouping

from leadflow.contacts import service as contacts
from leadflow.events import service as events
from leadflow.kernel.db import insert_for, where_in_dialect
from leadflow.kernel.types import UTCDateTime, json_type
from leadflow.messaging.models import broadcasts, email_templates, messages, suppressions
from leadflow.segments import service as segments

WAITING = ("queued", "deferred")  # messages still to be sent (or retried)
COUNTED = ("queued", "deferred", "sent")  # what counts against the frequency cap
CAPPED = "frequency_capped"
_m = messages.c
_b = broadcasts.c

# --- the outbox -------------------------------------------------------------------------------------


def template_ids(keys: Sequence[str]) -> sa.Select[Any]:
    return sa.select(email_templates.c.key, email_templates.c.id).where(email_templates.c.key.in_(list(keys)))


def cap_counts(dialect: str, day_ago: datetime, week_ago: datetime, contact_ids: Sequence[str]) -> Any:
    """``(contact_id, in the last day, in the last week)`` of marketing messages counted by the cap."""
    today = sa.func.sum(sa.case((_m.created_at > day_ago, 1), else_=0))
    query = (
        sa.select(_m.contact_id, today, sa.func.count())
        .where(_m.kind == "marketing", _m.status.in_(COUNTED), _m.created_at > week_ago)
        .group_by(_m.contact_id)
    )
    return where_in_dialect(dialect, query, _m.contact_id, contact_ids)


# --- the deliverer ----------------------------------------------------------------------------------


def claim(dialect: str, now: datetime, limit: int) -> sa.Select[Any]:
    """Due waiting messages, oldest due first; locked, skipping those another worker holds, on
    PostgreSQL (several workers share the outbox)."""
    query = (
        sa.select(messages).where(_m.status.in_(WAITING), _m.due_at <= now).order_by(_m.due_at).limit(limit)
    )
    return query.with_for_update(skip_locked=True) if dialect == "postgresql" else query


def current(dialect: str, message_ids: Sequence[str]) -> sa.Select[Any]:
    """The messages' state now, locked in id order (PostgreSQL) while outcomes are decided."""
    query = (
        sa.select(_m.id, _m.status, _m.attempts, _m.error).where(_m.id.in_(list(message_ids))).order_by(_m.id)
    )
    return query.with_for_update() if dialect == "postgresql" else query


def suppress(dialect: str) -> Any:
    """Add suppressions, keeping any entry an address already has."""
    return insert_for(dialect, suppressions).on_conflict_do_nothing(index_elements=["email"])


# --- broadcasts -------------------------------------------------------------------------------------

INSERT_BROADCAST = broadcasts.insert()


def broadcast(dialect: str, broadcast_id: str, *, lock: bool = False) -> sa.Select[Any]:
    """The broadcast; ``lock`` takes its row lock (PostgreSQL), which serialises cancel with a start."""
    query = sa.select(broadcasts).where(_b.id == broadcast_id)
    return query.with_for_update() if lock and dialect == "postgresql" else query


def broadcasts_page(after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(broadcasts).order_by(_b.id).limit(limit)
    return query.where(_b.id > after) if after else query


def due_broadcasts(now: datetime) -> sa.Select[Any]:
    return sa.select(_b.id).where(_b.status == "scheduled", _b.send_at <= now).order_by(_b.send_at, _b.id)


def update_broadcast(broadcast_id: str, **values: Any) -> sa.Update:
    return broadcasts.update().where(_b.id == broadcast_id).values(**values)


def finish_done(now: datetime) -> sa.Update:
    """Sending broadcasts none of whose messages waits any more become ``sent``."""
    waiting = sa.select(_m.id).where(_m.broadcast_id == _b.id, _m.status.in_(WAITING)).exists()
    return broadcasts.update().where(_b.status == "sending", ~waiting).values(status="sent", finished_at=now)


def marketing_template(id_or_key: str) -> sa.Select[Any]:
    t = email_templates.c
    return sa.select(t.id, t.kind, t.topic).where(sa.or_(t.key == id_or_key, t.id == id_or_key))


def status_counts(broadcast_ids: Sequence[str]) -> sa.Select[Any]:
    """``(broadcast_id, status, count)`` of the broadcasts' messages."""
    return (
        sa.select(_m.broadcast_id, _m.status, sa.func.count())
        .where(_m.broadcast_id.in_(list(broadcast_ids)))
        .group_by(_m.broadcast_id, _m.status)
    )


def progress(broadcast_id: str) -> Any:
    """The last contact written and how many: where an interrupted start got to."""
    return sa.select(sa.func.max(_m.contact_id), sa.func.count()).where(_m.broadcast_id == broadcast_id)


def written(broadcast_id: str) -> sa.Select[Any]:
    return sa.select(sa.func.count()).where(_m.broadcast_id == broadcast_id)


def lock_waiting(broadcast_id: str) -> sa.Select[Any]:
    """Lock the broadcast's waiting messages in id order (PostgreSQL), answering one row however many."""
    locked = (
        sa.select(_m.id)
        .where(_m.broadcast_id == broadcast_id, _m.status.in_(WAITING))
        .order_by(_m.id)
        .with_for_update()
        .subquery()
    )
    return sa.select(sa.func.count()).select_from(locked)


def cancel_waiting(broadcast_id: str, reason: str) -> sa.Update:
    return (
        messages.update()
        .where(_m.broadcast_id == broadcast_id, _m.status.in_(WAITING))
        .values(status="suppressed", error=reason)
    )


def _members(bounded: bool) -> sa.Select[Any]:
    """Members of the segment with an email address, after ``:after`` (and up to ``:upto``), through
    the segments and contacts services (one join, as a segment refresh reads them)."""
    query = segments.members_after(bounded=bounded)
    return contacts.with_email(query, query.selected_columns.contact_id)


def _boundary() -> sa.Select[Any]:
    query = _members(False)
    column = query.selected_columns.contact_id
    return query.order_by(column).limit(1).offset(sa.bindparam("skip", type_=sa.Integer))


#: The last member of a chunk: parameters ``segment_id``, ``after``, ``skip`` (chunk size - 1).
BOUNDARY = _boundary()


def _capped(per_day: int, per_week: int, bounded: bool) -> sa.Select[Any]:
    """Contacts of the chunk at or over the frequency cap: the outbox's cap count, in SQL."""
    over = [
        *(
            [
                sa.func.sum(
                    sa.case((_m.created_at > sa.bindparam("day_ago", type_=UTCDateTime()), 1), else_=0)
                )
                >= sa.bindparam("per_day", type_=sa.Integer)
            ]
            if per_day
            else []
        ),
        *([sa.func.count() >= sa.bindparam("per_week", type_=sa.Integer)] if per_week else []),
    ]
    if not over:
        return sa.select(_m.contact_id).where(sa.false())
    query = sa.select(_m.contact_id).where(
        _m.kind == "marketing",
        _m.status.in_(COUNTED),
        _m.created_at > sa.bindparam("week_ago", type_=UTCDateTime()),
        _m.contact_id > sa.bindparam("after"),
    )
    if bounded:
        query = query.where(_m.contact_id <= sa.bindparam("upto"))
    return query.group_by(_m.contact_id).having(sa.or_(*over))


def _due(dialect: str, rn: Any, throttled: bool) -> Any:
    """``due_at``: the start, plus one minute per ``per_minute`` members before this one."""
    base = sa.bindparam("base", type_=UTCDateTime())
    offset = sa.bindparam("offset", type_=sa.BigInteger)
    per_minute = sa.bindparam("per_minute", type_=sa.Integer)
    if dialect == "postgresql":
        start = sa.cast(base, postgresql.TIMESTAMP(timezone=True))
        if not throttled:
            return start
        minute = sa.cast((offset + rn - 1) // per_minute, sa.Integer)
        return start + minute * sa.literal_column("interval '1 minute'", sa.Interval)
    if not throttled:
        return base
    # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime's %f gives the milliseconds
    # (parenthesised: SQLite's || binds tighter than /)
    minutes = sa.literal("+", sa.String).concat(Grouping((offset + rn - 1) // per_minute)).concat(" minutes")
    return sa.func.strftime("%Y-%m-%d %H:%M:%f", base, minutes).concat("000")


def chunk_insert(dialect: str, *, bounded: bool, throttled: bool, per_day: int, per_week: int) -> Any:
    """``INSERT INTO messages … SELECT`` one row per member of the chunk (``ON CONFLICT (key) DO
    NOTHING``: a chunk written before is skipped).

    Ids are ULIDs made set-based: the first 16 characters of a fresh ULID for the chunk (its time and 30
    random bits), then the member's row number in the chunk, zero-padded to 10 digits (digits are ULID
    characters). Unique (one prefix per chunk, one number per row), time-ordered like every other id,
    and increasing within the chunk, so the primary key (and the events' keys made from it) are
    appended to, not written at random places.
    """
    members = _members(bounded).subquery("mb")
    r = sa.select(
        members.c.contact_id,
        (sa.bindparam("key_prefix", type_=sa.String) + members.c.contact_id).label("key"),
        sa.func.row_number().over(order_by=members.c.contact_id).label("rn"),
    ).subquery("r")
    cap = _capped(per_day, per_week, bounded).subquery("cap")
    pg = dialect == "postgresql"
    number = (
        sa.func.lpad(sa.cast(r.c.rn, sa.Text), 10, "0")
        if pg
        else sa.func.substr(sa.literal("0000000000", sa.String).concat(r.c.rn), -10, 10)
    )
    context = sa.bindparam("context", type_=json_type())
    free = cap.c.contact_id.is_(None)
    rows = (
        sa.select(
            sa.bindparam("id_prefix", type_=sa.String).concat(number),
            r.c.key,
            sa.literal("marketing"),
            r.c.contact_id,
            sa.bindparam("template_id", type_=sa.String),
            sa.bindparam("topic", type_=sa.String),
            sa.bindparam("broadcast_id", type_=sa.String),
            sa.case((free, "queued"), else_="suppressed"),
            _due(dialect, r.c.rn, throttled),
            sa.literal(0),
            sa.cast(context, postgresql.JSONB) if pg else context,
            sa.case((free, sa.null()), else_=CAPPED),
            sa.bindparam("now", type_=UTCDateTime()),
        )
        .select_from(r.outerjoin(cap, cap.c.contact_id == r.c.contact_id))
        .where(sa.true())  # (SQLite needs a WHERE before an upsert clause)
    )
    columns = [
        "id",
        "key",
        "kind",
        "contact_id",
        "template_id",
        "topic",
        "broadcast_id",
        "status",
        "due_at",
        "attempts",
        "context",
        "error",
        "created_at",
    ]
    insert = insert_for(dialect, messages).from_select(columns, rows)
    return insert.on_conflict_do_nothing(index_elements=["key"])


def _event_rows(dialect: str, source: Any, condition: Any) -> sa.Select[Any]:
    """``leadflow.email_<status>`` events for the messages of ``source`` meeting ``condition``, shaped
    as the outbox shapes them (message id ``email:{id}:{status}``: written once)."""
    build = sa.func.jsonb_build_object if dialect == "postgresql" else sa.func.json_object
    fields = (
        "message_id",
        source.c.id,
        "journey_id",
        sa.null(),
        "broadcast_id",
        source.c.broadcast_id,
        "step_id",
        sa.null(),
        "template_id",
        source.c.template_id,
        "kind",
        "marketing",
    )
    now = sa.bindparam("now", type_=UTCDateTime())
    return sa.select(
        sa.literal("email:").concat(source.c.id).concat(":").concat(source.c.status),
        sa.literal("track"),
        sa.literal("leadflow.email_").concat(source.c.status),
        source.c.contact_id,
        sa.case((source.c.error.is_(None), build(*fields)), else_=build(*fields, "reason", source.c.error)),
        now,
        now,
        sa.literal("internal"),
    ).where(condition)


def _events(dialect: str, source: Any, condition: Any) -> Any:
    return events.insert_internal_once(dialect, _event_rows(dialect, source, condition))


def chunk_events(bounded: bool) -> Any:
    """SQLite: the events of the chunk just written (messages created now, queued or capped)."""
    condition = sa.and_(
        _m.broadcast_id == sa.bindparam("broadcast_id"),
        _m.contact_id > sa.bindparam("after"),
        *([_m.contact_id <= sa.bindparam("upto")] if bounded else []),
        _m.created_at == sa.bindparam("now", type_=UTCDateTime()),
        sa.or_(_m.status == "queued", _m.error == CAPPED),
    )
    return _events("sqlite", messages, condition)


def chunk_with_events(*, bounded: bool, throttled: bool, per_day: int, per_week: int) -> sa.Select[Any]:
    """PostgreSQL: the chunk's messages and their events in one statement (the events come from the
    rows the insert returns); answers how many messages were new."""
    insert = chunk_insert(
        "postgresql", bounded=bounded, throttled=throttled, per_day=per_day, per_week=per_week
    )
    inserted = insert.returning(
        _m.id, _m.contact_id, _m.status, _m.error, _m.template_id, _m.broadcast_id
    ).cte("inserted")
    emitted = _events("postgresql", inserted, sa.true()).cte("emitted")
    return sa.select(sa.func.count()).select_from(inserted).add_cte(emitted)


def cancelled_events(dialect: str, reason: str) -> Any:
    """The events of a cancel's suppressed messages (parameters ``broadcast_id``, ``now``)."""
    condition = sa.and_(
        _m.broadcast_id == sa.bindparam("broadcast_id"), _m.status == "suppressed", _m.error == reason
    )
    return _events(dialect, messages, condition)


_AT = datetime(2026, 1, 1, tzinfo=UTC)
#: A chunk's parameters (the compile test renders the statements whole, parameters included).
_CHUNK: dict[str, Any] = {
    "segment_id": "s1",
    "after": "",
    "upto": "c9",
    "key_prefix": "b:b1:",
    "id_prefix": "01J00000000000",
    "template_id": "t1",
    "topic": None,
    "broadcast_id": "b1",
    "offset": 0,
    "per_minute": 60,
    "base": _AT,
    "context": {},
    "now": _AT,
    "day_ago": _AT,
    "week_ago": _AT,
    "per_day": 2,
    "per_week": 5,
}


def _bound(statement: Any) -> Any:
    """``statement`` with :data:`_CHUNK`'s values in its parameters (a copy; for the compile test)."""

    def fill(bind: Any) -> None:
        if bind.key in _CHUNK:
            bind.value, bind.required = _CHUNK[bind.key], False

    return visitors.cloned_traverse(statement, {}, {"bindparam": fill})


SAMPLES: list[Callable[[], Executable | Sequence[Executable]]] = [
    lambda: template_ids(["welcome"]),
    lambda: [claim(d, _AT, 100) for d in ("sqlite", "postgresql")],
    lambda: [cap_counts(d, _AT, _AT, ["c1"]) for d in ("sqlite", "postgresql")],
    lambda: [current(d, ["m1"]) for d in ("sqlite", "postgresql")] + [suppress("postgresql")],
    lambda: [broadcast("postgresql", "b1", lock=True), broadcasts_page("b0", 10), due_broadcasts(_AT)],
    lambda: [update_broadcast("b1", status="sent"), finish_done(_AT), marketing_template("t")],
    lambda: [status_counts(["b1"]), progress("b1"), written("b1"), lock_waiting("b1")],
    lambda: [cancel_waiting("b1", "x")],
    lambda: [
        _bound(chunk_insert("sqlite", bounded=bounded, throttled=throttled, per_day=day, per_week=week))
        for bounded in (True, False)
        for throttled in (True, False)
        for day, week in ((0, 0), (2, 0), (0, 5), (2, 5))
    ],
    lambda: [
        _bound(chunk_with_events(bounded=bounded, throttled=throttled, per_day=day, per_week=week))
        for bounded in (True, False)
        for throttled in (True, False)
        for day, week in ((0, 0), (2, 5))
    ],
    lambda: [
        _bound(chunk_events(True)),
        _bound(chunk_events(False)),
        _bound(cancelled_events("postgresql", "x")),
    ],
]
