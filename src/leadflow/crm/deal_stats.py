"""Pipeline stats (``GET /api/v1/crm/pipeline/stats``): per pipeline and stage, over a date range.

- ``count``, ``values`` (per currency: ``total`` and ``weighted`` = total x probability / 100): the
  deals **created in the range** that are in the stage now (amounts in different currencies are
  never added together);
- ``reached``: deals that **entered** the stage in the range; ``conversion``: the share of those that
  also reached the next stage by position (at any time), null when none reached it or for the last
  stage (a ``won`` stage following the last open one is its next stage; ``lost`` is last);
- ``avg_days``: average days spent in the stage by the visits entered in the range (a deal still
  there counts until now).

Two set-based queries over the whole range, whatever the number of deals (see
:mod:`leadflow.crm.queries.pipeline_stats`): the totals from the deals created in the range, and the
flow (reached, conversion, average days) from the stage visits entered in it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel

from leadflow.crm import pipelines, queries
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid


class CurrencyValue(BaseModel):
    currency: str
    total: Decimal
    weighted: Decimal


class StageStats(BaseModel):
    stage_id: str
    name: str
    kind: pipelines.StageKind
    probability: int
    count: int
    values: list[CurrencyValue]
    reached: int
    conversion: float | None
    avg_days: float | None


class PipelineStats(BaseModel):
    pipeline_id: str
    name: str
    stages: list[StageStats]


def stats(
    ctx: AppContext, *, pipeline_id: str | None, start: datetime | None, end: datetime | None
) -> list[PipelineStats]:
    if start is not None and end is not None and start >= end:
        raise Invalid("from must be before to", code="invalid_range")
    found = pipelines.listing(ctx)
    if pipeline_id is not None:
        found = [p for p in found if p.id == pipeline_id]
        if not found:
            raise Invalid(f"no pipeline {pipeline_id}", code="pipeline_not_found")
    next_stage = {
        stage.id: following.id
        for pipeline in found
        for stage in pipeline.stages
        for following in pipeline.stages
        if following.position == stage.position + 1
    }
    with ctx.db.read() as conn:
        if conn.dialect.name == "postgresql":
            for setting in queries.TUNE:
                conn.execute(setting)
        totals = list(conn.execute(queries.stage_totals(pipeline_id, start, end)))
        flow = {
            row.id: row
            for row in conn.execute(
                queries.stage_flow(conn.dialect.name, pipeline_id, start, end, ctx.clock.now(), next_stage)
            )
        }
    counts: dict[str, int] = {}
    values: dict[str, list[CurrencyValue]] = {}
    for row in totals:
        counts[row.id] = counts.get(row.id, 0) + row.deals
        if row.currency is not None:
            values.setdefault(row.id, []).append(
                CurrencyValue(
                    currency=row.currency,
                    total=Decimal(row.total),
                    weighted=(Decimal(row.weighted) / 100).quantize(Decimal("0.0001")),
                )
            )
    answer = []
    for pipeline in found:
        rows = []
        for n, stage in enumerate(pipeline.stages):
            reached = flow[stage.id].reached if stage.id in flow else 0
            has_next = n + 1 < len(pipeline.stages) and stage.kind == "open"
            onward = flow[stage.id].reached_next if stage.id in flow else 0
            days = flow[stage.id].avg_days if stage.id in flow else None
            rows.append(
                StageStats(
                    stage_id=stage.id,
                    name=stage.name,
                    kind=stage.kind,
                    probability=stage.probability,
                    count=counts.get(stage.id, 0),
                    values=sorted(values.get(stage.id, []), key=lambda v: v.currency),
                    reached=reached,
                    conversion=round(onward / reached, 6) if has_next and reached else None,
                    avg_days=round(float(days), 6) if days is not None else None,
                )
            )
        answer.append(PipelineStats(pipeline_id=pipeline.id, name=pipeline.name, stages=rows))
    return answer
