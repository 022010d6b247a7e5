"""Rollup maintenance: the worker adds each new range of the event log to the rollups.

Rules:

* **A high-water mark** (``analytics_marks``, name ``events``) is the last event id rolled up. A batch
  takes the events after it, up to ``batch`` ids, and never past the first event still waiting for the
  processor (its contact may not be resolved yet): the mark only passes processed events.
* **One transaction per batch**: the stage entries, the daily and hourly rows and the new mark commit
  together, so a crash between batches loses nothing and counts nothing twice. Two workers do not
  roll up at once (an advisory lock on PostgreSQL; SQLite has one writer).
* **Set-based and cheap**: each batch runs seven ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE``
  statements (:func:`leadflow.analytics.queries.batch_statements`), whatever its size, each reading the
  id range once; a run with nothing new (no id past the mark, no hole) reads two rows and writes nothing.
* **No event skipped, none counted twice — holes**: an id is taken when a transaction inserts the event,
  but the event is visible only once that transaction commits, maybe long after later ids (a long
  transaction on PostgreSQL; SQLite has one writer). The settling time keeps most such events in order;
  beyond it, every id a batch passes that no visible event has is recorded as a *hole* (rows
  ``gap <first id>`` of ``analytics_marks``, the last id as their mark). Each run first looks for events
  that appeared in the holes (an index lookup per hole), rolls them up and narrows the holes, in the same
  transaction, under one snapshot (REPEATABLE READ on PostgreSQL): an event is counted by the batch that
  passes it if it was visible then, or else exactly once when it appears. A hole with nothing in it is
  forgotten after :data:`HOLE_HORIZON` (an id burnt by a rollback never fills).
* **First entries by event id**: a contact's entry into a stage is its first ``leadflow.stage_changed``
  to it in id order (a visitor: its first event from outside), so any split into batches — and a
  rebuild from scratch — records the same entries and the same counts (an event counted late from a
  hole comes after the entries already recorded).
* **Rebuild** (:func:`rebuild`) clears the rollups (from a day on) and rolls the event log up again up to
  the current mark, less the open holes; it must give the same numbers as the incremental path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.analytics import queries
from leadflow.analytics.models import analytics_daily, analytics_stage_entries
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import advisory_lock, analyze
from leadflow.kernel.facts import ContactsErased

MARK = "events"
BATCH = 100_000  # event ids per transaction (a minute at 1,000 events/s is one batch)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LOCK = "analytics.rollup"
SETTLE = timedelta(seconds=10)  # events received more recently wait: their neighbours may not be committed
HOLE_HORIZON = timedelta(days=1)  # an empty hole older than this is forgotten
ANALYZE_AFTER = 200_000  # ids rolled up in one run after which PostgreSQL's statistics are refreshed


@dataclass(frozen=True)
class Progress:
    batches: int
    mark: int
    late: int = 0  # events counted from holes


@dataclass(frozen=True)
class Hole:
    lo: int
    hi: int
    at: datetime  # when it was recorded

    @property
    def name(self) -> str:
        return f"{queries.GAP}{self.lo}"


def current_mark(conn: Connection) -> int:
    value = conn.execute(queries.GET_MARK, {"name": MARK}).scalar()
    return int(value or 0)


def _limit(conn: Connection, mark: int, batch: int, cutoff: datetime | None = None) -> int:
    """The last id the next batch may take: at most ``batch`` ids on, only processed events, and (with
    ``cutoff``) only events received by then — an id taken by a transaction that commits late is not
    skipped over as long as that transaction lasts less than the settling time."""
    highest = conn.execute(queries.MAX_EVENT_ID).scalar()
    if highest is None:
        return mark
    pending = conn.execute(queries.FIRST_PENDING_ID).scalar()
    following = conn.execute(queries.NEXT_EVENT_ID, {"mark": mark}).scalar()
    start = mark if following is None else max(mark, int(following) - 1)  # over a gap in the ids
    upto = min(int(highest), start + batch)
    if pending is not None:
        upto = min(upto, int(pending) - 1)
    if cutoff is not None and upto > mark:
        recent = conn.execute(
            queries.FIRST_RECENT_ID, {"after": mark, "upto": upto, "cutoff": cutoff}
        ).scalar()
        upto = upto if recent is None else min(upto, int(recent) - 1)
    return max(upto, mark)


def roll_range(conn: Connection, after: int, upto: int, since: datetime = EPOCH) -> None:
    """Add the events of ``(after, upto]`` with ``timestamp >= since`` to the rollups (no commit)."""
    params = {"after": after, "upto": upto, "since": since}
    for statement in queries.batch_statements(conn.dialect.name):
        conn.execute(statement, params)


def roll_batch(
    conn: Connection, ctx: AppContext, *, batch: int = BATCH, settle: timedelta = SETTLE
) -> int | None:
    """One batch inside the caller's transaction: the rows and the mark; the new mark, or ``None`` when
    nothing was left. Events received in the last ``settle`` wait for the next run."""
    mark = current_mark(conn)
    upto = _limit(conn, mark, batch, ctx.clock.now() - settle)
    if upto <= mark:
        return None
    roll_range(conn, mark, upto)
    now = ctx.clock.now()
    found = conn.execute(queries.holes(), {"after": mark, "upto": upto}).all()
    _save(conn, [Hole(int(lo), int(hi), now) for lo, hi in found])
    conn.execute(queries.set_mark(conn.dialect.name), {"name": MARK, "mark": upto, "at": now})
    return upto


def open_holes(conn: Connection) -> list[Hole]:
    return [
        Hole(int(name.removeprefix(queries.GAP)), int(hi), at) for name, hi, at in conn.execute(queries.GAPS)
    ]


def _save(conn: Connection, holes: list[Hole]) -> None:
    if holes:
        rows = [{"name": h.name, "mark": h.hi, "at": h.at} for h in holes]
        conn.execute(queries.set_mark(conn.dialect.name), rows)


def roll_late(conn: Connection, ctx: AppContext, horizon: timedelta = HOLE_HORIZON) -> int:
    """Roll up the events that appeared in the holes since they were recorded (handled ones, a run of
    them at a time, never across one the processor has not handled), narrow the holes to the ids still
    missing and forget the empty holes older than ``horizon``. Returns how many events were counted."""
    holes = open_holes(conn)
    if not holes:
        return 0
    seen = [(int(i), bool(done)) for i, done in conn.execute(queries.present())]
    expired, kept, late = ctx.clock.now() - horizon, [], 0
    for hole in holes:
        inside = [(i, done) for i, done in seen if hole.lo <= i <= hole.hi]
        for first, last in _runs(inside):
            roll_range(conn, first - 1, last)
        taken = [i for i, done in inside if done]
        late += len(taken)
        if hole.at >= expired or not all(done for _, done in inside):
            kept += _narrow(hole, taken)
    conn.execute(queries.forget_gaps([h.name for h in holes]))
    _save(conn, kept)
    return late


def _runs(inside: list[tuple[int, bool]]) -> list[tuple[int, int]]:
    """Runs of handled events (ascending ids of one hole) not broken by an unhandled one: the range
    ``(first - 1, last]`` of a run holds no other visible event."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    last = 0
    for i, done in inside:
        if done and start is None:
            start = i
        elif not done and start is not None:
            runs.append((start, last))
            start = None
        last = i
    if start is not None:
        runs.append((start, last))
    return runs


def _narrow(hole: Hole, taken: list[int]) -> list[Hole]:
    """The parts of ``hole`` left once the ids ``taken`` (ascending, inside it) are counted."""
    left, lo = [], hole.lo
    for i in taken:
        if i > lo:
            left.append(Hole(lo, i - 1, hole.at))
        lo = i + 1
    if lo <= hole.hi:
        left.append(Hole(lo, hole.hi, hole.at))
    return left


def _isolate(conn: Connection) -> None:
    """One snapshot for the whole transaction on PostgreSQL (the transaction's first statement)."""
    if conn.dialect.name == "postgresql":
        conn.execute(queries.SNAPSHOT)


def _idle(ctx: AppContext) -> tuple[bool, int]:
    """Whether a run would find nothing: no id past the mark and no open hole (two index reads)."""
    with ctx.db.read() as conn:
        mark = current_mark(conn)
        highest = conn.execute(queries.MAX_EVENT_ID).scalar()
        hole = conn.execute(queries.GAPS.limit(1)).first()
    return (highest is None or int(highest) <= mark) and hole is None, mark


def maintain(
    ctx: AppContext, *, batch: int = BATCH, max_batches: int = 50, settle: timedelta = SETTLE
) -> Progress:
    """Roll up what the event log gained since the mark — first the events that appeared in holes, then
    one transaction per batch (the worker's task). Does nothing (no write) when nothing is new."""
    idle, mark = _idle(ctx)
    if idle:
        return Progress(batches=0, mark=mark)
    done, late, start = 0, 0, mark
    while done < max_batches:
        with ctx.db.write() as conn:
            _isolate(conn)
            if not advisory_lock(conn, LOCK, wait=False):
                break
            if done == 0:
                late = roll_late(conn, ctx)
            moved = roll_batch(conn, ctx, batch=batch, settle=settle)
            mark = current_mark(conn)
        if moved is None:
            break
        done += 1
    if mark - start >= ANALYZE_AFTER:  # a catch-up: the medians' self-join must not plan on stale counts
        with ctx.db.write() as conn:
            analyze(conn, analytics_stage_entries)
            analyze(conn, analytics_daily)
    return Progress(batches=done, mark=mark, late=late)


def rebuild(ctx: AppContext, *, start: date | None = None, batch: int = BATCH) -> Progress:
    """Recompute the rollups from the raw events up to the current mark: everything, or the days from
    ``start`` on (the rows and stage entries of those days are cleared, then those days' events rolled
    up again). One transaction: readers see the old numbers or the new ones."""
    since = EPOCH if start is None else datetime.combine(start, time(), tzinfo=UTC)
    with ctx.db.write() as conn:
        _isolate(conn)
        advisory_lock(conn, LOCK)
        mark = current_mark(conn)
        conn.execute(queries.DELETE_DAILY_FROM, {"day": since.date()})
        conn.execute(queries.DELETE_HOURLY_FROM, {"since": since})
        conn.execute(queries.DELETE_ENTRIES_FROM, {"since": since})
        batches = 0
        for first, last in _counted(open_holes(conn), mark):
            after = first - 1
            while after < last:
                upto = min(last, after + batch)
                roll_range(conn, after, upto, since)
                after, batches = upto, batches + 1
        conn.execute(queries.set_mark(conn.dialect.name), {"name": MARK, "mark": mark, "at": ctx.clock.now()})
    return Progress(batches=batches, mark=mark)


def _counted(holes: list[Hole], mark: int) -> list[tuple[int, int]]:
    """The id ranges ``[first, last]`` up to ``mark`` the incremental path has counted: all but the holes."""
    ranges, first = [], 1
    for hole in sorted(holes, key=lambda h: h.lo):
        if hole.lo > first:
            ranges.append((first, min(hole.lo - 1, mark)))
        first = max(first, hole.hi + 1)
    if first <= mark:
        ranges.append((first, mark))
    return [(a, b) for a, b in ranges if a <= b]


def snapshot(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """Every rollup row and stage entry (tests and ``rebuild --check`` compare two of them)."""
    return {
        "daily": [dict(row._mapping) for row in conn.execute(queries.ALL_DAILY)],
        "hourly": [dict(row._mapping) for row in conn.execute(queries.ALL_HOURLY)],
        "entries": [dict(row._mapping) for row in conn.execute(queries.ALL_ENTRIES)],
    }


def on_contacts_erased(conn: Connection, message: ContactsErased) -> None:
    """An erased person's stage entries go; the counts they were part of stay (no one in them)."""
    if message.contact_ids:
        conn.execute(queries.forget_entries(list(message.contact_ids)))
