"""The journey funnel's per-day counters kept by the engine (``journey_entry_daily``,
``journey_reach_daily``, :mod:`leadflow.journeys.funnels`) always equal a recount from scratch, and the
funnel read from them equals the funnel's former query over the raw runs and steps for any period, on
both databases: after random sequences of entries (re-entries too), replies, goals (events and a goal
step), a loop that reaches a step again, a step that fails and is retried, and days passing. Migration
0025's backfill computes the same counters."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadflow.analytics import service as analytics
from leadflow.analytics import store
from leadflow.journeys import service as journeys
from leadflow.journeys.models import journey_entry_daily, journey_reach_daily, journey_runs, journey_steps
from leadflow.journeys.runs import Writes, flush
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support import journeys as j
from tests.support import migrations
from tests.support.events import send

LOOPING = {
    "name": "Looping",
    "trigger": {"type": "event", "event": "Go"},
    "entry": {"reentry": "always", "one_at_a_time": False},
    "settings": {"goal": {"event": "Buy", "within": "3d"}},
    "steps": [
        {"id": "ask", "type": "wait_until", "event": "Reply", "timeout": "10h", "on_event": "tag",
         "on_timeout": "nudge"},
        # back to "ask": the run's second row for that step (reached once)
        {"id": "nudge", "type": "wait", "duration": "4h", "next": "ask"},
        {"id": "tag", "type": "add_tag", "tags": ["replied"], "next": "check"},
        {"id": "check", "type": "goal", "event": "Buy", "within": "2h", "next": "bad"},
        # no such property: the step fails, is retried on the engine's schedule, then the run fails
        {"id": "bad", "type": "wait_until_time", "at": "{{ event.properties.when }}"},
    ],
}  # fmt: skip
USERS = [f"u{i}" for i in range(6)]
_user = st.sampled_from(USERS)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("go"), _user),
        st.tuples(st.just("reply"), _user),
        st.tuples(st.just("buy"), _user),
        st.tuples(st.just("wait"), st.sampled_from([1, 30, 120, 600, 1500])),  # minutes
    ),
    min_size=1,
    max_size=25,
)
EVENTS = {"go": "Go", "reply": "Reply", "buy": "Buy"}


def _play(ctx: AppContext, clock: VirtualClock, ops: list[Any]) -> None:
    for op in ops:
        if op[0] == "wait":
            j.advance(ctx, clock, timedelta(minutes=op[1]), step=timedelta(minutes=30))
        else:
            send(ctx, {"type": "track", "userId": op[1], "event": EVENTS[op[0]]})
        j.settle(ctx)


def _counters(ctx: AppContext, journey_id: str) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [row for row in journeys.funnel_counters(conn) if row["journey_id"] == journey_id]


def _funnels(ctx: AppContext, journey_id: str, first: date, last: date) -> tuple[Any, Any, Any]:
    """The funnel of the days ``first`` to ``last``: the API's, from the counters, from the raw runs."""
    start = datetime.combine(first, time(), tzinfo=UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tzinfo=UTC)
    with ctx.db.read() as conn:
        kept = (
            tuple(conn.execute(store.journey_entered(journey_id, first, last)).one()),
            [tuple(r) for r in conn.execute(store.journey_reached(journey_id, first, last))],
        )
        raw = (
            tuple(conn.execute(store.journey_entered_from_runs(journey_id, start, end)).one()),
            [tuple(r) for r in conn.execute(store.journey_reached_from_runs(journey_id, start, end))],
        )
    funnel = analytics.journey_funnel(ctx, journey_id, first, last)
    api = ((funnel.entered, funnel.converted), [(s.step_id, s.reached) for s in funnel.steps])
    as_ints = ((int(kept[0][0]), int(kept[0][1])), [(s, int(n), int(f)) for s, n, f in kept[1]])
    return api, as_ints, ((int(raw[0][0]), int(raw[0][1])), [(s, int(n), int(f)) for s, n, f in raw[1]])


def _periods(first: date, last: date) -> list[tuple[date, date]]:
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return [(first, last), *[(d, d) for d in days], *pairwise(days)]


def _check_periods(ctx: AppContext, journey_id: str, first: date, last: date) -> int:
    """Every period's funnel: the API's = the counters' = the raw query's; answers the runs entered."""
    for start, end in _periods(first, last):
        api, kept, raw = _funnels(ctx, journey_id, start, end)
        assert kept == raw, (start, end)
        assert api == (kept[0], [(s, n) for s, n, _ in kept[1]]), (start, end)
    return _funnels(ctx, journey_id, first, last)[2][0][0]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_counters_equal_a_recount_and_the_raw_funnel(
    ctx: AppContext, clock: VirtualClock, ops: list[Any]
) -> None:
    journey_id = j.publish(ctx, LOOPING)
    first = clock.now().date()
    _play(ctx, clock, ops)
    j.advance(ctx, clock, timedelta(hours=3), step=timedelta(hours=1))  # retries and goal checks run
    _check_periods(ctx, journey_id, first, clock.now().date())
    kept = _counters(ctx, journey_id)
    rows = journeys.rebuild_funnel_counters(ctx)
    with ctx.db.read() as conn:
        assert rows == len(journeys.funnel_counters(conn))
    assert _counters(ctx, journey_id) == kept


def test_a_run_counts_once_on_its_day_of_entry(ctx: AppContext, clock: VirtualClock) -> None:
    """A hand-made sequence checked by value: re-entries, a loop back to a step, a conversion on a later
    day counted on the day of entry, a retried failing step."""
    journey_id = j.publish(ctx, LOOPING)
    first = clock.now().date()
    ops: list[Any] = [("go", u) for u in USERS] + [("go", "u0"), ("reply", "u1"), ("wait", 120)]
    ops += [("buy", "u1"), ("wait", 1500), ("wait", 600), ("reply", "u2"), ("go", "u3"), ("wait", 1500)]
    ops += [("buy", "u2"), ("wait", 600)]
    _play(ctx, clock, ops)
    j.advance(ctx, clock, timedelta(hours=3))
    last = clock.now().date()
    assert last > first + timedelta(days=1)
    with ctx.db.read() as conn:
        asks = conn.execute(
            sa.select(journey_steps.c.run_id, sa.func.count())
            .where(journey_steps.c.journey_id == journey_id, journey_steps.c.step_id == "ask")
            .group_by(journey_steps.c.run_id)
        ).all()
        retried = conn.execute(
            sa.select(sa.func.max(journey_steps.c.attempts)).where(
                journey_steps.c.journey_id == journey_id, journey_steps.c.step_id == "bad"
            )
        ).scalar()
    assert max(n for _, n in asks) >= 2  # the loop reached "ask" again
    assert (retried or 0) >= 2  # the failing step was retried
    assert _check_periods(ctx, journey_id, first, last) == len(USERS) + 2
    api, _, _ = _funnels(ctx, journey_id, first, first)
    assert api[0] == (len(USERS) + 1, 2)  # u1 converted that day, u2 (entered that day) the day after
    assert dict(api[1])["ask"] == len(USERS) + 1  # reached once per run, loops and all
    assert [s for s, _ in api[1]][:2] == ["ask", "tag"]


def test_migration_0025_backfills_what_the_engine_keeps(ctx: AppContext, clock: VirtualClock) -> None:
    journey_id = j.publish(ctx, LOOPING)
    ops: list[Any] = [("go", u) for u in USERS] + [("reply", u) for u in USERS[::2]]
    ops += [("wait", 1500), ("go", "u1"), ("buy", "u2"), ("wait", 600), ("buy", "u4"), ("wait", 120)]
    _play(ctx, clock, ops)
    kept = _counters(ctx, journey_id)
    assert any(row.get("converted") for row in kept)
    assert len({row["day"] for row in kept}) >= 2
    migration = migrations.load("0025_journey_funnel_counters.py")
    with ctx.db.write() as conn:
        conn.execute(journey_entry_daily.delete())
        conn.execute(journey_reach_daily.delete())
        day = migration._DAY[conn.dialect.name]
        conn.exec_driver_sql(migration._ENTRIES.format(day=day))
        conn.exec_driver_sql(migration._REACHED.format(day=day))
    assert _counters(ctx, journey_id) == kept


def test_a_batch_converting_a_run_the_goal_event_converted_meanwhile_counts_nothing(
    ctx: AppContext, clock: VirtualClock
) -> None:
    """The executor read a run before the pipeline converted it (its goal step and the goal event at
    once): its write keeps the first conversion's time and adds no second conversion to the counters."""
    journey_id = j.publish(ctx, LOOPING)
    _play(ctx, clock, [("go", "u0"), ("buy", "u0")])
    before = _counters(ctx, journey_id)
    with ctx.db.read() as conn:
        run_id, first = conn.execute(
            sa.select(journey_runs.c.id, journey_runs.c.converted_at).where(
                journey_runs.c.journey_id == journey_id
            )
        ).one()
    assert first is not None
    late = clock.now() + timedelta(minutes=5)
    with ctx.db.write() as conn:
        writes = Writes(runs={run_id: {"converted_at": late, "status": "converted", "ended_at": late}})
        flush(conn, writes, late)
    with ctx.db.read() as conn:
        again = conn.execute(
            sa.select(journey_runs.c.converted_at).where(journey_runs.c.id == run_id)
        ).scalar()
    assert again == first
    assert _counters(ctx, journey_id) == before
