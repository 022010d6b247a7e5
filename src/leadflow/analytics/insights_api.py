"""``/api/v1/analytics/attribution`` and ``/api/v1/analytics/experiments``: conversions credited to
their touchpoints under five models, and the A/B readouts of journey splits; ``?format=csv`` answers
CSV. Reading needs ``read``; bad parameters are a 422 with a code."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, cast

from fastapi import APIRouter, Depends, Query

from leadflow.analytics import insights
from leadflow.analytics.api import CSV, FORMAT, Format, csv_response
from leadflow.analytics.attribution import Dimension, Model
from leadflow.analytics.insights import Attribution, Experiment, Experiments
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.kernel.http import Principal, context, require

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])


def _answer(report: Attribution | Experiment | Experiments, fmt: Format, name: str) -> Any:
    return csv_response(insights.to_csv(report), name) if fmt == "csv" else report


@router.get(
    "/attribution",
    response_model=Attribution,
    responses=CSV,
    summary="Conversions credited to the touchpoints before them (first, last, linear, time decay, position)",
)
def attribution(
    conversion: str = Query(..., description="an event name, or stage:NAME for a lifecycle stage"),
    start: date | None = Query(
        None, alias="from", description="first UTC day (default: 29 days before 'to')"
    ),
    end: date | None = Query(None, alias="to", description="last UTC day, inclusive (default: today)"),
    model: str | None = Query(None, description="one model; all five when omitted"),
    by: str = Query("source", description="source, medium, campaign or journey"),
    lookback_days: int = Query(
        90,
        description="touchpoints at most this many days before a conversion (422 invalid_lookback outside)",
        json_schema_extra={"minimum": 1, "maximum": insights.MAX_LOOKBACK},
    ),
    value: Decimal | None = Query(
        None, description="a fixed value per conversion (default: its revenue/value)"
    ),
    format: Format = FORMAT,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Any:
    if value is not None and not value.is_finite():
        raise Invalid("'value' is a number", code="invalid_value")
    report = insights.attribution_report(
        ctx,
        conversion,
        start=start,
        end=end,
        models=[cast(Model, model)] if model else None,
        by=cast(Dimension, by),
        lookback_days=lookback_days,
        value=value,
    )
    return _answer(report, format, "attribution")


@router.get(
    "/experiments", response_model=Experiments, responses=CSV, summary="A/B readouts of every journey split"
)
def experiments(
    format: Format = FORMAT,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Any:
    return _answer(insights.experiments(ctx), format, "experiments")


@router.get(
    "/experiments/{journey_id}/{step_id}",
    response_model=Experiment,
    responses=CSV,
    summary="The A/B readout of one journey split",
)
def experiment(
    journey_id: str,
    step_id: str,
    format: Format = FORMAT,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Any:
    return _answer(insights.experiment(ctx, journey_id, step_id), format, "experiment")
