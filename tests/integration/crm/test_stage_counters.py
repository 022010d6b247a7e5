"""The pipeline stats' per-day counters, kept in each deal change's transaction, always answer what a
count from scratch over the deals and their stage history does; the rebuild and migration 0020's
backfill recompute the same counters (issue 13, §1 pipeline stats; :mod:`leadflow.crm.stage_counters`)."""

from __future__ import annotations

import math
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadflow.crm import deal_stats, deals, pipelines, stage_counters
from leadflow.crm.models import crm_deal_stages, crm_deals, crm_stage_days, crm_stage_deal_days
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.ids import new_id
from tests.integration.crm.test_stats_and_search import STAGES, _as_compared, _stats_by_brute_force
from tests.support import migrations

ACTOR = "test"
_deal = st.integers(0, 30)  # which of the deals made so far (modulo their number)
_stage = st.integers(0, len(STAGES) - 1)
_money = st.tuples(st.integers(0, 99_999), st.sampled_from(["EUR", "USD"]))
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), _stage, _money),
        st.tuples(st.just("move"), _deal, _stage),  # forwards, backwards, won, lost, out of won/lost
        st.tuples(st.just("value"), _deal, _money),
        st.tuples(st.just("delete"), _deal),
        st.tuples(st.just("wait"), st.integers(1, 50)),  # hours: visits span days
        st.tuples(st.just("reorder"), st.permutations(range(3))),  # the open stages' order changes
    ),
    min_size=1,
    max_size=30,
)


def _run(ctx: AppContext, clock: VirtualClock, pipeline: pipelines.Pipeline, steps: list[Any]) -> None:
    ids: list[str] = []
    for step in steps:
        kind = step[0]
        if kind == "create":
            stage = pipeline.stages[step[1]]
            cents, currency = step[2]
            made = deals.create(
                ctx,
                deals.DealCreate(
                    title="D",
                    pipeline_id=pipeline.id,
                    stage=stage.id,
                    reason="r",
                    value=Decimal(cents) / 100,
                    currency=currency,
                ),
                actor=ACTOR,
            )
            ids.append(made.id)
        elif kind == "wait":
            clock.advance(timedelta(hours=step[1]))
        elif kind == "reorder":
            now = pipelines.get(ctx, pipeline.id).stages
            opened = [s for s in now if s.kind == "open"]
            order = [opened[n] for n in step[1]] + [s for s in now if s.kind != "open"]
            given_ = [
                pipelines.StageIn(id=s.id, name=s.name, probability=s.probability, kind=s.kind) for s in order
            ]
            pipelines.update(
                ctx, pipeline.id, pipelines.PipelineIn(name=pipeline.name, stages=given_), actor=ACTOR
            )
        elif ids:
            deal_id = ids[step[1] % len(ids)]
            if kind == "move":
                fields = deals.DealFields(stage=pipeline.stages[step[2]].id, reason="r")  # ignored if open
                deals.update(ctx, deal_id, fields, actor=ACTOR)
            elif kind == "value":
                cents, currency = step[2]
                deals.update(
                    ctx, deal_id, deals.DealFields(value=Decimal(cents) / 100, currency=currency), actor=ACTOR
                )
            else:
                deals.delete(ctx, deal_id, actor=ACTOR)
                ids.remove(deal_id)


def _counters(ctx: AppContext, pipeline_id: str) -> tuple[list[Any], list[Any]]:
    """Both counter tables of a pipeline, rows that came down to zero left out."""
    with ctx.db.read() as conn:
        flow = conn.execute(
            sa.select(crm_stage_days)
            .where(crm_stage_days.c.pipeline_id == pipeline_id)
            .order_by(crm_stage_days.c.stage_id, crm_stage_days.c.day)
        )
        money = conn.execute(
            sa.select(crm_stage_deal_days)
            .where(crm_stage_deal_days.c.pipeline_id == pipeline_id)
            .order_by(
                crm_stage_deal_days.c.stage_id, crm_stage_deal_days.c.day, crm_stage_deal_days.c.currency
            )
        )
        return (
            [r for r in flow if r.visits or r.reached or r.onward or r.open_visits],
            [r for r in money if r.deals],
        )


def _same_counters(one: tuple[list[Any], list[Any]], other: tuple[list[Any], list[Any]]) -> None:
    assert [(r.stage_id, r.day, r.reached, r.onward, r.visits, r.open_visits) for r in one[0]] == [
        (r.stage_id, r.day, r.reached, r.onward, r.visits, r.open_visits) for r in other[0]
    ]
    for a, b in zip(one[0], other[0], strict=True):
        assert math.isclose(a.closed_seconds, b.closed_seconds, abs_tol=1e-3)
        assert math.isclose(a.open_entered, b.open_entered, abs_tol=1e-3)
    assert [(r.stage_id, r.day, r.currency, r.deals, Decimal(r.total)) for r in one[1]] == [
        (r.stage_id, r.day, r.currency, r.deals, Decimal(r.total)) for r in other[1]
    ]


def _check_stats(ctx: AppContext, clock: VirtualClock, pipeline_id: str, began: Any) -> None:
    with ctx.db.read() as conn:
        rows = list(conn.execute(sa.select(crm_deals).where(crm_deals.c.pipeline_id == pipeline_id)))
        visits = list(
            conn.execute(
                sa.select(crm_deal_stages).where(crm_deal_stages.c.deal_id.in_([d.id for d in rows]))
            )
        )
    shape = pipelines.get(ctx, pipeline_id).model_dump()
    now = clock.now()
    middle = began + (now - began) / 2
    ranges = [(None, None), (middle, None), (None, middle), (began + timedelta(hours=30), now)]
    for start, end in [(a, b) for a, b in ranges if a is None or b is None or a < b]:
        [found] = deal_stats.stats(ctx, pipeline_id=pipeline_id, start=start, end=end)
        expected = _stats_by_brute_force(shape, rows, visits, start, end, now)
        for have, want in zip([_as_compared(s.model_dump()) for s in found.stages], expected, strict=True):
            days, wanted_days = have.pop("avg_days"), want.pop("avg_days")
            assert (days is None) == (wanted_days is None)
            assert days is None or abs(days - wanted_days) <= 1e-6
            assert have == want, (start, end)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_counters_answer_what_the_stage_history_does(
    ctx: AppContext, clock: VirtualClock, steps: list[Any]
) -> None:
    pipeline = pipelines.create(
        ctx,
        pipelines.PipelineIn(name=f"H {new_id()}", stages=[pipelines.StageIn(**s) for s in STAGES]),
        actor=ACTOR,
    )
    began = clock.now()
    _run(ctx, clock, pipeline, steps)
    clock.advance(timedelta(hours=3))
    _check_stats(ctx, clock, pipeline.id, began)
    kept = _counters(ctx, pipeline.id)
    with ctx.db.write() as conn:
        stage_counters.rebuild(conn, pipeline.id)
    _same_counters(kept, _counters(ctx, pipeline.id))
    _check_stats(ctx, clock, pipeline.id, began)


def test_migration_0020_backfills_what_the_deal_changes_keep(ctx: AppContext, clock: VirtualClock) -> None:
    stages = [pipelines.StageIn(**s) for s in STAGES]
    pipeline = pipelines.create(ctx, pipelines.PipelineIn(name="Backfill", stages=stages), actor=ACTOR)
    steps: list[tuple[Any, ...]] = [
        ("create", n % 3, (1000 * n + 5, "EUR" if n % 2 else "USD")) for n in range(6)
    ]
    steps += [("wait", 30), ("move", 0, 1), ("move", 1, 2), ("wait", 20), ("move", 0, 0), ("move", 2, 3)]
    steps += [("wait", 40), ("move", 0, 1), ("move", 3, 4), ("value", 4, (777, "USD")), ("delete", 5)]
    _run(ctx, clock, pipeline, steps)
    kept = _counters(ctx, pipeline.id)
    assert sum(r.reached for r in kept[0]) > sum(r.reached for r in kept[0] if r.onward) > 0
    assert sum(r.visits for r in kept[0]) > sum(r.reached for r in kept[0])  # a stage entered twice
    migration = migrations.load("0020_crm_stage_counters.py")
    with ctx.db.write() as conn:
        conn.execute(crm_stage_days.delete())
        conn.execute(crm_stage_deal_days.delete())
        expressions = migration._SQL[conn.dialect.name]
        conn.exec_driver_sql(migration._FLOW.format(**expressions))
        conn.exec_driver_sql(migration._DEALS.format(**expressions))
    _same_counters(kept, _counters(ctx, pipeline.id))
