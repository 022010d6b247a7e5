"""Per-day A/B split counters (``journey_split_daily``), kept by the engine so a readout reads a few rows
per split and day, never the runs (issue 15 §5).

Rules — each count is added in the transaction that makes it true, so a rolled-back batch takes its
counts with it and a retried step (``pending`` again, ``done`` once) is counted once:

* **Exposure**: when a split step finishes with a path (the executor's batch), +1 ``exposures`` on
  (journey, split step, path, the UTC day it finished: *the exposure's day*).
* **Goal**: when a run's ``converted_at`` is set — by the journey's goal event (the pipeline) or a
  ``goal`` step (the executor) — +1 ``goals`` on each of the run's exposures, on the exposure's day.
  ``converted_at`` is only ever set where it is NULL, so a run converts once.
* **Click**: a person's ``leadflow.email_clicked`` from the journey (``properties.journey_id``; a
  scanner's click carries ``machine_generated: true``), when the pipeline processes it, marks every
  exposure of that contact in that journey that finished at or before the click and is not yet marked
  (``journey_steps.clicked_at``, set to the processing time) and adds +1 ``clicks`` for each. As the
  readout always did, the click is matched by contact and journey, not by run.
* **Rebuild** (:func:`rebuild`, ``leadflow analytics rebuild``): each exposure's ``clicked_at`` is
  recomputed from the events (its first such click) and the counters from the exposures and their
  runs — the numbers the readout used to compute from the raw runs on every request.

  A click already processed when the split happens but stamped at or after it (the same moment)
  counts when the split does.

Not counted incrementally (a rebuild counts it): such a click processed by a transaction that
commits while the split's is still open (both within the same moment, on PostgreSQL).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.journeys import store
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import chunk_size, chunked
from leadflow.kernel.facts import TouchedEvent

Key = tuple[str, str, str, date]  # journey, split step, path, the exposure's UTC day
CLICK_CHUNK = 200  # (contact, journey) pairs per marking statement: one OR term each


def _add(conn: Connection, counts: dict[str, Counter[Key]]) -> None:
    keys = sorted({key for counter in counts.values() for key in counter})
    if not keys:
        return
    rows = [
        {
            **dict(zip(store.KEY, key, strict=True)),
            **{name: counts.get(name, Counter())[key] for name in store.COUNTS},
        }
        for key in keys
    ]
    conn.execute(store.add_counts(conn.dialect.name), rows)


def _keys(rows: Iterable[Any]) -> Counter[Key]:
    return Counter((r.journey_id, r.step_id, r.branch, r.finished_at.date()) for r in rows)


def exposed(
    conn: Connection, exposures: Sequence[tuple[str, str, str, str, datetime]], now: datetime
) -> None:
    """``(journey, split step, path, contact, finished at)`` of the split steps a batch finished (at
    ``now``); a click of the contact from the journey already processed with a time at or after the
    split (a click and a split at the same moment) counts for it now."""
    if not exposures:
        return
    found = Counter((j, s, b, at.date()) for j, s, b, _, at in exposures)
    _add(conn, {"exposures": found})
    contacts = sorted({contact for _, _, _, contact, _ in exposures})
    rows = [
        row
        for chunk in chunked(contacts, chunk_size(conn))
        for row in conn.execute(store.clicks_since(conn.dialect.name, chunk), {"since": now})
    ]
    if rows:
        _mark(conn, latest_human_clicks((r.contact_id, r.properties, r.timestamp) for r in rows), now)


def converted(conn: Connection, run_ids: Sequence[str]) -> None:
    """These runs have just converted: a goal on each of their exposures."""
    found: Counter[Key] = Counter()
    for chunk in chunked(sorted(set(run_ids)), chunk_size(conn)):
        found += _keys(conn.execute(store.exposures_of(conn.dialect.name, chunk)))
    _add(conn, {"goals": found})


def latest_human_clicks(
    clicks: Iterable[tuple[str | None, Mapping[str, Any] | None, datetime]],
) -> list[tuple[str, str, datetime]]:
    """``(contact, properties, time)`` of email clicks → ``(contact, journey, latest click)`` of the
    human ones from a journey: the latest click of a pair reaches every exposure an earlier one would."""
    latest: dict[tuple[str, str], datetime] = {}
    for contact_id, properties, at in clicks:
        props = properties or {}
        journey_id = props.get("journey_id")
        machine = props.get("machine_generated")
        if not contact_id or not isinstance(journey_id, str) or machine is True or machine == 1:
            continue
        key = (contact_id, journey_id)
        if key not in latest or at > latest[key]:
            latest[key] = at
    return [(contact, journey, at) for (contact, journey), at in sorted(latest.items())]


def _mark(conn: Connection, clicks: list[tuple[str, str, datetime]], now: datetime) -> None:
    found: Counter[Key] = Counter()
    for chunk in chunked(clicks, CLICK_CHUNK):
        found += _keys(conn.execute(store.mark_clicked(conn.dialect.name, chunk), {"now": now}))
    _add(conn, {"clicks": found})


def clicked(conn: Connection, events: Iterable[TouchedEvent], now: datetime) -> None:
    """A processed batch's human clicks from journeys: mark the exposures they count for, count them."""
    found = [(e.contact_id, e.properties, e.timestamp) for e in events if e.event == store.EMAIL_CLICKED]
    if found:
        _mark(conn, latest_human_clicks(found), now)


def rebuild(ctx: AppContext) -> int:
    """Recompute every exposure's click and every counter from the runs, steps and events (one
    transaction; on PostgreSQL the counters are locked against the engine's increments meanwhile, so a
    count is either in the recomputation or added after it). Answers how many counter rows there are."""
    with ctx.db.write() as conn:
        conn.execute(store.RECOMPUTE_CLICKS)
        if conn.dialect.name == "postgresql":
            conn.execute(store.LOCK)
        conn.execute(store.CLEAR)
        conn.execute(store.recount(conn.dialect.name))
        return int(conn.execute(store.COUNT).scalar_one())


def counters(conn: Connection) -> list[dict[str, Any]]:
    """Every counter row, in key order (tests compare the incremental counters with a rebuild)."""
    return [dict(row._mapping) for row in conn.execute(store.ALL)]
