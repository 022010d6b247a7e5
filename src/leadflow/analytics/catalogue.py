"""The reports analytics offers, each exportable as CSV: one catalogue read by the API's
``?format=csv``, the console's reports page and its downloads, so a report added here is listed and
downloadable everywhere.

A report takes the period (``start``/``end``, UTC days inclusive; the previous period of the same
length beside it where the report has one) and its own parameters (``params``: a journey, a template,
a conversion …). A missing or bad parameter is :class:`~leadflow.kernel.errors.Invalid` (a 4xx).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, cast

from pydantic import BaseModel

from leadflow.analytics import health as health_report
from leadflow.analytics import insights, kpis
from leadflow.analytics.attribution import Dimension, Model
from leadflow.analytics.reports import row_of, to_csv, write_csv
from leadflow.analytics.schemas import Health
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid

Params = dict[str, str]


@dataclass(frozen=True)
class Param:
    name: str
    label: str
    required: bool = False
    choices: tuple[str, ...] = ()  # a closed list; empty: free text (or a list the page fills)


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    description: str
    make: Callable[[AppContext, date | None, date | None, Params], str]
    params: tuple[Param, ...] = ()
    period: bool = True  # takes from/to (else it is "now", or its own window)


def _need(params: Params, name: str) -> str:
    value = (params.get(name) or "").strip()
    if not value:
        raise Invalid(f"this report needs '{name}'", code="missing_parameter")
    return value


def health_csv(report: Health) -> str:
    """One line per connector and per webhook endpoint, their figures flattened into columns."""
    lines = [{"kind": "connector", **row_of(item)} for item in report.connectors]
    lines += [{"kind": "webhook", **row_of(item)} for item in report.webhooks]
    return write_csv(lines)


def _hours(params: Params) -> float:
    text = (params.get("window_hours") or "24").strip()
    try:
        hours = float(text)
    except ValueError:
        raise Invalid("'window_hours' is a number of hours", code="invalid_window") from None
    if not 0 < hours <= 24 * 90:
        raise Invalid("'window_hours' is between 0 and 2160", code="invalid_window")
    return hours


def _model(report: BaseModel) -> str:
    return to_csv(report)


def _email(ctx: AppContext, start: date | None, end: date | None, p: Params) -> str:
    by = p.get("by") or "template"
    if by not in EMAIL_BY:
        raise Invalid(f"'by' is one of {', '.join(EMAIL_BY)}", code="invalid_by")
    return _model(kpis.email(ctx, cast(Any, by), start, end))


def _links(ctx: AppContext, start: date | None, end: date | None, p: Params) -> str:
    found = kpis.email_links(ctx, _need(p, "template_id"), start, end)
    return write_csv([link.model_dump() for link in found], ["url", "clicked", "machine_clicked"])


def _attribution(ctx: AppContext, start: date | None, end: date | None, p: Params) -> str:
    model = p.get("model") or None
    report = insights.attribution_report(
        ctx,
        _need(p, "conversion"),
        start=start,
        end=end,
        models=[cast(Model, model)] if model else None,
        by=cast(Dimension, p.get("by") or "source"),
    )
    return insights.to_csv(report)


EMAIL_BY = ("template", "journey", "step", "broadcast")
REPORTS: dict[str, Report] = {
    r.name: r
    for r in (
        Report(
            "kpis",
            "KPIs",
            "Every dashboard figure for the period against the previous one.",
            lambda ctx, s, e, p: _model(kpis.kpis(ctx, s, e)),
        ),
        Report(
            "funnel",
            "Lifecycle funnel",
            "Entries per stage, conversion from the stage before and the median time it took.",
            lambda ctx, s, e, p: _model(kpis.funnel(ctx, s, e)),
        ),
        Report(
            "sources",
            "Leads by source",
            "Leads by their first touch's source, medium and campaign (UTM).",
            lambda ctx, s, e, p: _model(kpis.sources(ctx, s, e)),
        ),
        Report(
            "email",
            "Email results",
            "Sent, delivered, opened, clicked, unsubscribed, bounced, complained and their rates.",
            _email,
            (Param("by", "By", choices=EMAIL_BY),),
        ),
        Report(
            "email-links",
            "A template's clicks by link",
            "People's first clicks on each link of a template, machines' apart.",
            _links,
            (Param("template_id", "Template", required=True),),
        ),
        Report(
            "journey-funnel",
            "Journey funnel",
            "A journey's entries, each step reached and the goal.",
            lambda ctx, s, e, p: _model(kpis.journey_funnel(ctx, _need(p, "journey_id"), s, e)),
            (Param("journey_id", "Journey", required=True),),
        ),
        Report(
            "attribution",
            "Attribution",
            "Conversions credited to their touchpoints under five models (90-day lookback).",
            _attribution,
            (
                Param("conversion", "Conversion (event name or stage:NAME)", required=True),
                Param("by", "By", choices=("source", "medium", "campaign", "journey")),
            ),
        ),
        Report(
            "experiments",
            "A/B readouts",
            "Every journey split's variants: exposures, conversions, lift and probability to beat control.",
            lambda ctx, s, e, p: insights.to_csv(insights.experiments(ctx)),
            period=False,
        ),
        Report(
            "health",
            "Sync and webhook health",
            "Each connector's and webhook endpoint's health over the last hours.",
            lambda ctx, s, e, p: health_csv(health_report.health(ctx, _hours(p))),
            (Param("window_hours", "Hours back"),),
            period=False,
        ),
    )
}


def report_csv(ctx: AppContext, name: str, start: date | None, end: date | None, params: Params) -> str:
    """The CSV text of the report ``name`` (:data:`REPORTS`); unknown names are an Invalid."""
    found = REPORTS.get(name)
    if found is None:
        raise Invalid(f"no report {name!r}", code="unknown_report")
    return found.make(ctx, start, end, params)
