"""``/api/v1/analytics``: KPIs, the lifecycle funnel, leads by source, email results and journey
funnels (and a template's clicks by link), each for a period of UTC days (``from``, ``to``,
inclusive) against the previous period of the same length; ``?format=csv`` answers a CSV report
instead. Reading needs ``read``."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from leadflow.analytics import service as analytics
from leadflow.analytics.catalogue import REPORTS, health_csv
from leadflow.analytics.reports import write_csv
from leadflow.analytics.schemas import EmailReport, Funnel, Health, JourneyFunnel, Kpis, LinkClicks, Sources
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require

router = APIRouter(prefix="/api/v1/analytics", tags=["analytics"])

Format = Literal["json", "csv"]
CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the report"}
}
_FROM = Query(None, alias="from", description="first UTC day (default: 29 days before 'to')")
_TO = Query(None, alias="to", description="last UTC day, inclusive (default: today)")
FORMAT = Query("json", description="json, or csv for a CSV report")


def csv_response(text: str, name: str) -> Response:
    """A CSV report as a download named ``name.csv``."""
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)


def _answer(report: BaseModel, fmt: Format, name: str) -> Any:
    return csv_response(analytics.to_csv(report), name) if fmt == "csv" else report


@router.get("/kpis", response_model=Kpis, responses=CSV, summary="KPIs for a period and the previous one")
def kpis(
    start: date | None = _FROM,
    end: date | None = _TO,
    format: Format = FORMAT,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Any:
    return _answer(analytics.kpis(ctx, start, end), format, "kpis")


@router.get("/funnel", response_model=Funnel, responses=CSV, summary="The lifecycle funnel")
def funnel(
    start: date | None = _FROM,
    end: date | None = _TO,
    format: Format = FORMAT,
    exact: bool = Query(
        False,
        description="exact medians computed from the stage entries (slower: reads every contact who "
        "entered a stage in the period); by default approximate medians (±0.5 %) from the rollups",
    ),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Any:
    return _answer(analytics.funnel(ctx, start, end, exact=exact), format, "funnel")


@router.get("/sources", response_model=Sources, responses=CSV, summary="Leads by source, medium and campaign")
def sources(
    start: date | None = _FROM,
    end: date | None = _TO,
    format: Format = FORMAT,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Any:
    return _answer(analytics.sources(ctx, start, end), format, "sources")


@router.get(
    "/email",
    response_model=EmailReport,
    responses=CSV,
    summary="Email results by template, journey, step or broadcast",
)
def email(
    by: Literal["template", "journey", "step", "broadcast"] = Query("template"),
    start: date | None = _FROM,
    end: date | None = _TO,
    format: Format = FORMAT,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Any:
    return _answer(analytics.email(ctx, by, start, end), format, f"email-by-{by}")


@router.get(
    "/email/templates/{template_id}/links",
    response_model=list[LinkClicks],
    responses=CSV,
    summary="A template's clicks by link: people's first clicks, machines' apart",
)
def email_links(
    template_id: str,
    start: date | None = _FROM,
    end: date | None = _TO,
    format: Format = FORMAT,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Any:
    found = analytics.email_links(ctx, template_id, start, end)
    if format == "csv":
        lines = [link.model_dump() for link in found]
        return csv_response(write_csv(lines, ["url", "clicked", "machine_clicked"]), "email-links")
    return found


@router.get(
    "/journeys/{journey_id}/funnel",
    response_model=JourneyFunnel,
    responses=CSV,
    summary="A journey's funnel: entered, each step, the goal",
)
def journey_funnel(
    journey_id: str,
    start: date | None = _FROM,
    end: date | None = _TO,
    format: Format = FORMAT,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Any:
    return _answer(analytics.journey_funnel(ctx, journey_id, start, end), format, "journey-funnel")


@router.get(
    "/health", response_model=Health, responses=CSV, summary="Webhook endpoints' and connectors' health"
)
def health(
    window_hours: float = Query(24.0, gt=0, le=24 * 90, description="hours back from now"),
    format: Format = FORMAT,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Any:
    found = analytics.health(ctx, window_hours)
    return csv_response(health_csv(found), "health") if format == "csv" else found


class ReportInfo(BaseModel):
    name: str
    title: str
    description: str
    period: bool
    params: list[str]


@router.get("/reports", response_model=list[ReportInfo], summary="The reports offered, each also as CSV")
def reports(_: Principal = Depends(require("read"))) -> list[ReportInfo]:
    return [
        ReportInfo(
            name=r.name,
            title=r.title,
            description=r.description,
            period=r.period,
            params=[p.name for p in r.params],
        )
        for r in REPORTS.values()
    ]
