"""The journey executor: claims due steps, runs them group by group, records the outcomes.

One batch is one transaction: claimed rows, the steps reached without waiting, the outbox rows they
wrote and the runs' new positions commit together or not at all. A crash anywhere rolls the batch back;
the rows are claimed again and every side effect carries the same idempotency key, so it is written once.

A step that fails is retried on :data:`SCHEDULE` (30 s, 2 min, 10 min, 1 h); after the last attempt the
step and its run are ``failed`` with the reason, and the failure is counted — nothing is dropped
silently. One failing contact does not fail the others in its group: the group is retried one item at a
time.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.journeys import runs, steps
from leadflow.journeys.models import journey_steps
from leadflow.journeys.runs import Item, Writes
from leadflow.journeys.steps import Outcome
from leadflow.kernel.context import AppContext
from leadflow.kernel.queue_upkeep import QueueStatistics
from leadflow.kernel.retry import RetrySchedule
from leadflow.kernel.worker_loop import TRANSIENT, WorkerLoop

log = logging.getLogger(__name__)

SCHEDULE = RetrySchedule(
    (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1))
)
BACKOFF = SCHEDULE.delays
MAX_CHAIN = 100  # steps one claimed row may lead through without waiting (the graph check forbids loops)


def run_due(ctx: AppContext, limit: int | None = None) -> int:
    """Execute the due steps of one batch; returns how many steps ran (0: nothing was due)."""
    with ctx.db.write() as conn:
        now = ctx.clock.now()
        items = runs.claim(conn, ctx, now, limit or ctx.settings.journey_batch_size)
        if not items:
            return 0
        executed = execute(conn, ctx, items, now)
    log.debug("executed %d journey steps (%d claimed)", executed, len(items))
    return executed


def execute(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> int:
    writes = Writes()
    tz = runs.zones(conn, [item.contact_id for item in items])
    executed = 0
    current = items
    while current:
        outcomes: list[Outcome] = []
        for group in _groups(current):
            outcomes += _guarded(conn, ctx, group, now)
        executed += len(current)
        current = [
            follow for outcome in outcomes if (follow := _record(ctx, outcome, writes, now, tz)) is not None
        ]
    runs.flush(conn, writes, now)
    return executed


def _groups(items: list[Item]) -> list[list[Item]]:
    grouped: dict[tuple[str, int, str], list[Item]] = defaultdict(list)
    for item in items:
        grouped[(item.journey.journey_id, item.journey.version, item.step_id)].append(item)
    return list(grouped.values())


def _guarded(conn: Connection, ctx: AppContext, group: list[Item], now: datetime) -> list[Outcome]:
    """Run a group's handler in a savepoint; if it fails, each item alone, so only the culprit fails."""
    handler = steps.HANDLERS[group[0].step.type]
    try:
        with conn.begin_nested():
            outcomes = handler(conn, ctx, group, now)
    except TRANSIENT:
        raise
    except Exception as exc:
        if len(group) == 1:
            log.warning("journey step %s failed for run %s: %r", group[0].step_id, group[0].run_id, exc)
            return [steps.fail(group[0], f"{type(exc).__name__}: {exc}")]
        return [outcome for item in group for outcome in _guarded(conn, ctx, [item], now)]
    for item in group:
        ctx.metrics.journey_steps.labels(item.step.type).inc()
    return outcomes


def _finish(item: Item, writes: Writes, now: datetime, **values: Any) -> None:
    """The item's row becomes a finished (or re-scheduled) row."""
    row = {
        "status": "done",
        "branch": None,
        "detail": item.detail,
        "finished_at": now,
        "error": None,
        "attempts": item.attempts,
        "due_at": now,
        "waiting_for": None,
    }
    row.update(values)
    if item.row_id is not None:
        writes.done.append({"id": item.row_id, **row})
        return
    writes.inserted.append(
        runs.step_row(
            None,
            run_id=item.run_id,
            journey_id=item.journey.journey_id,
            contact_id=item.contact_id,
            step_id=item.step_id,
            type=item.step.type,
            created_at=now,
            **row,
        )
    )


def _record(
    ctx: AppContext, outcome: Outcome, writes: Writes, now: datetime, tz: dict[str, str | None]
) -> Item | None:
    """Write what happened to one item; answers the next step when it is to run now."""
    item = outcome.item
    run = writes.runs.setdefault(item.run_id, {})
    if outcome.variant:
        run["variant"] = outcome.variant
    if outcome.kind == "hold":
        assert outcome.due_at is not None
        _finish(
            item,
            writes,
            now,
            status="pending",
            due_at=outcome.due_at,
            waiting_for=outcome.waiting_for,
            detail=outcome.detail or item.detail,
            finished_at=None,
        )
        return None
    if outcome.kind == "fail":
        _failed(ctx, item, outcome.reason or "failed", writes, now)
        return None
    _finish(item, writes, now, branch=outcome.branch, detail=outcome.detail or item.detail)
    if item.step.type == "split" and outcome.branch:
        writes.exposures.append((item.journey.journey_id, item.step_id, outcome.branch, item.contact_id, now))
    if outcome.kind == "end":
        _end(run, outcome.status or "completed", outcome.reason, now)
        return None
    if outcome.target is None:
        _end(run, "completed", None, now)
        return None
    return _next(ctx, item, outcome.target, writes, run, now, tz)


def _next(
    ctx: AppContext,
    item: Item,
    target: str,
    writes: Writes,
    run: dict[str, Any],
    now: datetime,
    tz: dict[str, str | None],
) -> Item | None:
    step = item.journey.step(target)
    run["step_id"] = target
    follow = Item(
        row_id=None,
        run_id=item.run_id,
        journey=item.journey,
        contact_id=item.contact_id,
        step_id=target,
        attempts=0,
        branch=None,
        detail=None,
        trigger=item.trigger,
        entered_at=item.entered_at,
        origin=item.origin,
        depth=item.depth + 1,
    )
    due, waiting = runs.when_ready(ctx, step, now, tz.get(item.contact_id))
    if due <= now and step.type not in runs.WAITING_TYPES and follow.depth < MAX_CHAIN:
        return follow
    writes.inserted.append(
        runs.step_row(
            None,
            run_id=item.run_id,
            journey_id=item.journey.journey_id,
            contact_id=item.contact_id,
            step_id=target,
            type=step.type,
            due_at=due,
            waiting_for=waiting,
            created_at=now,
        )
    )
    return None


def _end(run: dict[str, Any], status: str, reason: str | None, now: datetime) -> None:
    run.update(status=status, ended_at=now, exit_reason=reason, active_key=None)
    if status == "converted":
        run["converted_at"] = now


def _failed(ctx: AppContext, item: Item, reason: str, writes: Writes, now: datetime) -> None:
    """Retry on :data:`SCHEDULE`; after the last attempt the step and the run fail with the reason."""
    attempts = item.attempts + 1
    due = SCHEDULE.next_due(now, attempts)
    ctx.metrics.journey_step_failures.labels(str(due is None).lower()).inc()
    if due is not None:
        _finish(
            item, writes, now, status="pending", due_at=due, error=reason, attempts=attempts, finished_at=None
        )
        return
    _finish(item, writes, now, status="failed", error=reason, attempts=attempts)
    run = writes.runs.setdefault(item.run_id, {})
    _end(run, "failed", "step failed", now)
    run["error"] = f"step {item.step_id}: {reason}"


class Executor:
    """The worker loop: run due steps until none are due, then sleep until woken or the poll interval."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        # steps queued faster than autovacuum analyses the table: the claim sorted all of them each pass
        self._statistics = QueueStatistics((journey_steps,))

    def run_once(self) -> int:
        """One batch (:func:`run_due`), the steps table analysed first when a burst made it stale."""
        self._statistics.refresh(self.ctx.db, self.ctx.clock.monotonic())
        return run_due(self.ctx)

    def run(self, stop: threading.Event) -> None:
        WorkerLoop(
            "journey executor",
            self.run_once,
            runs.CHANNEL,
            poll=self.ctx.settings.worker_poll_interval,
            backoff=0.5,
            max_backoff=30.0,
            logger=log,
        ).run(self.ctx.signals, stop)
