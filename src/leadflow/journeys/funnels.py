"""The journey funnel's per-day counters (``journey_entry_daily``, ``journey_reach_daily``), kept by the
engine so the funnel reads a few rows per journey, day and step, never the runs (issue 15 §5).

The funnel of a period counts the runs *entered* in it (their UTC day of entry): how many, how many of
them have converted since, and per step how many of them reached it. So every count is kept on the run's
entry day, and each is added in the transaction that makes it true (a rolled-back batch takes its counts
with it):

* **Entered**: a run inserted (:func:`entered`, ``runs.enrol``): +1 ``entered``.
* **Converted**: a run's ``converted_at`` set — by the journey's goal event (the pipeline) or a ``goal``
  step (the executor) — +1 ``converted`` (:func:`converted`). ``converted_at`` is only ever set where it
  is NULL, so a run converts once.
* **Reached**: a run's *first* step row for a step inserted (:func:`reached`: the first step at
  enrolment, every later one by the executor's batch): +1 ``reached`` on that step, and the step's
  ``first_row`` lowered to that row's id if smaller (steps are listed in the order first reached). A
  retried or rescheduled step is the same row; a second row for the same run and step is not counted.
* **Rebuild** (:func:`rebuild`, ``leadflow analytics rebuild``): the counters recounted from the runs
  and steps — the numbers the funnel used to compute from them on every request.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.journeys import store
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import chunk_size, chunked

Day = tuple[str, date]  # journey, the runs' UTC day of entry
Step = tuple[str, date, str]  # journey, the runs' UTC day of entry, step


def _day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def _add_entries(conn: Connection, entered: Counter[Day], converted: Counter[Day]) -> None:
    keys = sorted(set(entered) | set(converted))  # one order for every transaction: no deadlock
    if keys:
        rows = [
            {"journey_id": j, "day": d, "entered": entered[(j, d)], "converted": converted[(j, d)]}
            for j, d in keys
        ]
        conn.execute(store.add_entries(conn.dialect.name), rows)


def entered(conn: Connection, runs: Iterable[tuple[str, datetime]]) -> None:
    """``(journey, entered at)`` of the runs just inserted."""
    _add_entries(conn, Counter((journey_id, _day(at)) for journey_id, at in runs), Counter())


def converted(conn: Connection, run_ids: Sequence[str]) -> None:
    """These runs have just converted: +1 converted on each run's day of entry."""
    found: Counter[Day] = Counter()
    for chunk in chunked(sorted(set(run_ids)), chunk_size(conn)):
        for row in conn.execute(store.entries_of(conn.dialect.name, chunk)):
            found[(row.journey_id, _day(row.entered_at))] += 1
    _add_entries(conn, Counter(), found)


def reached(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Step rows just inserted (``run_id``, ``step_id``): each (run, step) with no other row than these
    reached the step now, its first row being the smallest id among them."""
    inserted = Counter((row["run_id"], row["step_id"]) for row in rows)
    if not inserted:
        return
    counts: Counter[Step] = Counter()
    first: dict[Step, int] = {}
    for chunk in chunked(sorted({run_id for run_id, _ in inserted}), chunk_size(conn)):
        for r in conn.execute(store.reach_of(conn.dialect.name, chunk)):
            if r.rows != inserted.get((r.run_id, r.step_id)):
                continue  # reached before this batch (or a step row this batch did not insert)
            key = (r.journey_id, _day(r.entered_at), r.step_id)
            counts[key] += 1
            first[key] = min(first.get(key, r.first_row), r.first_row)
    if counts:
        found = [
            {
                "journey_id": j,
                "day": d,
                "step_id": s,
                "reached": counts[(j, d, s)],
                "first_row": first[(j, d, s)],
            }
            for j, d, s in sorted(counts)
        ]
        conn.execute(store.add_reached(conn.dialect.name), found)


def rebuild(ctx: AppContext) -> int:
    """Recount every funnel counter from the runs and steps (one transaction; on PostgreSQL the counters
    are locked against the engine's increments meanwhile, so a count is either in the recount or added
    after it). Answers how many counter rows there are."""
    with ctx.db.write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(store.LOCK_FUNNEL)
        for statement in store.CLEAR_FUNNEL:
            conn.execute(statement)
        conn.execute(store.recount_entries(conn.dialect.name))
        conn.execute(store.recount_reached(conn.dialect.name))
        return len(counters(conn))


def counters(conn: Connection) -> list[dict[str, Any]]:
    """Every counter row, entries then steps, in key order (tests compare them with a rebuild); a step's
    row has a ``step_id``."""
    entries = [dict(row._mapping) for row in conn.execute(store.ALL_ENTRIES)]
    return entries + [dict(row._mapping) for row in conn.execute(store.ALL_REACHED)]
