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
from leadflow.messaging.delivery import outbox, queries
from leadflow.messaging.models import messages
from leadflow.segments import service as segments

CANCELLED = "broadcast cancelled"
CAPPED = queries.CAPPED
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
    row = conn.execute(queries.broadcast(conn.dialect.name, broadcast_id, lock=lock)).first()
    if row is None:
        raise NotFound(f"no broadcast {broadcast_id}", code="broadcast_not_found")
    return row


def _views(conn: Connection, rows: Sequence[Any]) -> list[Broadcast]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    ids = [row.id for row in rows]
    if ids:
        for broadcast_id, status, count in conn.execute(queries.status_counts(ids)):
            counts[broadcast_id][status] = int(count)
    return [Broadcast(**row._mapping, counts=counts.get(row.id, {})) for row in rows]


def _segment(conn: Connection, id_or_key: str) -> str:
    found = segments.resolve(conn, id_or_key)
    if found is None:
        raise Invalid(f"segment {id_or_key} does not exist", code="unknown_segment")
    return found


def _template(conn: Connection, id_or_key: str) -> Any:
    """A broadcast is marketing: its template must be a marketing one (its topic is the broadcast's)."""
    row = conn.execute(queries.marketing_template(id_or_key)).first()
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
        conn.execute(queries.INSERT_BROADCAST, values)
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
        conn.execute(queries.update_broadcast(row.id, status="scheduled", send_at=send_at))
        return _done(conn, ctx, row.id, "broadcast.scheduled", actor, {"send_at": send_at.isoformat()})


def _lock_waiting(conn: Connection, broadcast_id: str) -> None:
    """Lock the broadcast's waiting messages in id order, the order a deliverer recording outcomes
    locks them in. The UPDATE alone would lock them in storage order, and a deliverer holding some
    while waiting for others could deadlock with it (PostgreSQL would abort one of the two)."""
    if conn.dialect.name != "postgresql":
        return  # SQLite: one writer at a time
    conn.execute(queries.lock_waiting(broadcast_id))  # one row back, however many locked


def cancel(ctx: AppContext, broadcast_id: str, *, actor: str) -> Broadcast:
    """Stop a broadcast: every message of it still waiting (queued, or deferred for a retry) becomes
    ``suppressed`` (``broadcast cancelled``) in one statement, with its ``leadflow.email_suppressed``
    event. The broadcast's row lock is taken first, so a start in progress stops at its next chunk."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        row = _row(conn, broadcast_id, lock=True)
        _expect(row, ("draft", "scheduled", "sending"), "cancelled")
        conn.execute(queries.update_broadcast(row.id, status="cancelled", finished_at=now))
        _lock_waiting(conn, row.id)
        suppressed = conn.execute(queries.cancel_waiting(row.id, CANCELLED)).rowcount
        if suppressed:
            events = queries.cancelled_events(conn.dialect.name, CANCELLED)
            conn.execute(events, {"broadcast_id": row.id, "now": now})
            on_commit(conn, lambda: ctx.signals.announce("events"))
        return _done(conn, ctx, row.id, "broadcast.cancelled", actor, {"suppressed": suppressed})


def get(ctx: AppContext, broadcast_id: str) -> Broadcast:
    with ctx.db.read() as conn:
        return _views(conn, [_row(conn, broadcast_id)])[0]


def listing(ctx: AppContext, *, after: str | None, limit: int) -> list[Broadcast]:
    """Oldest first (ids are time-ordered); ``after`` is the last id of the previous page."""
    with ctx.db.read() as conn:
        return _views(conn, list(conn.execute(queries.broadcasts_page(after, limit))))


def finish_done(ctx: AppContext) -> int:
    """Sending broadcasts none of whose messages waits any more become ``sent``; returns how many."""
    with ctx.db.write() as conn:
        return int(conn.execute(queries.finish_done(ctx.clock.now())).rowcount)


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
    with ctx.db.read() as conn:
        due = list(conn.execute(queries.due_broadcasts(ctx.clock.now())).scalars())
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
            conn.execute(queries.update_broadcast(row.id, started_at=started))
        last, done = conn.execute(queries.progress(row.id)).one()
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
    recipients = conn.execute(queries.written(broadcast_id)).scalar_one()
    conn.execute(queries.update_broadcast(broadcast_id, status="sending", recipients=int(recipients)))


def _boundary(conn: Connection, plan: _Plan, limit_rows: int) -> str | None:
    """The last member of the chunk after ``plan.after``; None when the rest fits in one chunk."""
    params = {"segment_id": plan.segment_id, "after": plan.after, "skip": limit_rows - 1}
    found: str | None = conn.execute(queries.BOUNDARY, params).scalar()
    return found


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
    throttled = plan.per_minute is not None
    per_day, per_week = ctx.settings.frequency_cap_per_day, ctx.settings.frequency_cap_per_week
    if dialect == "postgresql":
        statement = queries.chunk_with_events(
            bounded=bounded, throttled=throttled, per_day=per_day, per_week=per_week
        )
        written = int(conn.execute(statement, params).scalar_one())
    else:
        statement = queries.chunk_insert(
            dialect, bounded=bounded, throttled=throttled, per_day=per_day, per_week=per_week
        )
        written = conn.execute(statement, params).rowcount
        if written:
            conn.execute(queries.chunk_events(bounded), params)
    if written:
        on_commit(conn, lambda: ctx.signals.announce("events"))
        on_commit(conn, lambda: ctx.signals.announce(outbox.CHANNEL))
    return written
