"""Pipeline stats (``GET /api/v1/crm/pipeline/stats``): per pipeline and stage, over whole UTC days.

**The range** is a set of whole UTC days: the day of ``from`` (inclusive) up to the day of ``to``
(exclusive when ``to`` is at midnight UTC; a ``to`` later in a day includes that day), so an instant
range is widened to the days it touches; without ``from`` / ``to`` it is open on that side. Naive
instants are UTC. Per stage:

- ``count``, ``values`` (per currency: ``total`` and ``weighted`` = total x the stage's probability /
  100, 4 decimal places): the deals **created** on those days that are **in the stage now** (amounts in
  different currencies are never added together);
- ``reached``: the distinct deals whose **first** entry into the stage fell on those days (a deal that
  leaves and comes back is counted on its first entry only, so it is never counted twice);
  ``conversion``: the share of those that have also been in the next stage by position (at any time,
  up to now), null when none reached the stage, for the last stage and for won/lost stages (a ``won``
  stage following the last open one is its next stage; ``lost`` is last);
- ``avg_days``: the average days spent in the stage by **every visit** (re-entries too) entered on those
  days, a visit still open counting until now; null when there is none.

Read from the per-day counters of :mod:`leadflow.crm.stage_counters` (two statements summing a few
rows per stage and day, whatever the number of deals), kept exact in the transaction of every deal change.

:func:`owner_stats` gives one owner's ``count`` and ``values`` per stage (a sales user's board): the
counters have no owner, so it groups that owner's deals of the pipeline in one statement; it has no
range and no ``reached`` / ``conversion`` / ``avg_days`` (0 and null).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from pydantic import BaseModel

from leadflow.crm import pipelines, queries, stage_counters
from leadflow.crm.queries.deals import owner_stage_totals
from leadflow.kernel.clock import as_utc
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid

_PLACES = Decimal("0.0001")


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


def days_of(start: datetime | None, end: datetime | None) -> tuple[date | None, date | None]:
    """The whole UTC days ``[first, end)`` a range covers (see the module)."""
    first = stage_counters.day_of(as_utc(start)) if start is not None else None
    if end is None:
        return first, None
    end = as_utc(end)
    last = stage_counters.day_of(end)
    if end == datetime.combine(last, time(), UTC) or last == date.max:
        return first, last
    return first, last + timedelta(days=1)


def _values(probability: int, totals: list[tuple[str, Decimal]]) -> list[CurrencyValue]:
    """A stage's total and weighted value (total times the stage's win probability) per currency."""
    return [
        CurrencyValue(
            currency=currency,
            total=total.quantize(_PLACES),
            weighted=(total * probability / 100).quantize(_PLACES),
        )
        for currency, total in sorted(totals)
    ]


def stats(
    ctx: AppContext, *, pipeline_id: str | None, start: datetime | None, end: datetime | None
) -> list[PipelineStats]:
    if start is not None and end is not None and as_utc(start) >= as_utc(end):
        raise Invalid("from must be before to", code="invalid_range")
    found = pipelines.listing(ctx)
    if pipeline_id is not None:
        found = [p for p in found if p.id == pipeline_id]
        if not found:
            raise Invalid(f"no pipeline {pipeline_id}", code="pipeline_not_found")
    first, last = days_of(start, end)
    with ctx.db.read() as conn:
        totals = list(conn.execute(queries.deal_days(pipeline_id, first, last)))
        flow = {row.stage_id: row for row in conn.execute(queries.flow_days(pipeline_id, first, last))}
    now = ctx.clock.now().timestamp()
    counts: dict[str, int] = {}
    values: dict[str, list[tuple[str, Decimal]]] = {}
    for row in totals:
        if row.deals:
            counts[row.stage_id] = counts.get(row.stage_id, 0) + int(row.deals)
            values.setdefault(row.stage_id, []).append((row.currency, Decimal(row.total)))
    answer = []
    for pipeline in found:
        rows = []
        for n, stage in enumerate(pipeline.stages):
            seen = flow.get(stage.id)
            reached = int(seen.reached) if seen is not None else 0
            has_next = n + 1 < len(pipeline.stages) and stage.kind == "open"
            onward = int(seen.onward) if seen is not None else 0
            days = None
            if seen is not None and seen.visits:
                spent = float(seen.closed_seconds) + int(seen.open_visits) * now - float(seen.open_entered)
                days = spent / int(seen.visits) / 86400
            rows.append(
                StageStats(
                    stage_id=stage.id,
                    name=stage.name,
                    kind=stage.kind,
                    probability=stage.probability,
                    count=counts.get(stage.id, 0),
                    values=_values(stage.probability, values.get(stage.id, [])),
                    reached=reached,
                    conversion=round(onward / reached, 6) if has_next and reached else None,
                    avg_days=round(days, 6) if days is not None else None,
                )
            )
        answer.append(PipelineStats(pipeline_id=pipeline.id, name=pipeline.name, stages=rows))
    return answer


def owner_stats(ctx: AppContext, *, pipeline_id: str, owner_id: str) -> PipelineStats:
    """The deals of ``owner_id`` in each stage of a pipeline now: count, total and weighted value per
    currency, exact whatever their number (one grouped statement)."""
    found = next((p for p in pipelines.listing(ctx) if p.id == pipeline_id), None)
    if found is None:
        raise Invalid(f"no pipeline {pipeline_id}", code="pipeline_not_found")
    with ctx.db.read() as conn:
        rows = list(conn.execute(owner_stage_totals(pipeline_id, owner_id)))
    counts: dict[str, int] = {}
    values: dict[str, list[tuple[str, Decimal]]] = {}
    for row in rows:
        counts[row.stage_id] = counts.get(row.stage_id, 0) + int(row.deals)
        values.setdefault(row.stage_id, []).append((row.currency, Decimal(row.total)))
    stages = [
        StageStats(
            stage_id=stage.id,
            name=stage.name,
            kind=stage.kind,
            probability=stage.probability,
            count=counts.get(stage.id, 0),
            values=_values(stage.probability, values.get(stage.id, [])),
            reached=0,
            conversion=None,
            avg_days=None,
        )
        for stage in found.stages
    ]
    return PipelineStats(pipeline_id=found.id, name=found.name, stages=stages)
