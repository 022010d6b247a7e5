"""Rollup maintenance: the worker adds each new range of the event log to the rollups.

Rules:

* **A high-water mark** (``analytics_marks``, name ``events``) is the last event id rolled up. A batch
  takes the events after it, up to ``batch`` ids, and never past the first event still waiting for the
  processor (its contact may not be resolved yet): the mark only passes processed events.
* **One transaction per batch**: the stage entries, the daily and hourly rows and the new mark commit
  together, so a crash between batches loses nothing and counts nothing twice. Two workers do not
  roll up at once (an advisory lock on PostgreSQL; SQLite has one writer).
* **Set-based**: each batch runs a fixed number of ``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE``
  statements (:func:`leadflow.analytics.queries.batch_statements`), whatever its size.
* **First entries by event id**: a contact's entry into a stage is its first ``leadflow.stage_changed``
  to it in id order (a visitor: its first event from outside), so any split into batches — and a
  rebuild from scratch — records the same entries and the same counts.
* **Rebuild** (:func:`rebuild`) clears the rollups (from a day on) and rolls the event log up again up to
  the current mark; it must give the same numbers as the incremental path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.analytics import queries
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import advisory_lock
from leadflow.kernel.facts import ContactsErased

MARK = "events"
BATCH = 20_000  # event ids per transaction
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LOCK = "analytics.rollup"
SETTLE = timedelta(seconds=10)  # events received more recently wait: their neighbours may not be committed


@dataclass(frozen=True)
class Progress:
    batches: int
    mark: int


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
    conn.execute(queries.set_mark(conn.dialect.name), {"name": MARK, "mark": upto, "at": ctx.clock.now()})
    return upto


def maintain(
    ctx: AppContext, *, batch: int = BATCH, max_batches: int = 50, settle: timedelta = SETTLE
) -> Progress:
    """Roll up what the event log gained since the mark, one transaction per batch (the worker's task)."""
    done, mark = 0, 0
    while done < max_batches:
        with ctx.db.write() as conn:
            if not advisory_lock(conn, LOCK, wait=False):
                break
            moved = roll_batch(conn, ctx, batch=batch, settle=settle)
            mark = current_mark(conn)
        if moved is None:
            break
        done += 1
    return Progress(batches=done, mark=mark)


def rebuild(ctx: AppContext, *, start: date | None = None, batch: int = BATCH) -> Progress:
    """Recompute the rollups from the raw events up to the current mark: everything, or the days from
    ``start`` on (the rows and stage entries of those days are cleared, then those days' events rolled
    up again). One transaction: readers see the old numbers or the new ones."""
    since = EPOCH if start is None else datetime.combine(start, time(), tzinfo=UTC)
    with ctx.db.write() as conn:
        advisory_lock(conn, LOCK)
        mark = current_mark(conn)
        conn.execute(queries.DELETE_DAILY_FROM, {"day": since.date()})
        conn.execute(queries.DELETE_HOURLY_FROM, {"since": since})
        conn.execute(queries.DELETE_ENTRIES_FROM, {"since": since})
        after, batches = 0, 0
        while after < mark:
            upto = min(mark, after + batch)
            roll_range(conn, after, upto, since)
            after, batches = upto, batches + 1
        conn.execute(queries.set_mark(conn.dialect.name), {"name": MARK, "mark": mark, "at": ctx.clock.now()})
    return Progress(batches=batches, mark=mark)


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
