"""Runs and their step rows: enrolment, scheduling a step, claiming due steps, and ending runs.

Every step a run takes is a ``journey_steps`` row. A step that must wait is written ``pending`` with the
``due_at`` it becomes ready; workers claim due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL). Steps
that need no waiting are executed in the same transaction that reached them and written ``done``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts
from leadflow.journeys import definitions, funnels, queries, splits, timing
from leadflow.journeys.catalog import Published, versions
from leadflow.journeys.models import journey_runs, journey_steps
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import bulk_insert, bulk_update, insert_new, on_commit
from leadflow.kernel.ids import new_id
from leadflow.segments import service as segments

CHANNEL = "journeys"
WAITING_TYPES = ("wait", "wait_until", "wait_for_time")


@dataclass
class Item:
    """A run standing at a step that is being executed now."""

    row_id: int | None  # the pending row claimed; None for a step reached in this transaction
    run_id: str
    journey: Published
    contact_id: str
    step_id: str
    attempts: int
    branch: str | None
    detail: dict[str, Any] | None
    trigger: dict[str, Any]
    entered_at: datetime
    origin: int  # the claimed row this chain of steps started from
    depth: int  # how many steps after it

    @property
    def step(self) -> Any:
        return self.journey.step(self.step_id)

    @property
    def key(self) -> str:
        """The idempotency key of this step's side effects: the same in any retry of the transaction."""
        return f"{self.origin}.{self.depth}"


@dataclass(frozen=True)
class Entry:
    journey: Published
    contact_id: str
    occurrence: str  # what caused it (an event id, a cron tick, a year): one entry per occurrence
    trigger: dict[str, Any]


@dataclass
class Writes:
    """Everything a batch decided, flushed in a few set-based statements."""

    done: list[dict[str, Any]] = field(default_factory=list)  # claimed rows finished
    rescheduled: list[dict[str, Any]] = field(default_factory=list)  # claimed rows left pending
    inserted: list[dict[str, Any]] = field(default_factory=list)  # new rows (done or pending)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> changed columns
    # split steps finished with a path: (journey, step, path, contact, finished at), for ``splits.exposed``
    exposures: list[tuple[str, str, str, str, datetime]] = field(default_factory=list)


def zones(conn: Connection, contact_ids: Iterable[str]) -> dict[str, str | None]:
    """Each contact's own time zone (None: not set), in one query."""
    return contacts.time_zones(conn, list(set(contact_ids)))


def when_ready(ctx: AppContext, step: Any, now: datetime, tz_name: str | None) -> tuple[datetime, str | None]:
    """When a step reached at ``now`` becomes due, and the event a waiting step listens for."""
    if isinstance(step, definitions.Wait):
        return now + segments.parse_duration(step.duration), None
    if isinstance(step, definitions.WaitUntil):
        return now + segments.parse_duration(step.timeout), step.event
    if isinstance(step, definitions.WaitForTime):
        tz = timing.zone(step.timezone or tz_name, ctx.settings.default_timezone)
        return timing.next_time(now, tz, step.time, list(step.weekdays)), None
    return now, None


def step_row(item_run: Item | None, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": None,
        "journey_id": None,
        "contact_id": None,
        "step_id": None,
        "type": None,
        "status": "pending",
        "due_at": None,
        "waiting_for": None,
        "attempts": 0,
        "branch": None,
        "detail": None,
        "error": None,
        "created_at": None,
        "finished_at": None,
    }
    row.update(values)
    return row


def enrol(conn: Connection, ctx: AppContext, entries: Sequence[Entry], now: datetime) -> int:
    """Start a run for each entry its journey's entry rules admit; returns how many started.

    Re-entry ``never`` keys every entry of a contact alike (``once``), so the unique (journey, contact,
    entry key) admits one run ever; ``always`` and ``after`` key by occurrence; ``after`` also skips
    contacts who entered within that window. With ``one_at_a_time`` the contact id is the run's
    ``active_key`` while it runs, and the unique (journey, active key) refuses a second active run.
    """
    admitted = _admitted(conn, entries, now)
    if not admitted:
        return 0
    rows = [_run_row(entry, now) for entry in admitted]
    started = set(insert_new(conn, journey_runs, rows, returning="id"))
    if not started:
        return 0
    by_id = {
        row["id"]: (row, entry) for row, entry in zip(rows, admitted, strict=True) if row["id"] in started
    }
    funnels.entered(conn, [(row["journey_id"], row["entered_at"]) for row, _ in by_id.values()])
    tz = zones(conn, [row["contact_id"] for row, _ in by_id.values()])
    first_rows = []
    for run_id, (row, entry) in by_id.items():
        step = entry.journey.first
        due, waiting = when_ready(ctx, step, now, tz.get(entry.contact_id))
        first_rows.append(
            step_row(
                None,
                run_id=run_id,
                journey_id=entry.journey.journey_id,
                contact_id=entry.contact_id,
                step_id=step.id,
                type=step.type,
                due_at=due,
                waiting_for=waiting,
                created_at=now,
            )
        )
        row["step_id"] = step.id
    bulk_insert(conn, journey_steps, first_rows)
    funnels.reached(conn, first_rows)
    ctx.metrics.journey_entries.inc(len(first_rows))
    on_commit(conn, lambda: ctx.signals.announce(CHANNEL))
    return len(first_rows)


def _run_row(entry: Entry, now: datetime) -> dict[str, Any]:
    definition = entry.journey.definition
    goal = definition.settings.goal
    rule = definition.entry
    return {
        "id": new_id(),
        "journey_id": entry.journey.journey_id,
        "version": entry.journey.version,
        "contact_id": entry.contact_id,
        "status": "active",
        "entry_key": "once" if rule.reentry == "never" else entry.occurrence[:200],
        "active_key": entry.contact_id if rule.one_at_a_time else None,
        "step_id": entry.journey.first.id,
        "trigger": entry.trigger,
        "entered_at": now,
        "goal_until": now + goal.window if goal else None,
    }


def _admitted(conn: Connection, entries: Sequence[Entry], now: datetime) -> list[Entry]:
    """Entries not refused by ``reentry: after`` (the contact entered within the window)."""
    waiting = [e for e in entries if e.journey.definition.entry.reentry == "after"]
    if not waiting:
        return list(entries)
    recent: set[tuple[str, str]] = set()
    for journey_id in {e.journey.journey_id for e in waiting}:
        window = next(e for e in waiting if e.journey.journey_id == journey_id).journey.definition.entry.wait
        assert window is not None
        ids = [e.contact_id for e in waiting if e.journey.journey_id == journey_id]
        query = queries.recent_entries(conn.dialect.name, journey_id, now - window, ids)
        recent |= {(journey_id, c) for c in conn.execute(query).scalars()}
    admitted, seen = [], set()
    for entry in entries:
        pair = (entry.journey.journey_id, entry.contact_id)
        if entry.journey.definition.entry.reentry == "after" and (pair in recent or pair in seen):
            continue
        seen.add(pair)
        admitted.append(entry)
    return admitted


def claim(conn: Connection, ctx: AppContext, now: datetime, limit: int) -> list[Item]:
    """Lock up to ``limit`` due pending steps of active journeys (other workers skip them)."""
    steps = conn.execute(queries.claim_due(conn.dialect.name, now, limit)).all()
    if not steps:
        return []
    query = queries.claimed_runs(conn.dialect.name, [s.run_id for s in steps])
    runs = {row.id: row for row in conn.execute(query)}
    active = _share_journeys(conn, {row.journey_id for row in runs.values()})
    published = versions(conn, ctx, {(row.journey_id, row.version) for row in runs.values()})
    items = []
    for step in steps:
        run = runs[step.run_id]
        if run.journey_id not in active:
            continue  # paused or archived since the claim: left pending for the pause to hold
        items.append(
            Item(
                row_id=step.id,
                run_id=run.id,
                journey=published[(run.journey_id, run.version)],
                contact_id=run.contact_id,
                step_id=step.step_id,
                attempts=step.attempts,
                branch=step.branch,
                detail=step.detail,
                trigger=run.trigger,
                entered_at=run.entered_at,
                origin=step.id,
                depth=0,
            )
        )
    return items


def _share_journeys(conn: Connection, journey_ids: set[str]) -> set[str]:
    """Hold the journeys' rows shared while their steps run, and answer those still active.

    Pausing changes the journey's status first (waiting for batches that hold it shared) and holds
    its pending steps in a second transaction; a batch that claimed steps just before sees the new
    status here and leaves them. No lock is ever waited for while holding another the pause needs.
    """
    if not journey_ids:
        return set()
    return set(conn.execute(queries.share_active(conn.dialect.name, journey_ids)).scalars())


def flush(conn: Connection, writes: Writes, now: datetime) -> None:
    """Write a batch's decisions: a few statements whatever its size; then the split counters of the
    exposures and conversions among them (``splits``), and the funnel counters of the conversions and
    the steps reached (``funnels``) — in that order in every transaction that counts."""
    bulk_update(conn, journey_steps, "id", writes.done)
    bulk_update(conn, journey_steps, "id", writes.rescheduled)
    bulk_insert(conn, journey_steps, writes.inserted)
    converted = _convert_once(conn, writes.runs)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for run_id, changes in writes.runs.items():
        if not changes:  # the run stays where it is (a step held or retried)
            continue
        groups.setdefault(tuple(sorted(changes)), []).append({"id": run_id, **changes})
    for rows in groups.values():
        bulk_update(conn, journey_runs, "id", rows)
    splits.exposed(conn, writes.exposures, now)
    splits.converted(conn, converted)
    funnels.converted(conn, converted)
    funnels.reached(conn, writes.inserted)


def _convert_once(conn: Connection, runs: dict[str, dict[str, Any]]) -> list[str]:
    """Set ``converted_at`` on the batch's converting runs where it is still unset (a goal event may have
    converted a run since the batch read it: a run converts once, and the counters count it once);
    answers the runs that converted now. ``converted_at`` leaves the changes still to write."""
    by_time: dict[datetime, list[str]] = {}
    for run_id, changes in runs.items():
        if changes.get("converted_at") is not None:
            by_time.setdefault(changes.pop("converted_at"), []).append(run_id)
    converted: list[str] = []
    for at, run_ids in by_time.items():
        for chunk in _chunks(sorted(run_ids)):
            converted += conn.execute(queries.convert_once(chunk, at)).scalars()
    return converted


def cancel(conn: Connection, run_ids: Sequence[str], now: datetime, reason: str) -> None:
    """Cancel the pending (or held) steps of these runs."""
    for chunk in _chunks(run_ids):
        conn.execute(queries.cancel_steps(chunk, now, reason))


def _chunks(values: Sequence[str], size: int = 2000) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])
