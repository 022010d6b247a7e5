"""Broadcasts: a one-off marketing email to a segment's members, throttled, with journey email's guarantees.

Life: ``draft`` → (schedule) ``scheduled`` → (:func:`start_due`, once ``send_at`` has come) ``sending`` →
(:func:`finish_done`, when nothing of it waits in the outbox) ``sent``; ``draft`` / ``scheduled`` /
``sending`` → (cancel) ``cancelled``, which suppresses every message of it still waiting.

Starting writes one outbox message per current member with an email address, set-based, in chunks of
members by ``contact_id`` (one transaction each, nothing but a few scalars in Python, so a million
members cost bounded memory). Each message is unique by its key ``b:{broadcast}:{contact}``, so a start
interrupted half-way and run again completes without a duplicate; it resumes after the last contact
written. Suppression lists, unsubscribes and topic preferences are decided at send time by the
deliverer, exactly as for journey email; the frequency cap is decided here, as journeys do.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.kernel.brand import require_postal_address
from leadflow.kernel.clock import as_utc
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import analyze, on_commit
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.kernel.inputs import INT32_MAX
from leadflow.kernel.types import UTCDateTime, json_type
from leadflow.messaging.delivery import outbox
from leadflow.messaging.models import broadcasts, email_templates, messages
from leadflow.segments import service as segments

CANCELLED = "broadcast cancelled"
CAPPED = "frequency_capped"
WAITING = ("queued", "deferred")  # messages still to be sent (or retried)
ANALYZE_AFTER_ROWS = 10_000  # a chunk this big refreshes the planner's statistics of the messages table


class BroadcastCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    segment: str = Field(min_length=1, max_length=100, description="the segment's id or key")
    template: str = Field(
        min_length=1, max_length=100, description="a marketing email template's key (or id)"
    )
    send_at: datetime | None = Field(default=None, description="when to start; none: as soon as scheduled")
    per_minute: int | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="throttle: at most this many messages fall due per minute",
    )

    @field_validator("send_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return as_utc(value) if value is not None else None


class Broadcast(BaseModel):
    id: str
    name: str
    segment_id: str
    template_id: str
    topic: str | None
    status: str
    send_at: datetime | None
    per_minute: int | None
    recipients: int
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int] = Field(default_factory=dict, description="its messages by status")


# --- records -----------------------------------------------------------------------------------------


def _row(conn: Connection, broadcast_id: str, *, lock: bool = False) -> Any:
    """The broadcast; ``lock`` takes its row lock (PostgreSQL), which serialises cancel with a start."""
    query = sa.select(broadcasts).where(broadcasts.c.id == broadcast_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no broadcast {broadcast_id}", code="broadcast_not_found")
    return row


def _views(conn: Connection, rows: Sequence[Any]) -> list[Broadcast]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    ids = [row.id for row in rows]
    if ids:
        query = (
            sa.select(messages.c.broadcast_id, messages.c.status, sa.func.count())
            .where(messages.c.broadcast_id.in_(ids))
            .group_by(messages.c.broadcast_id, messages.c.status)
        )
        for broadcast_id, status, count in conn.execute(query):
            counts[broadcast_id][status] = int(count)
    return [Broadcast(**row._mapping, counts=counts.get(row.id, {})) for row in rows]


def _segment(conn: Connection, id_or_key: str) -> str:
    found = segments.resolve(conn, id_or_key)
    if found is None:
        raise Invalid(f"segment {id_or_key} does not exist", code="unknown_segment")
    return found


def _template(conn: Connection, id_or_key: str) -> Any:
    """A broadcast is marketing: its template must be a marketing one (its topic is the broadcast's)."""
    t = email_templates.c
    query = sa.select(t.id, t.kind, t.topic).where(sa.or_(t.key == id_or_key, t.id == id_or_key))
    row = conn.execute(query).first()
    if row is None:
        raise Invalid(f"email template {id_or_key} does not exist", code="unknown_template")
    if row.kind != "marketing":
        raise Invalid(f"email template {id_or_key} is not a marketing template", code="not_marketing")
    return row


def _expect(row: Any, allowed: Sequence[str], action: str) -> None:
    if row.status not in allowed:
        raise Conflict(f"a {row.status} broadcast cannot be {action}", code="broadcast_status")


def _done(
    conn: Connection, ctx: AppContext, broadcast_id: str, action: str, actor: str, data: Any
) -> Broadcast:
    """Audit the change (in its transaction) and answer the broadcast as it now is."""
    audit.record(
        conn,
        ctx.clock,
        actor=actor,
        action=action,
        entity_type="broadcast",
        entity_id=broadcast_id,
        data=data,
    )
    return _views(conn, [_row(conn, broadcast_id)])[0]


# --- the API's operations ----------------------------------------------------------------------------


def create(ctx: AppContext, data: BroadcastCreate, *, actor: str) -> Broadcast:
    """A draft. Its segment (id or key) and its template (a marketing one) must exist."""
    broadcast_id = new_id()
    with ctx.db.write() as conn:
        segment_id = _segment(conn, data.segment)
        template = _template(conn, data.template)
        values = data.model_dump(include={"name", "send_at", "per_minute"})
        values.update(id=broadcast_id, segment_id=segment_id, template_id=template.id, topic=template.topic)
        values.update(status="draft", recipients=0, created_by=actor, created_at=ctx.clock.now())
        conn.execute(broadcasts.insert(), values)
        return _done(conn, ctx, broadcast_id, "broadcast.created", actor, data.model_dump(mode="json"))


def schedule(ctx: AppContext, broadcast_id: str, *, actor: str) -> Broadcast:
    """Draft → scheduled. Without a ``send_at`` it starts now; its segment and template must still exist,
    and the sender's postal address must be set (marketing email shows it: ``422 missing_postal_address``)."""
    with ctx.db.write() as conn:
        row = _row(conn, broadcast_id, lock=True)
        _expect(row, ("draft",), "scheduled")
        require_postal_address(ctx.settings, "a broadcast (marketing email)")
        _segment(conn, row.segment_id)
        _template(conn, row.template_id)
        send_at = row.send_at or ctx.clock.now()
        conn.execute(
            broadcasts.update().where(broadcasts.c.id == row.id).values(status="scheduled", send_at=send_at)
        )
        return _done(conn, ctx, row.id, "broadcast.scheduled", actor, {"send_at": send_at.isoformat()})


def _lock_waiting(conn: Connection, broadcast_id: str) -> None:
    """Lock the broadcast's waiting messages in id order, the order a deliverer recording outcomes
    locks them in. The UPDATE alone would lock them in storage order, and a deliverer holding some
    while waiting for others could deadlock with it (PostgreSQL would abort one of the two)."""
    if conn.dialect.name != "postgresql":
        return  # SQLite: one writer at a time
    locked = (
        sa.select(messages.c.id)
        .where(messages.c.broadcast_id == broadcast_id, messages.c.status.in_(WAITING))
        .order_by(messages.c.id)
        .with_for_update()
        .subquery()
    )
    conn.execute(sa.select(sa.func.count()).select_from(locked))  # one row back, however many locked


def cancel(ctx: AppContext, broadcast_id: str, *, actor: str) -> Broadcast:
    """Stop a broadcast: every message of it still waiting (queued, or deferred for a retry) becomes
    ``suppressed`` (``broadcast cancelled``) in one statement, with its ``leadflow.email_suppressed``
    event. The broadcast's row lock is taken first, so a start in progress stops at its next chunk."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        row = _row(conn, broadcast_id, lock=True)
        _expect(row, ("draft", "scheduled", "sending"), "cancelled")
        conn.execute(
            broadcasts.update().where(broadcasts.c.id == row.id).values(status="cancelled", finished_at=now)
        )
        _lock_waiting(conn, row.id)
        suppressed = conn.execute(
            messages.update()
            .where(messages.c.broadcast_id == row.id, messages.c.status.in_(WAITING))
            .values(status="suppressed", error=CANCELLED)
        ).rowcount
        if suppressed:
            condition = "m.broadcast_id = :broadcast_id AND m.status = 'suppressed' AND m.error = :error"
            params = {"broadcast_id": row.id, "error": CANCELLED, "now": now}
            _execute(conn, _emit_sql(conn.dialect.name, "messages", condition), params)
            on_commit(conn, lambda: ctx.signals.announce("events"))
        return _done(conn, ctx, row.id, "broadcast.cancelled", actor, {"suppressed": suppressed})


def get(ctx: AppContext, broadcast_id: str) -> Broadcast:
    with ctx.db.read() as conn:
        return _views(conn, [_row(conn, broadcast_id)])[0]


def listing(ctx: AppContext, *, after: str | None, limit: int) -> list[Broadcast]:
    """Oldest first (ids are time-ordered); ``after`` is the last id of the previous page."""
    query = sa.select(broadcasts).order_by(broadcasts.c.id).limit(limit)
    if after:
        query = query.where(broadcasts.c.id > after)
    with ctx.db.read() as conn:
        return _views(conn, list(conn.execute(query)))


def finish_done(ctx: AppContext) -> int:
    """Sending broadcasts none of whose messages waits any more become ``sent``; returns how many."""
    waiting = (
        sa.select(messages.c.id)
        .where(messages.c.broadcast_id == broadcasts.c.id, messages.c.status.in_(WAITING))
        .exists()
    )
    with ctx.db.write() as conn:
        done = conn.execute(
            broadcasts.update()
            .where(broadcasts.c.status == "sending", ~waiting)
            .values(status="sent", finished_at=ctx.clock.now())
        )
        return int(done.rowcount)


# --- starting: the outbox rows, set-based ------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """What one start needs between its chunk transactions: the broadcast, and how far it has got."""

    id: str
    name: str
    segment_id: str
    template_id: str
    topic: str | None
    per_minute: int | None
    base: datetime  # when the throttle's first minute begins
    after: str  # the last contact written ('' before the first)
    offset: int  # how many members came before ``after`` (the throttle's row numbers go on from it)


def start_due(ctx: AppContext, *, limit_rows: int = 50_000) -> int:
    """Start every scheduled broadcast whose ``send_at`` has come: write its messages in chunks of at
    most ``limit_rows`` members (a transaction each), then mark it ``sending`` with its recipient count.
    Returns how many messages were written."""
    if limit_rows < 1:
        raise ValueError("limit_rows must be at least 1")
    query = (
        sa.select(broadcasts.c.id)
        .where(broadcasts.c.status == "scheduled", broadcasts.c.send_at <= ctx.clock.now())
        .order_by(broadcasts.c.send_at, broadcasts.c.id)
    )
    with ctx.db.read() as conn:
        due = list(conn.execute(query).scalars())
    return sum(_start(ctx, broadcast_id, limit_rows) for broadcast_id in due)


def _start(ctx: AppContext, broadcast_id: str, limit_rows: int) -> int:
    plan = _claim(ctx, broadcast_id)
    written = 0
    while plan is not None:
        with ctx.db.write() as conn:
            if _row(conn, broadcast_id, lock=True).status != "scheduled":
                return written  # cancelled meanwhile
            upto = _boundary(conn, plan, limit_rows)
            new = _write_chunk(conn, ctx, plan, upto)
            written += new
            if upto is None:
                _mark_sending(conn, broadcast_id)
        if new >= ANALYZE_AFTER_ROWS and not ctx.db.is_sqlite:  # deliverers drain the first chunks already
            with ctx.db.write() as conn:
                analyze(conn, messages)
        if upto is None:
            return written
        # A chunk found written means another start is ahead: go on from where its rows end.
        plan = (
            replace(plan, after=upto, offset=plan.offset + limit_rows) if new else _claim(ctx, broadcast_id)
        )
    return written


def _claim(ctx: AppContext, broadcast_id: str) -> _Plan | None:
    """Note the start time (kept by a resumed start), and where an interrupted start got to."""
    with ctx.db.write() as conn:
        row = _row(conn, broadcast_id, lock=True)
        if row.status != "scheduled":
            return None
        started = row.started_at or ctx.clock.now()
        if row.started_at is None:
            conn.execute(broadcasts.update().where(broadcasts.c.id == row.id).values(started_at=started))
        last, done = conn.execute(
            sa.select(sa.func.max(messages.c.contact_id), sa.func.count()).where(
                messages.c.broadcast_id == row.id
            )
        ).one()
    return _Plan(
        id=row.id,
        name=row.name,
        segment_id=row.segment_id,
        template_id=row.template_id,
        topic=row.topic,
        per_minute=row.per_minute,
        # whole milliseconds: SQLite's date arithmetic is exact to the millisecond
        base=started.replace(microsecond=started.microsecond // 1000 * 1000),
        after=last or "",
        offset=int(done),
    )


def _mark_sending(conn: Connection, broadcast_id: str) -> None:
    recipients = conn.execute(
        sa.select(sa.func.count()).where(messages.c.broadcast_id == broadcast_id)
    ).scalar_one()
    conn.execute(
        broadcasts.update()
        .where(broadcasts.c.id == broadcast_id)
        .values(status="sending", recipients=int(recipients))
    )


# The segments domain owns these tables; this SQL is to move to a function of leadflow.segments.service.
def _members_sql(bounded: bool) -> str:
    """Members of the segment with an email address, after ``:after`` (and up to ``:upto``)."""
    upto = " AND sm.contact_id <= :upto" if bounded else ""
    return (
        "SELECT sm.contact_id FROM segment_members sm JOIN contacts c ON c.id = sm.contact_id"
        f" WHERE sm.segment_id = :segment_id AND sm.contact_id > :after{upto}"
        " AND c.email IS NOT NULL AND c.email <> ''"
    )


def _boundary(conn: Connection, plan: _Plan, limit_rows: int) -> str | None:
    """The last member of the chunk after ``plan.after``; None when the rest fits in one chunk."""
    query = sa.text(_members_sql(False) + " ORDER BY sm.contact_id LIMIT 1 OFFSET :skip")
    params = {"segment_id": plan.segment_id, "after": plan.after, "skip": limit_rows - 1}
    found: str | None = conn.execute(query, params).scalar()
    return found


def _capped_sql(ctx: AppContext, bounded: bool) -> str:
    """Contacts of the chunk at or over the frequency cap: :func:`outbox.over_cap`'s count, in SQL."""
    per_day, per_week = ctx.settings.frequency_cap_per_day, ctx.settings.frequency_cap_per_week
    over = [
        *(["SUM(CASE WHEN created_at > :day_ago THEN 1 ELSE 0 END) >= :per_day"] if per_day else []),
        *(["COUNT(*) >= :per_week"] if per_week else []),
    ]
    if not over:
        return "SELECT contact_id FROM messages WHERE 1 = 0"
    counted = ", ".join(f"'{status}'" for status in outbox.COUNTED)
    upto = " AND contact_id <= :upto" if bounded else ""
    return (
        f"SELECT contact_id FROM messages WHERE kind = 'marketing' AND status IN ({counted})"
        f" AND created_at > :week_ago AND contact_id > :after{upto}"
        f" GROUP BY contact_id HAVING {' OR '.join(over)}"
    )


def _due_sql(dialect: str, throttled: bool) -> str:
    """``due_at``: the start, plus one minute per ``per_minute`` members before this one."""
    if dialect == "postgresql":
        base = "CAST(:base AS timestamptz)"
        minute = "CAST((CAST(:offset AS bigint) + r.rn - 1) / CAST(:per_minute AS integer) AS integer)"
        return f"{base} + {minute} * interval '1 minute'" if throttled else base
    # SQLite stores 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime's %f gives the milliseconds
    minute = "(:offset + r.rn - 1) / :per_minute"
    return (
        f"strftime('%Y-%m-%d %H:%M:%f', :base, '+' || ({minute}) || ' minutes') || '000'"
        if throttled
        else ":base"
    )


def _insert_sql(ctx: AppContext, dialect: str, plan: _Plan, bounded: bool) -> str:
    """``INSERT INTO messages ... SELECT`` one row per member of the chunk.

    Ids are ULIDs made set-based: the first 16 characters of a fresh ULID for the chunk (its time and 30
    random bits), then the member's row number in the chunk, zero-padded to 10 digits (digits are ULID
    characters). Unique (one prefix per chunk, one number per row), time-ordered like every other id,
    and increasing within the chunk, so the primary key (and the events' keys made from it) are
    appended to, not written at random places.
    """
    pg = dialect == "postgresql"
    number = "lpad(CAST(r.rn AS text), 10, '0')" if pg else "substr('0000000000' || r.rn, -10, 10)"
    context = "CAST(:context AS jsonb)" if pg else ":context"
    return (
        "INSERT INTO messages (id, key, kind, contact_id, template_id, topic, broadcast_id, status,"
        " due_at, attempts, context, error, created_at)"
        f" SELECT :id_prefix || {number}, r.key, 'marketing', r.contact_id, :template_id, :topic,"
        " :broadcast_id,"
        " CASE WHEN cap.contact_id IS NULL THEN 'queued' ELSE 'suppressed' END,"
        f" {_due_sql(dialect, plan.per_minute is not None)}, 0, {context},"
        f" CASE WHEN cap.contact_id IS NULL THEN NULL ELSE '{CAPPED}' END, :now"
        " FROM (SELECT mb.contact_id, :key_prefix || mb.contact_id AS key,"
        " row_number() OVER (ORDER BY mb.contact_id) AS rn"
        f" FROM ({_members_sql(bounded)}) mb) r"
        f" LEFT JOIN ({_capped_sql(ctx, bounded)}) cap ON cap.contact_id = r.contact_id"
        " WHERE true ON CONFLICT (key) DO NOTHING"  # (SQLite needs a WHERE before an upsert clause)
    )


def _emit_sql(dialect: str, source: str, condition: str) -> str:
    """``leadflow.email_<status>`` events for the messages ``m`` of ``source`` meeting ``condition``,
    shaped as :func:`outbox.emit` shapes them (key ``email:{id}:{status}``: written once)."""
    build = "jsonb_build_object" if dialect == "postgresql" else "json_object"
    fields = (
        "'message_id', m.id, 'journey_id', NULL, 'broadcast_id', m.broadcast_id, 'step_id', NULL,"
        " 'template_id', m.template_id, 'kind', 'marketing'"
    )
    properties = (
        f"CASE WHEN m.error IS NULL THEN {build}({fields}) ELSE {build}({fields}, 'reason', m.error) END"
    )
    return (
        "INSERT INTO events (message_id, type, event, contact_id, properties, timestamp, received_at, source)"
        " SELECT 'email:' || m.id || ':' || m.status, 'track', 'leadflow.email_' || m.status, m.contact_id,"
        f" {properties}, :now, :now, 'internal' FROM {source} m WHERE {condition}"
        " ON CONFLICT (message_id) DO NOTHING"
    )


def _execute(conn: Connection, sql: str, params: dict[str, Any]) -> Any:
    """Run a text statement with the parameters it names, dates and JSON bound by their column types."""
    statement = sa.text(sql)
    names = set(statement.compile().params)
    typed = [sa.bindparam(name, type_=UTCDateTime()) for name in ("base", "now", "day_ago", "week_ago")]
    typed.append(sa.bindparam("context", type_=json_type()))
    statement = statement.bindparams(*(bind for bind in typed if bind.key in names))
    return conn.execute(statement, {name: value for name, value in params.items() if name in names})


def _write_chunk(conn: Connection, ctx: AppContext, plan: _Plan, upto: str | None) -> int:
    """The chunk's messages and their events; returns how many messages are new. On PostgreSQL one
    statement (the events come from the rows the insert returns); on SQLite two."""
    now = ctx.clock.now()
    dialect, bounded = conn.dialect.name, upto is not None
    params: dict[str, Any] = {
        "segment_id": plan.segment_id,
        "after": plan.after,
        "upto": upto,
        "template_id": plan.template_id,
        "topic": plan.topic,
        "broadcast_id": plan.id,
        "key_prefix": f"b:{plan.id}:",
        "id_prefix": new_id()[:16],
        "offset": plan.offset,
        "per_minute": plan.per_minute,
        "context": {"broadcast": {"id": plan.id, "name": plan.name}},
        "base": plan.base,
        "now": now,
        "day_ago": now - timedelta(days=1),
        "week_ago": now - timedelta(days=7),
        "per_day": ctx.settings.frequency_cap_per_day,
        "per_week": ctx.settings.frequency_cap_per_week,
    }
    insert = _insert_sql(ctx, dialect, plan, bounded)
    if dialect == "postgresql":
        returning = " RETURNING id, contact_id, status, error, template_id, broadcast_id"
        sql = (
            f"WITH inserted AS ({insert}{returning}), emitted AS ({_emit_sql(dialect, 'inserted', 'true')})"
            " SELECT count(*) FROM inserted"
        )
        written = int(_execute(conn, sql, params).scalar_one())
    else:
        written = _execute(conn, insert, params).rowcount
        upto_sql = " AND m.contact_id <= :upto" if bounded else ""
        condition = (
            f"m.broadcast_id = :broadcast_id AND m.contact_id > :after{upto_sql} AND m.created_at = :now"
            f" AND (m.status = 'queued' OR m.error = '{CAPPED}')"
        )
        if written:
            _execute(conn, _emit_sql(dialect, "messages", condition), params)
    if written:
        on_commit(conn, lambda: ctx.signals.announce("events"))
        on_commit(conn, lambda: ctx.signals.announce(outbox.CHANNEL))
    return written
