"""The two triggers that are not events: a cron schedule over a segment, and a date's anniversary.

Both are ticked by the worker's scheduler and enrol set-wise in chunks. Each tick is an occurrence with
its own entry key (the cron tick's time; the local year of the anniversary), so a tick handled twice —
two workers, a crash and a rerun — enrols each contact once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from croniter import croniter
from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts
from leadflow.journeys import catalog, definitions, queries, runs, timing
from leadflow.journeys.catalog import Published
from leadflow.kernel.context import AppContext
from leadflow.segments import service as segments

CHUNK = 5_000


def next_tick(trigger: definitions.ScheduleTrigger, after: datetime) -> datetime:
    """The first tick of the cron expression after ``after``, computed in the trigger's time zone."""
    zone = timing.zone(trigger.timezone, "UTC")
    found: datetime = croniter(trigger.cron, after.astimezone(zone)).get_next(datetime)
    return found.astimezone(timing.UTC)


def tick_schedules(ctx: AppContext) -> int:
    """Enrol the segment's members for every schedule tick that has come; returns how many entered."""
    entered = 0
    with ctx.db.read() as conn:
        scheduled = [
            j
            for j in catalog.active(conn, ctx)
            if isinstance(j.definition.trigger, definitions.ScheduleTrigger)
        ]
    for journey in scheduled:
        entered += _tick(ctx, journey)
    return entered


def _tick(ctx: AppContext, journey: Published) -> int:
    trigger = journey.definition.trigger
    assert isinstance(trigger, definitions.ScheduleTrigger)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        fire_at = conn.execute(queries.next_fire(journey.journey_id)).scalar()
        if fire_at is None:
            _set_next(conn, journey.journey_id, next_tick(trigger, now))
            return 0
        if fire_at > now:
            return 0
        _set_next(conn, journey.journey_id, next_tick(trigger, now))
        segment_id = segments.resolve(conn, trigger.segment)
        if segment_id is None:
            return 0
        occurrence = f"cron:{fire_at.isoformat()}"
        entered = 0
        for chunk in _members(conn, segment_id):
            entries = [
                runs.Entry(
                    journey,
                    cid,
                    occurrence,
                    {"event": "schedule", "properties": {"tick": fire_at.isoformat()}},
                )
                for cid in chunk
            ]
            entered += runs.enrol(conn, ctx, entries, now)
        return entered


def _set_next(conn: Connection, journey_id: str, moment: datetime) -> None:
    conn.execute(queries.set_next_fire(journey_id, moment))


def _members(conn: Connection, segment_id: str) -> Iterator[list[str]]:
    after = ""
    while chunk := segments.member_ids(conn, segment_id, after=after, limit=CHUNK):
        yield chunk
        after = chunk[-1]


def tick_anniversaries(ctx: AppContext) -> int:
    """Enrol contacts whose date field has its anniversary today in their own time zone."""
    entered = 0
    with ctx.db.read() as conn:
        dated = [
            j
            for j in catalog.active(conn, ctx)
            if isinstance(j.definition.trigger, definitions.AnniversaryTrigger)
        ]
    for journey in dated:
        trigger = journey.definition.trigger
        assert isinstance(trigger, definitions.AnniversaryTrigger)
        now = ctx.clock.now()
        with ctx.db.write() as conn:
            ids = segments.anniversary_ids(conn, trigger.field, now)
            for start in range(0, len(ids), CHUNK):
                chunk = ids[start : start + CHUNK]
                zones = contacts.time_zones(conn, chunk)
                entries = [
                    runs.Entry(
                        journey,
                        cid,
                        f"year:{now.astimezone(timing.zone(zones.get(cid), 'UTC')).year}",
                        {"event": "anniversary", "properties": {"field": trigger.field}},
                    )
                    for cid in chunk
                ]
                entered += runs.enrol(conn, ctx, entries, now)
    return entered
