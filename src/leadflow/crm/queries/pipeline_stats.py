"""Pipeline stats (leadflow.crm.deal_stats): per stage, over a date range, in two set-based statements.

- :func:`stage_totals` reads the deals created in the range from the covering index
  ``ix_crm_deals_created_at_stage_id`` ``(created_at, stage_id, currency, value)`` (index-only on
  PostgreSQL) and aggregates them before joining the few stages.
- :func:`stage_flow` reads the visits entered in the range from the covering index
  ``ix_crm_deal_stages_entered_at`` ``(entered_at, stage_id, deal_id, left_at)``, groups them by
  ``(stage, deal)`` once (hash aggregates, no sort of the ids), and answers from that same set how many
  of those deals also reached the next stage (a hash semi-join with the visits of the stages that follow
  another: probing an index per deal cost three times as much at 100k deals). The next stage (by
  position + 1 in its pipeline) comes from the caller, which has the pipelines already.

On PostgreSQL the read runs with :data:`TUNE` first: no JIT compilation (its set-up costs more than these
queries run), enough ``work_mem`` for the hash aggregates to stay in memory, and a plan made for each
range (psycopg prepares a statement after 5 runs; a generic plan, blind to the range, may probe per deal).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.crm.models import crm_deal_stages, crm_deals, crm_stages
from leadflow.kernel.db import Sample
from leadflow.kernel.types import UTCDateTime

_s, _d, _v = crm_stages.c, crm_deals.c, crm_deal_stages.c

#: PostgreSQL settings for the stats' read transaction (``SET LOCAL``: they end with it).
TUNE = [
    sa.text("SET LOCAL jit = off"),
    sa.text("SET LOCAL work_mem = '32MB'"),
    sa.text("SET LOCAL plan_cache_mode = force_custom_plan"),
]


def _days(dialect: str, start: Any, end: Any) -> Any:
    if dialect == "sqlite":
        return sa.func.julianday(end) - sa.func.julianday(start)
    return sa.func.date_part("epoch", end - start) / 86400.0


def _in_range(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    return [c for c in (column >= start if start else None, column < end if end else None) if c is not None]


def stage_totals(pipeline_id: str | None, start: datetime | None, end: datetime | None) -> sa.Select[Any]:
    """Per stage and currency: deals created in ``[start, end)`` that are in the stage now, their total
    value and their value weighted by the stage's probability (percent: divide by 100). A stage with no
    such deal has no row."""
    query = (
        sa.select(
            _s.id,
            _d.currency,
            sa.func.count().label("deals"),
            sa.func.sum(_d.value).label("total"),
            sa.func.sum(_d.value * _s.probability).label("weighted"),
        )
        .select_from(crm_deals)
        .join(crm_stages, _s.id == _d.stage_id)
        .where(*_in_range(_d.created_at, start, end))
        .group_by(_s.id, _d.currency)
    )
    return query if pipeline_id is None else query.where(_d.pipeline_id == pipeline_id)


def stage_flow(
    dialect: str,
    pipeline_id: str | None,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    next_stage: Mapping[str, str],
) -> sa.Select[Any]:
    """Per stage, over the visits entered in ``[start, end)``: ``reached``, the deals that entered it;
    ``avg_days``, the average days spent in it per visit (an open visit counts until ``now``);
    ``reached_next``, those of the deals that also reached ``next_stage[stage]`` (at any time)."""
    left = sa.func.coalesce(_v.left_at, sa.literal(now, UTCDateTime()))
    following = (
        sa.case(dict(next_stage), value=_v.stage_id, else_=sa.null()) if next_stage else sa.null()
    ).label("next_id")
    per_deal = sa.select(
        _v.stage_id,
        _v.deal_id,
        following,
        sa.func.count().label("visits"),
        sa.func.sum(_days(dialect, _v.entered_at, left)).label("days"),
    ).where(*_in_range(_v.entered_at, start, end))
    if pipeline_id is not None:
        in_pipeline = sa.select(_s.id).where(_s.pipeline_id == pipeline_id)
        per_deal = per_deal.where(_v.stage_id.in_(in_pipeline.scalar_subquery()))
    per = per_deal.group_by(_v.stage_id, _v.deal_id).cte("per")
    later = crm_deal_stages.alias("later")
    onward = (
        sa.select(per.c.stage_id, sa.func.count().label("deals"))
        .where(
            sa.exists().where(
                later.c.deal_id == per.c.deal_id,
                later.c.stage_id == per.c.next_id,
                later.c.stage_id.in_(sorted(set(next_stage.values()))),
            )
        )
        .group_by(per.c.stage_id)
        .subquery("onward")
    )
    return (
        sa.select(
            per.c.stage_id.label("id"),
            sa.func.count().label("reached"),
            (sa.func.sum(per.c.days) / sa.func.sum(per.c.visits)).label("avg_days"),
            sa.func.coalesce(sa.func.max(onward.c.deals), 0).label("reached_next"),
        )
        .select_from(per.outerjoin(onward, onward.c.stage_id == per.c.stage_id))
        .group_by(per.c.stage_id)
    )


_AT = datetime(2026, 1, 1, tzinfo=UTC)

SAMPLES: list[Sample] = [
    lambda: TUNE,
    lambda: [stage_totals(p, _AT, _AT) for p in ("p", None)],
    lambda: [
        stage_flow(d, p, _AT, None, _AT, nxt)
        for d in ("sqlite", "postgresql")
        for p in ("p", None)
        for nxt in ({"s1": "s2"}, {})
    ],
]
