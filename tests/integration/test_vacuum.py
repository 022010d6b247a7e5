"""Queue tables are vacuumed by the worker once enough of their rows died (PostgreSQL; SQLite has
nothing to do), one worker at a time."""

from __future__ import annotations

import time

import pytest

from leadflow.events.models import events
from leadflow.kernel import queue_upkeep
from leadflow.kernel.context import AppContext
from leadflow.runtime import scheduler
from leadflow.runtime.context import build_context
from tests.support.events import send

DEAD = 40


@pytest.fixture
def database_url(own_database_url: str) -> str:
    """A database of the test's own: in the process's shared one, what earlier tests wrote leaves the
    queue tables' statistics stale, and the upkeep then analyses them (which these tests do not ask)."""
    return own_database_url


def _dead_events(ctx: AppContext) -> int:
    """Make ``DEAD`` dead row versions in ``events`` and wait until the statistics count them."""
    send(ctx, *({"type": "track", "userId": f"u{n}", "event": "Viewed"} for n in range(DEAD)))
    with ctx.db.write() as conn:
        conn.execute(events.update().values(name="touched"))
        conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
    for _ in range(100):
        with ctx.db.read() as conn:
            conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
            dead = conn.exec_driver_sql(
                "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'events'"
            ).scalar_one()
        if dead >= DEAD:
            return int(dead)
        time.sleep(0.1)
    raise AssertionError(f"the statistics never showed {DEAD} dead events")


def _last_vacuum(ctx: AppContext) -> object:
    with ctx.db.read() as conn:
        conn.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        return conn.exec_driver_sql(
            "SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'events'"
        ).scalar_one()


def test_queue_tables_with_enough_dead_rows_are_vacuumed(ctx: AppContext) -> None:
    if ctx.db.dialect != "postgresql":
        assert queue_upkeep.upkeep_due(ctx.db, 1) == []
        assert "vacuum.queues" not in {task.name for task in scheduler.tasks(ctx)}
        return
    assert "vacuum.queues" in {task.name for task in scheduler.tasks(ctx)}
    dead = _dead_events(ctx)
    before = _last_vacuum(ctx)
    assert "events" not in queue_upkeep.upkeep_due(ctx.db, dead + 1_000_000)
    assert _last_vacuum(ctx) == before
    assert "events" in queue_upkeep.upkeep_due(ctx.db, DEAD)
    assert _last_vacuum(ctx) != before


def test_one_worker_vacuums_at_a_time(ctx: AppContext) -> None:
    if ctx.db.dialect != "postgresql":
        return
    _dead_events(ctx)
    with ctx.db.engine.connect() as other:
        assert other.exec_driver_sql(
            "SELECT pg_try_advisory_lock(%(k)s)", {"k": queue_upkeep.LOCK}
        ).scalar_one()
        assert queue_upkeep.upkeep_due(ctx.db, DEAD) == []
        other.exec_driver_sql("SELECT pg_advisory_unlock(%(k)s)", {"k": queue_upkeep.LOCK})
        other.rollback()
    assert "events" in queue_upkeep.upkeep_due(ctx.db, DEAD)


def test_vacuuming_can_be_switched_off(ctx: AppContext) -> None:
    quiet = build_context(ctx.settings.model_copy(update={"vacuum_interval": 0.0}), clock=ctx.clock)
    try:
        assert "vacuum.queues" not in {task.name for task in scheduler.tasks(quiet)}
    finally:
        quiet.close()
