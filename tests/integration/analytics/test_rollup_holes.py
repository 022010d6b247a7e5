"""Rollups and events that become visible after later ids were rolled up (a transaction committing late):
counted exactly once when they appear, never skipped; the holes they leave narrow and are forgotten."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.analytics import rollups
from leadflow.analytics import service as analytics
from leadflow.analytics.models import analytics_daily
from leadflow.events.models import events
from leadflow.kernel.context import AppContext

START = datetime(2026, 3, 1, tzinfo=UTC)
DAY = date(2026, 3, 1)


def _row(name: str, contact: str, **extra: Any) -> dict[str, Any]:
    return {
        "message_id": f"m-{name}-{contact}",
        "type": "track",
        "event": name,
        "contact_id": contact,
        "properties": {},
        "timestamp": START,
        "received_at": START,  # long settled by the test clock's now
        "processed_at": START,
        "source": "api",
        **extra,
    }


def _insert(conn: Any, row: dict[str, Any]) -> int:
    return int(conn.execute(events.insert().values(row).returning(events.c.id)).scalar_one())


def _count(ctx: AppContext, metric: str, dimension: str, key: str) -> int:
    d = analytics_daily.c
    with ctx.db.read() as conn:
        found = conn.execute(
            sa.select(d.count).where(d.day == DAY, d.metric == metric, d.dimension == dimension, d.key == key)
        ).scalar()
    return int(found or 0)


def _snapshot(ctx: AppContext) -> dict[str, Any]:
    with ctx.db.read() as conn:
        return rollups.snapshot(conn)


def _holes(ctx: AppContext) -> list[tuple[int, int]]:
    with ctx.db.read() as conn:
        return [(h.lo, h.hi) for h in rollups.open_holes(conn)]


def test_a_transaction_committing_long_after_its_id_is_counted_exactly_once(ctx: AppContext) -> None:
    if ctx.db.is_sqlite:
        pytest.skip("SQLite has one writer: no transaction commits after a later id")
    with ctx.db.write() as conn:
        first = _insert(conn, _row("Signed Up", "c1"))
    late = ctx.db.engine.connect()  # a long transaction: its id is taken now, it commits later
    try:
        pending = late.begin()
        late_id = _insert(late, _row("Signed Up", "c2"))
        with ctx.db.write() as conn:
            after = _insert(conn, _row("Signed Up", "c3"))
        assert first < late_id < after
        progress = rollups.maintain(ctx)  # its neighbours settled long ago: the mark passes its id
        assert progress.mark == after
        assert _count(ctx, "track", "event", "Signed Up") == 2
        assert (late_id, late_id) in _holes(ctx)
        pending.commit()
    finally:
        late.close()
    assert rollups.maintain(ctx).late == 1
    assert _count(ctx, "track", "event", "Signed Up") == 3
    assert _count(ctx, "stage.entered", "stage", "visitor") == 3
    assert (late_id, late_id) not in _holes(ctx)
    assert rollups.maintain(ctx).late == 0  # and never again
    assert _count(ctx, "track", "event", "Signed Up") == 3
    incremental = _snapshot(ctx)
    analytics.rebuild(ctx)
    assert _snapshot(ctx) == incremental


def test_an_event_appearing_in_a_hole_waits_for_the_processor_then_counts_once(
    ctx: AppContext, clock: Any
) -> None:
    """Both databases: an event removed before the rollup passes its id and put back afterwards (what a
    late commit looks like to the rollup), first unhandled, then handled."""
    with ctx.db.write() as conn:
        ids = [_insert(conn, _row("Signed Up", c)) for c in ("c1", "c2", "c3", "c4")]
        held = dict(conn.execute(sa.select(events).where(events.c.id == ids[1])).one()._mapping)
        conn.execute(events.delete().where(events.c.id == ids[1]))
    assert rollups.maintain(ctx).mark == ids[3]
    assert _count(ctx, "track", "event", "Signed Up") == 3
    assert (ids[1], ids[1]) in _holes(ctx)
    with ctx.db.write() as conn:
        conn.execute(events.insert().values({**held, "processed_at": None, "contact_id": None}))
    assert rollups.maintain(ctx).late == 0  # not handled yet: it waits, the hole stays
    assert (ids[1], ids[1]) in _holes(ctx)
    with ctx.db.write() as conn:
        conn.execute(events.update().where(events.c.id == ids[1]).values(processed_at=START, contact_id="c2"))
    assert rollups.maintain(ctx).late == 1
    assert rollups.maintain(ctx).late == 0
    assert _count(ctx, "track", "event", "Signed Up") == 4
    assert _count(ctx, "stage.entered", "stage", "visitor") == 4
    assert (ids[1], ids[1]) not in _holes(ctx)
    incremental = _snapshot(ctx)
    analytics.rebuild(ctx)
    assert _snapshot(ctx) == incremental


def test_empty_holes_are_forgotten_after_the_horizon_and_a_quiet_run_writes_nothing(
    ctx: AppContext, clock: Any
) -> None:
    with ctx.db.write() as conn:
        ids = [_insert(conn, _row("Signed Up", c)) for c in ("c1", "c2", "c3")]
        conn.execute(events.delete().where(events.c.id == ids[1]))  # an id burnt by a rollback
    rollups.maintain(ctx)
    assert (ids[1], ids[1]) in _holes(ctx)
    clock.advance(rollups.HOLE_HORIZON + timedelta(seconds=1))
    rollups.maintain(ctx)
    assert _holes(ctx) == []
    with ctx.db.read() as conn:
        before = conn.execute(sa.select(sa.func.max(analytics_daily.c.count))).scalar()
    progress = rollups.maintain(ctx)
    assert (progress.batches, progress.late, progress.mark) == (0, 0, ids[2])
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(sa.func.max(analytics_daily.c.count))).scalar() == before
