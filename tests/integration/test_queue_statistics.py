"""Queue tables kept analysed by their workers
(:class:`leadflow.kernel.queue_upkeep.QueueStatistics`) and by the scheduler's upkeep: a backlog
queued faster than autovacuum analyses the table left the planner thinking a few rows were due, and
each claim sorted the whole backlog (docs/benchmarks.md, "Connectors" and "Outgoing webhooks"). The
connector worker's is tested in ``connectors/test_link_lookup.py``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.journeys.executor import Executor
from leadflow.journeys.models import journey_steps
from leadflow.kernel import queue_upkeep
from leadflow.kernel.context import AppContext
from leadflow.kernel.queue_upkeep import STALE_AT_LEAST, QueueStatistics
from leadflow.messaging.delivery.deliverer import Deliverer
from leadflow.messaging.models import messages
from leadflow.webhooks.deliverer import WebhookDeliverer
from leadflow.webhooks.models import webhook_deliveries

_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def database_url(own_database_url: str) -> str:
    """The statistics these tests make PostgreSQL keep would stay in the process's shared database,
    where other tests read query plans (``journeys/test_query_plans``)."""
    return own_database_url


_LATER = datetime(2030, 1, 1, tzinfo=UTC)  # not due: the workers send and run nothing
_COUNT = STALE_AT_LEAST + 1


def _deliveries(first: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"d{n}",
            "key": f"k{n}",
            "url": "http://127.0.0.1:9/",
            "event": "contact.created",
            "payload": {"type": "contact.created"},
            "status": "queued",
            "due_at": _LATER,
            "attempts": 0,
            "created_at": _AT,
        }
        for n in range(first, first + count)
    ]


def _insert(ctx: AppContext, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    with ctx.db.write() as conn:
        conn.execute(table.insert(), rows)
        if ctx.db.dialect == "postgresql":  # the counters reach pg_stat_user_tables with the commit
            conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")


def _analysed(ctx: AppContext, table: sa.Table) -> Any:
    with ctx.db.read() as conn:
        return conn.execute(
            sa.text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :name"),
            {"name": table.name},
        ).scalar()


def _analyse_first(ctx: AppContext, table: sa.Table) -> None:
    """What the test process's earlier tests changed on the table is analysed before the test."""
    if ctx.db.dialect == "postgresql":
        with ctx.db.read() as conn:
            conn.exec_driver_sql(f"ANALYZE {table.name}")


def _worker_analyses(
    ctx: AppContext, table: sa.Table, rows: list[dict[str, Any]], run: Callable[[], int]
) -> None:
    postgres = ctx.db.dialect == "postgresql"
    _analyse_first(ctx, table)
    before = _analysed(ctx, table) if postgres else None
    _insert(ctx, table, rows)
    assert run() == 0  # nothing due (on SQLite: nothing analysed, nothing fails)
    if postgres:
        after = _analysed(ctx, table)
        assert after is not None
        assert after != before


def test_queue_statistics_look_at_most_every_period(ctx: AppContext) -> None:
    _analyse_first(ctx, webhook_deliveries)
    statistics = QueueStatistics((webhook_deliveries,), every=10.0)
    _insert(ctx, webhook_deliveries, _deliveries(0, _COUNT))
    if ctx.db.dialect != "postgresql":
        assert statistics.refresh(ctx.db, 0.0) == []  # SQLite keys its plans on the indexes
        return
    assert statistics.refresh(ctx.db, 0.0) == ["webhook_deliveries"]
    _insert(ctx, webhook_deliveries, _deliveries(10_000, 2 * STALE_AT_LEAST))  # more than a fifth again
    assert statistics.refresh(ctx.db, 9.0) == []  # looked 9 s ago
    assert statistics.refresh(ctx.db, 10.0) == ["webhook_deliveries"]
    assert statistics.refresh(ctx.db, 20.0) == []  # fresh


def test_the_upkeep_analyses_a_stale_queue_and_vacuums_only_one_with_dead_rows(ctx: AppContext) -> None:
    """The scheduler's pass covers every queue table, whichever workers run: a fresh backlog (no dead
    rows yet) is analysed, not vacuumed."""
    _analyse_first(ctx, webhook_deliveries)
    _insert(ctx, webhook_deliveries, _deliveries(0, _COUNT))
    if ctx.db.dialect != "postgresql":
        assert queue_upkeep.upkeep_due(ctx.db, 1) == []
        return
    with ctx.db.read() as conn:
        vacuumed = sa.text("SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = :name")
        before = conn.execute(vacuumed, {"name": webhook_deliveries.name}).scalar()
    analysed = _analysed(ctx, webhook_deliveries)
    assert queue_upkeep.upkeep_due(ctx.db, 1_000_000) == ["webhook_deliveries"]
    assert _analysed(ctx, webhook_deliveries) != analysed
    with ctx.db.read() as conn:
        assert conn.execute(vacuumed, {"name": webhook_deliveries.name}).scalar() == before
    assert queue_upkeep.upkeep_due(ctx.db, 1_000_000) == []  # fresh now


def test_only_the_policy_s_queue_tables_are_kept() -> None:
    with pytest.raises(ValueError, match="not queue tables"):
        QueueStatistics((sa.table("contacts"),))  # type: ignore[arg-type]


def test_the_webhook_deliverer_analyses_a_stale_backlog_before_claiming(ctx: AppContext) -> None:
    def run() -> int:
        with WebhookDeliverer(ctx) as deliverer:
            return deliverer.deliver_due()

    _worker_analyses(ctx, webhook_deliveries, _deliveries(0, _COUNT), run)


def test_the_email_deliverer_analyses_a_stale_outbox_before_claiming(ctx: AppContext) -> None:
    rows = [
        {
            "id": f"m{n}",
            "key": f"k{n}",
            "kind": "marketing",
            "template_id": "t1",
            "status": "queued",
            "due_at": _LATER,
            "created_at": _AT,
        }
        for n in range(_COUNT)
    ]
    _worker_analyses(ctx, messages, rows, lambda: Deliverer(ctx).deliver_due())


def test_the_journey_executor_analyses_its_stale_steps_before_claiming(ctx: AppContext) -> None:
    rows = [
        {
            "run_id": f"r{n}",
            "journey_id": "j1",
            "contact_id": f"c{n}",
            "step_id": "s1",
            "type": "wait",
            "status": "pending",
            "due_at": _LATER,
            "created_at": _AT,
        }
        for n in range(_COUNT)
    ]
    _worker_analyses(ctx, journey_steps, rows, Executor(ctx).run_once)
