"""Queue tables kept analysed by their workers (:class:`leadflow.kernel.db.QueueStatistics`): a backlog
queued faster than autovacuum analyses the table left the planner thinking a few rows were due, and each
claim sorted the whole backlog (docs/benchmarks.md, "Connectors" and "Outgoing webhooks")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.kernel.context import AppContext
from leadflow.kernel.db import STALE_AT_LEAST, QueueStatistics
from leadflow.webhooks.deliverer import WebhookDeliverer
from leadflow.webhooks.models import webhook_deliveries

_AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _queue(ctx: AppContext, first: int, count: int) -> None:
    rows: list[dict[str, Any]] = [
        {
            "id": f"d{n}",
            "key": f"k{n}",
            "url": "http://127.0.0.1:9/",
            "event": "contact.created",
            "payload": {"type": "contact.created"},
            "status": "queued",
            "due_at": datetime(2030, 1, 1, tzinfo=UTC),  # not due: the test sends nothing
            "attempts": 0,
            "created_at": _AT,
        }
        for n in range(first, first + count)
    ]
    with ctx.db.write() as conn:
        conn.execute(webhook_deliveries.insert(), rows)
        if ctx.db.dialect == "postgresql":  # the counters reach pg_stat_user_tables with the commit
            conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")


def _analysed_at(ctx: AppContext) -> Any:
    with ctx.db.read() as conn:
        return conn.execute(
            sa.text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'webhook_deliveries'")
        ).scalar()


def _fresh(ctx: AppContext) -> None:
    """What the test process's earlier tests changed on the table is analysed first."""
    if ctx.db.dialect == "postgresql":
        with ctx.db.read() as conn:
            conn.exec_driver_sql("ANALYZE webhook_deliveries")


def test_queue_statistics_look_at_most_every_period(ctx: AppContext) -> None:
    _fresh(ctx)
    statistics = QueueStatistics((webhook_deliveries,), every=10.0)
    _queue(ctx, 0, STALE_AT_LEAST + 1)
    if ctx.db.dialect != "postgresql":
        assert statistics.refresh(ctx.db, 0.0) == []  # SQLite keys its plans on the indexes
        return
    assert statistics.refresh(ctx.db, 0.0) == ["webhook_deliveries"]
    _queue(ctx, 10_000, 2 * STALE_AT_LEAST)  # stale again: more than a fifth changed
    assert statistics.refresh(ctx.db, 9.0) == []  # looked 9 s ago
    assert statistics.refresh(ctx.db, 10.0) == ["webhook_deliveries"]
    assert statistics.refresh(ctx.db, 20.0) == []  # fresh


def test_the_webhook_deliverer_analyses_a_stale_backlog_before_claiming(ctx: AppContext) -> None:
    postgres = ctx.db.dialect == "postgresql"
    _fresh(ctx)
    before = _analysed_at(ctx) if postgres else None
    _queue(ctx, 0, STALE_AT_LEAST + 1)
    with WebhookDeliverer(ctx) as deliverer:
        assert deliverer.deliver_due() == 0  # nothing due (on SQLite: nothing analysed, nothing fails)
    if postgres:
        after = _analysed_at(ctx)
        assert after is not None and after != before
