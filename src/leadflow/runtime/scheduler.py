"""Periodic work in the worker: due segment refreshes, requested score recomputes, score aging, journey
schedules and anniversaries, broadcasts, and (PostgreSQL) vacuuming the queue tables."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc

from leadflow.analytics import service as analytics
from leadflow.connectors import service as connectors
from leadflow.crm import service as crm
from leadflow.journeys import scheduling
from leadflow.kernel import queue_upkeep
from leadflow.kernel.context import AppContext
from leadflow.lifecycle import service as lifecycle
from leadflow.messaging.delivery import broadcasts
from leadflow.scheduling import service as booking
from leadflow.scoring import service as scoring
from leadflow.segments import service as segments

log = logging.getLogger(__name__)
CONNECTOR_ALERTS_EVERY = 300.0  # seconds: a connector under its success-rate threshold is logged
ANALYTICS_EVERY = 60.0  # seconds: the rollups trail the event log by about a minute
ANNIVERSARY_EVERY = 900.0  # seconds: contacts enter early in their local day, whatever their zone


@dataclass
class Task:
    name: str
    every: float
    run: Callable[[], object]
    next_at: float = 0.0


def tasks(ctx: AppContext) -> list[Task]:
    settings = ctx.settings
    found = [
        Task("segments.refresh_due", settings.scheduler_interval, lambda: segments.refresh_due(ctx)),
        Task(
            "scoring.recompute_if_requested",
            settings.scheduler_interval,
            lambda: scoring.recompute_if_requested(ctx),
        ),
        Task("scoring.age", settings.scoring_age_interval, lambda: scoring.age(ctx)),
        Task("journeys.schedules", settings.scheduler_interval, lambda: scheduling.tick_schedules(ctx)),
        Task("journeys.anniversaries", ANNIVERSARY_EVERY, lambda: scheduling.tick_anniversaries(ctx)),
        Task("broadcasts.start_due", settings.scheduler_interval, lambda: broadcasts.start_due(ctx)),
        Task("broadcasts.finish_done", settings.scheduler_interval, lambda: broadcasts.finish_done(ctx)),
        Task(
            "crm.sla", settings.scheduler_interval, lambda: crm.check_slas(ctx)
        ),  # assignment, alerts, escalation
        Task("scheduling.refresh_feeds", settings.scheduler_interval, lambda: booking.refresh_feeds(ctx)),
        Task("connectors.alerts", CONNECTOR_ALERTS_EVERY, lambda: connectors.check_alerts(ctx)),
        Task("analytics.rollup", ANALYTICS_EVERY, lambda: analytics.maintain(ctx)),  # KPIs read rollups
        Task("analytics.alerts", ANALYTICS_EVERY, lambda: analytics.evaluate_alerts(ctx)),
        Task("analytics.digests", ANALYTICS_EVERY, lambda: analytics.send_due_digests(ctx)),
    ]
    if settings.vacuum_interval > 0 and ctx.db.dialect == "postgresql":
        dead = settings.vacuum_min_dead_rows
        found.append(
            Task("vacuum.queues", settings.vacuum_interval, lambda: queue_upkeep.upkeep_due(ctx.db, dead))
        )
    return found


def run(ctx: AppContext, stop: threading.Event) -> None:
    """Run each task when due, until ``stop``; a failing task is logged and tried again next time."""
    try:
        lifecycle.ensure_defaults(ctx)
    except sa_exc.SQLAlchemyError as exc:
        log.warning("could not create the lifecycle segments yet: %s", exc)
    schedule = tasks(ctx)
    while not stop.is_set():
        now = time.monotonic()
        for task in schedule:
            if task.next_at <= now:
                task.next_at = now + task.every
                try:
                    task.run()
                except Exception:
                    log.exception("scheduled task %s failed", task.name)
        stop.wait(min(task.next_at for task in schedule) - time.monotonic())
