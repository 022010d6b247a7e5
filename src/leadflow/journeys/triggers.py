"""Journeys in the pipeline (architecture step 4): what the events of a processed batch do to journeys.

In this order, in the processing transaction: exits and conversions end runs (an event that also
enrols does not end the run it starts), waiting steps whose event arrived become due, and matching
triggers enrol contacts. Every trigger but ``schedule`` and ``anniversary`` is an event: segment
entry/exit, stage and score band changes are internal events (``leadflow.segment_entered`` …).
Property conditions are evaluated in SQL with the segment language's semantics, one query per
condition over the batch's events.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.journeys import catalog, definitions, funnels, queries, runs, splits
from leadflow.journeys.catalog import Published
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import on_commit
from leadflow.kernel.facts import ContactsTouched, TouchedEvent
from leadflow.scoring import service as scoring
from leadflow.segments import service as segments

SEGMENT_ENTERED, SEGMENT_EXITED = "leadflow.segment_entered", "leadflow.segment_exited"
STAGE_CHANGED, BAND_CHANGED = "leadflow.stage_changed", "leadflow.score_band_changed"


class Matcher:
    """Which of a batch's events meet a condition; conditions with property rules cost one query."""

    def __init__(self, conn: Connection, batch: Sequence[TouchedEvent], now: datetime) -> None:
        self.conn = conn
        self.now = now
        self.by_name: dict[str, list[TouchedEvent]] = defaultdict(list)
        for event in batch:
            if event.type == "track" and event.event and event.contact_id:
                self.by_name[event.event].append(event)
        self.segment_ids: dict[str, str | None] = {}
        self.found: dict[str, list[TouchedEvent]] = {}

    def events(self, condition: definitions.EventCondition) -> list[TouchedEvent]:
        candidates = self.by_name.get(condition.event, [])
        if not candidates or not condition.where:
            return candidates
        key = condition.event + "\x1f" + repr(condition.where)
        if key not in self.found:
            ids = segments.matching_events(
                self.conn, [e.id for e in candidates], condition.behaviour(), self.now
            )
            self.found[key] = [e for e in candidates if e.id in ids]
        return self.found[key]

    def segment(self, name: str, id_or_key: str) -> list[TouchedEvent]:
        if id_or_key not in self.segment_ids:
            self.segment_ids[id_or_key] = segments.resolve(self.conn, id_or_key)
        wanted = self.segment_ids[id_or_key]
        return [e for e in self.by_name.get(name, []) if (e.properties or {}).get("segment_id") == wanted]

    def exit_events(self, criterion: definitions.ExitWhen) -> list[TouchedEvent]:
        condition = criterion.condition()
        if condition is not None:
            return self.events(condition)
        assert criterion.segment is not None
        return self.segment(SEGMENT_ENTERED, criterion.segment)


def on_touched(conn: Connection, ctx: AppContext, message: ContactsTouched) -> None:
    if not message.events:
        return
    now = ctx.clock.now()
    splits.clicked(conn, message.events, now)
    matcher = Matcher(conn, message.events, now)
    if not matcher.by_name:
        return
    contact_ids = sorted({e.contact_id for events in matcher.by_name.values() for e in events})
    _exits_and_goals(conn, ctx, matcher, contact_ids, now)
    _resume_waiting(conn, ctx, matcher, contact_ids, now)
    entries = [entry for journey in catalog.active(conn, ctx) for entry in _entries(conn, journey, matcher)]
    if entries:
        runs.enrol(conn, ctx, entries, now)


def _trigger(event: TouchedEvent) -> dict[str, Any]:
    return {
        "event": event.event,
        "properties": dict(event.properties or {}),
        "timestamp": event.timestamp.isoformat(),
        "event_id": event.id,
    }


def _entries(conn: Connection, journey: Published, matcher: Matcher) -> list[runs.Entry]:
    trigger = journey.definition.trigger
    found: list[TouchedEvent]
    if isinstance(trigger, definitions.EventTrigger):
        found = matcher.events(trigger)
    elif isinstance(trigger, definitions.SegmentTrigger):
        name = SEGMENT_ENTERED if trigger.type == "segment_entered" else SEGMENT_EXITED
        found = matcher.segment(name, trigger.segment)
    elif isinstance(trigger, definitions.StageTrigger):
        found = [e for e in matcher.by_name.get(STAGE_CHANGED, []) if _to(e, trigger.stage)]
    elif isinstance(trigger, definitions.ScoreBandTrigger):
        found = _band_changes(conn, trigger, matcher.by_name.get(BAND_CHANGED, []))
    else:
        return []  # schedule and anniversary triggers are ticked by the scheduler
    return [runs.Entry(journey, e.contact_id, f"e:{e.id}", _trigger(e)) for e in found]


def _to(event: TouchedEvent, wanted: str | None) -> bool:
    return wanted is None or (event.properties or {}).get("to") == wanted


def _band_changes(
    conn: Connection, trigger: definitions.ScoreBandTrigger, found: list[TouchedEvent]
) -> list[TouchedEvent]:
    """Band changes to ``band`` (any band when unset) in the given direction (by the bands' order)."""
    if not found:
        return []
    order = {name: rank for rank, name in enumerate(scoring.band_names(conn))}
    chosen = []
    for event in found:
        props = event.properties or {}
        if not _to(event, trigger.band):
            continue
        rise = order.get(props.get("to", ""), -1) - order.get(props.get("from", ""), -1)
        if trigger.direction == "any" or (trigger.direction == "up") == (rise > 0):
            chosen.append(event)
    return chosen


def _exits_and_goals(
    conn: Connection, ctx: AppContext, matcher: Matcher, contact_ids: list[str], now: datetime
) -> None:
    """A goal event within the window converts the run (ending it if still active; a contact who already
    left — a holdout — still counts). An exit event ends an active run as ``exited``."""
    found = list(conn.execute(queries.open_runs(conn.dialect.name, contact_ids, now)))
    if not found:
        return
    published = catalog.versions(conn, ctx, {(r.journey_id, r.version) for r in found})
    converted: dict[str, datetime] = {}
    exited: dict[str, str] = {}
    for run in found:
        definition = published[(run.journey_id, run.version)].definition
        goal = definition.settings.goal
        if goal is not None and run.goal_until is not None:
            hits = [
                e
                for e in matcher.events(goal)
                if e.contact_id == run.contact_id and run.entered_at <= e.timestamp <= run.goal_until
            ]
            if hits:
                converted[run.id] = min(e.timestamp for e in hits)
                continue
        if run.status != "active":
            continue
        for criterion in definition.settings.exit:
            if any(e.contact_id == run.contact_id for e in matcher.exit_events(criterion)):
                exited[run.id] = f"exit: {criterion.event or 'segment ' + str(criterion.segment)}"
                break
    active = {run.id for run in found if run.status == "active"}
    _convert(conn, converted, active, now)
    _exit(conn, exited, now)
    ended = [run_id for run_id in converted if run_id in active] + list(exited)
    runs.cancel(conn, ended, now, "run ended")


def _convert(conn: Connection, converted: dict[str, datetime], active: set[str], now: datetime) -> None:
    """Set each run's ``converted_at`` (where still unset: a run converts once) and count the goal on
    its split exposures and on the journey funnel's day of its entry."""
    done = []
    for run_id, at in converted.items():
        values: dict[str, Any] = {"converted_at": at}
        if run_id in active:
            values.update(status="converted", ended_at=now, exit_reason="goal", active_key=None)
        if conn.execute(queries.convert_run(run_id, values)).rowcount:
            done.append(run_id)
    splits.converted(conn, done)
    funnels.converted(conn, done)


def _exit(conn: Connection, exited: dict[str, str], now: datetime) -> None:
    for run_id, reason in exited.items():
        conn.execute(queries.exit_run(run_id, reason[:64], now))


def _resume_waiting(
    conn: Connection, ctx: AppContext, matcher: Matcher, contact_ids: list[str], now: datetime
) -> None:
    """``wait_until`` and ``goal`` steps waiting for an event that arrived become due now, with the
    outcome ``event``. A paused journey's held steps are marked too and run when it resumes."""
    query = queries.waiting_steps(conn.dialect.name, sorted(matcher.by_name), contact_ids)
    waiting = list(conn.execute(query))
    if not waiting:
        return
    published = catalog.versions(conn, ctx, {(w.journey_id, w.version) for w in waiting})
    ready = []
    for row in waiting:
        step = published[(row.journey_id, row.version)].step(row.step_id)
        if any(e.contact_id == row.contact_id for e in matcher.events(step)):
            ready.append(row.id)
    if not ready:
        return
    conn.execute(queries.resume_steps(ready, now))
    on_commit(conn, lambda: ctx.signals.announce(runs.CHANNEL))
