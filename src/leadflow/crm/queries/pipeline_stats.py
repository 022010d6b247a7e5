"""Pipeline stats (leadflow.crm.deal_stats): per stage, over a date range, set-based."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.crm.models import (
    crm_deal_stages,
    crm_deals,
    crm_stages,
)
from leadflow.kernel.db import Sample
from leadflow.kernel.types import UTCDateTime

_s, _d, _v = crm_stages.c, crm_deals.c, crm_deal_stages.c


def _days(dialect: str, start: Any, end: Any) -> Any:
    if dialect == "sqlite":
        return sa.func.julianday(end) - sa.func.julianday(start)
    return sa.extract("epoch", end - start) / 86400.0


def _in_range(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    return [c for c in (column >= start if start else None, column < end if end else None) if c is not None]


def stage_totals(pipeline_id: str | None, start: datetime | None, end: datetime | None) -> sa.Select[Any]:
    """Per stage and currency: deals created in ``[start, end)`` that are in the stage now, their total
    value and their value weighted by the stage's probability (percent: divide by 100)."""
    on = sa.and_(_d.stage_id == _s.id, *_in_range(_d.created_at, start, end))
    query = (
        sa.select(
            _s.id,
            _d.currency,
            sa.func.count(_d.id).label("deals"),
            sa.func.coalesce(sa.func.sum(_d.value), 0).label("total"),
            sa.func.coalesce(sa.func.sum(_d.value * _s.probability), 0).label("weighted"),
        )
        .select_from(crm_stages)
        .outerjoin(crm_deals, on)
        .group_by(_s.id, _d.currency)
    )
    return query if pipeline_id is None else query.where(_s.pipeline_id == pipeline_id)


def stage_flow(
    dialect: str, pipeline_id: str | None, start: datetime | None, end: datetime | None, now: datetime
) -> sa.Select[Any]:
    """Per stage, over the visits entered in ``[start, end)``: the deals that reached it and the average
    days spent in it (an open visit counts until ``now``). One pass over ``crm_deal_stages``."""
    left = sa.func.coalesce(_v.left_at, sa.literal(now, UTCDateTime()))
    query = (
        sa.select(
            _s.id,
            sa.func.count(sa.distinct(_v.deal_id)).label("reached"),
            sa.func.avg(_days(dialect, _v.entered_at, left)).label("avg_days"),
        )
        .select_from(crm_deal_stages)
        .join(crm_stages, _s.id == _v.stage_id)
        .where(*_in_range(_v.entered_at, start, end))
        .group_by(_s.id)
    )
    return query if pipeline_id is None else query.where(_s.pipeline_id == pipeline_id)


def stage_onward(pipeline_id: str | None, start: datetime | None, end: datetime | None) -> sa.Select[Any]:
    """Per stage: of the deals that entered it in ``[start, end)``, those that also reached the stage
    right after it by position (at any time): a join of the visits with themselves on
    ``(deal_id, stage_id)``."""
    nxt, later = crm_stages.alias("nxt"), crm_deal_stages.alias("later")
    query = (
        sa.select(_s.id.label("stage_id"), sa.func.count(sa.distinct(_v.deal_id)).label("reached_next"))
        .select_from(crm_deal_stages)
        .join(crm_stages, _s.id == _v.stage_id)
        .join(nxt, sa.and_(nxt.c.pipeline_id == _s.pipeline_id, nxt.c.position == _s.position + 1))
        .join(later, sa.and_(later.c.deal_id == _v.deal_id, later.c.stage_id == nxt.c.id))
        .where(*_in_range(_v.entered_at, start, end))
        .group_by(_s.id)
    )
    return query if pipeline_id is None else query.where(_s.pipeline_id == pipeline_id)


_AT = datetime(2026, 1, 1, tzinfo=UTC)

SAMPLES: list[Sample] = [
    lambda: [stage_totals(p, _AT, _AT) for p in ("p", None)],
    lambda: [stage_flow(d, p, _AT, None, _AT) for d in ("sqlite", "postgresql") for p in ("p", None)],
    lambda: [stage_onward(p, None, _AT) for p in ("p", None)],
]
