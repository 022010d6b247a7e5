"""The dashboard: the KPIs of a chosen period against the previous one of the same length, all read
from :mod:`leadflow.analytics` (no SQL here).

The period picker is a GET form: ``days`` (7, 30 or 90, ending today) or, with ``days`` empty,
``from`` / ``to`` (UTC days, inclusive; default the last 30 days). Dates that do not parse, ``from``
after ``to`` or a period over 3 years answer the page with a clear message (422), never a 500.

A number that counts contacts links to exactly those contacts on the contacts page
(:func:`link_contacts`); *Leads qualified* links to the CRM leads list by status (as they are now).
Charts are inline SVG bars drawn here, each with a title, a description and the table of its numbers
beside it.

``sales`` users are sent to the leads list (their work); ``viewer`` reads the page like the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from leadflow.analytics import service as analytics
from leadflow.contacts import service as contacts
from leadflow.events import service as events
from leadflow.kernel.errors import LeadflowError
from leadflow.web.access import Console, Viewer, console, page
from leadflow.web.render import page as render

router = APIRouter()
PRESETS = (7, 30, 90)
DEFAULT_DAYS = 30
TOP_SOURCES = 10
HEALTH_HOURS = 24.0
LIFECYCLE = (
    ("visitors", "Visitors"),
    ("leads", "Leads"),
    ("mql", "MQL"),
    ("sql", "SQL"),
    ("customers", "Customers"),
    ("advocates", "Advocates"),
)
STAGE_LABELS = {
    "visitor": "Visitors",
    "lead": "Leads",
    "mql": "MQL",
    "sql": "SQL",
    "customer": "Customers",
    "advocate": "Advocates",
}
EMAIL_COUNTS = (
    ("emails_sent", "Sent"),
    ("emails_delivered", "Delivered"),
    ("emails_opened", "Opened"),
    ("emails_clicked", "Clicked"),
    ("emails_unsubscribed", "Unsubscribed"),
    ("emails_bounced", "Bounced"),
    ("emails_complained", "Complained"),
)
# (rate, numerator, denominator): as analytics defines them (over delivered; bounces over sent)
EMAIL_RATES = (
    ("Open rate", "emails_opened", "emails_delivered"),
    ("Click rate", "emails_clicked", "emails_delivered"),
    ("Unsubscribe rate", "emails_unsubscribed", "emails_delivered"),
    ("Bounce rate", "emails_bounced", "emails_sent"),
    ("Complaint rate", "emails_complained", "emails_delivered"),
)
SLA = (
    ("leads_qualified", "Leads qualified"),
    ("leads_responded", "Answered"),
    ("sla_assignment_breaches", "Assignment breaches"),
    ("sla_response_breaches", "Response breaches"),
    ("sla_escalations", "Escalations"),
)
# KPI → the CRM leads list behind it (the others have no console list yet)
LEAD_LINKS = {
    "leads": "/app/crm/leads",
    "customers": "/app/crm/leads?status=customer",
    "leads_qualified": "/app/crm/leads?status=qualified",
}

# KPI → the lifecycle stage whose entrants it counts: its contacts on the contacts page, exactly
STAGE_KPIS = {
    "visitors": "visitor",
    "leads": "lead",
    "mql": "mql",
    "sql": "sql",
    "customers": "customer",
    "advocates": "advocate",
}


def contacts_link(stage: str, period: Any, **first_touch: str) -> str:
    """The contacts page listing the contacts whose first entry into ``stage`` is in ``period``
    (optionally of one first touch: ``source``, ``medium``, ``campaign``)."""
    asked = {"entered": stage, "from": period.start.isoformat(), "to": period.end.isoformat()}
    return f"/app/contacts?{urlencode({**asked, **first_touch})}"


def link_contacts(shown: dict[str, Any], now: dict[str, Any], viewer: Viewer) -> None:
    """Each number that counts contacts links to exactly those contacts, for roles that may open the
    contacts page: the lifecycle numbers (this period and the previous), the funnel's entries, the
    leads of each source row, and the contacts now. (Email numbers count messages, not contacts.)"""
    if not viewer.may("contacts"):
        return
    now["link"] = "/app/contacts"
    kpis = shown["kpis"]
    for figure in shown["lifecycle"]:
        stage = STAGE_KPIS[figure["name"]]
        figure["link"] = contacts_link(stage, kpis.period)
        figure["link_title"] = "These contacts"
        figure["previous_link"] = contacts_link(stage, kpis.previous)
    for stage, row in zip(STAGE_KPIS.values(), shown["stages"], strict=True):
        row["link"] = contacts_link(stage, kpis.period)
    for row in shown["sources"]:
        touch = {"source": row["source"], "medium": row["medium"], "campaign": row["campaign"]}
        row["link"] = contacts_link("lead", kpis.period, **touch)


class BadPeriod(ValueError):
    pass


@dataclass(frozen=True)
class Choice:
    """What the picker asked for: a preset (``days``) or explicit days (``start``, ``end``)."""

    days: int | None
    start: date | None
    end: date | None


def _day(value: str | None, name: str) -> date | None:
    text = (value or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadPeriod(f"'{name}' must be a date as YYYY-MM-DD (got {text[:20]!r})") from None


def choose(days: str | None, start: str | None, end: str | None, today: date) -> Choice:
    """The period of the picker's fields: a preset when ``days`` is given, else the dates, else the
    last 30 days."""
    if days:
        if not days.isdigit() or int(days) not in PRESETS:
            raise BadPeriod(f"'days' is one of {', '.join(map(str, PRESETS))}")
        wanted = int(days)
        return Choice(days=wanted, start=today - timedelta(days=wanted - 1), end=today)
    first, last = _day(start, "from"), _day(end, "to")
    if first or last:
        return Choice(days=None, start=first, end=last or today)
    return Choice(days=DEFAULT_DAYS, start=today - timedelta(days=DEFAULT_DAYS - 1), end=today)


def change(figure: Any) -> dict[str, Any]:
    """The arrow and words of a change (``None`` when the previous period had nothing)."""
    if figure.change is None:
        return {"arrow": "", "words": "new" if figure.current else "no change", "pct": ""}
    pct = f"{abs(figure.change) * 100:.0f}%"
    if figure.change > 0:
        return {"arrow": "▲", "words": "up", "pct": pct, "dir": "up"}
    if figure.change < 0:
        return {"arrow": "▼", "words": "down", "pct": pct, "dir": "down"}
    return {"arrow": "", "words": "no change", "pct": ""}


def number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def duration(seconds: float | None) -> str:
    if not seconds:
        return "—"
    seconds = round(seconds)
    minutes, hours, days = seconds / 60, seconds / 3600, seconds / 86400
    if days >= 2:
        return f"{days:.1f} d"
    if hours >= 1:
        return f"{hours:.1f} h"
    return f"{minutes:.0f} min" if minutes >= 1 else f"{seconds:.0f} s"


def bars(rows: list[tuple[str, float, float]], *, width: int = 600, row: int = 26) -> dict[str, Any]:
    """A horizontal bar chart (current and previous period) as coordinates for the SVG template."""
    label_w, top = 170, 4
    most = max([max(c, p) for _, c, p in rows] or [0]) or 1
    room = width - label_w - 70
    drawn = []
    for index, (label, current, previous) in enumerate(rows):
        y = top + index * row
        drawn.append(
            {
                "label": label if len(label) <= 24 else label[:23] + "…",
                "y": y,
                "w": round(room * current / most, 1),
                "pw": round(room * previous / most, 1),
                "value": number(current),
            }
        )
    return {"width": width, "height": top * 2 + row * len(rows), "x": label_w, "rows": drawn, "row": row}


def _figures(kpis: analytics.Kpis, names: tuple[tuple[str, str], ...], links: bool) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "label": label,
            "value": number(kpis.figures[name].current),
            "previous": number(kpis.figures[name].previous),
            "change": change(kpis.figures[name]),
            "link": LEAD_LINKS.get(name) if links else None,
        }
        for name, label in names
    ]


def _rate(figures: dict[str, Any], part: str, whole: str, which: str) -> float | None:
    denominator = getattr(figures[whole], which)
    return getattr(figures[part], which) / denominator if denominator else None


def numbers(web: Console, viewer: Viewer, start: date | None, end: date | None) -> dict[str, Any]:
    """Everything the page shows for one period, from the analytics service."""
    ctx = web.ctx
    kpis = analytics.kpis(ctx, start, end)
    funnel = analytics.funnel(ctx, start, end)
    sources = analytics.sources(ctx, start, end).rows[:TOP_SOURCES]
    by_template = analytics.email(ctx, "template", start, end).rows
    links = viewer.may("crm")
    f = kpis.figures
    stages = [
        {
            "label": STAGE_LABELS[s.stage],
            "entered": number(s.entered.current),
            "previous": number(s.entered.previous),
            "change": change(s.entered),
            "conversion": percent(s.conversion.current) if s.conversion else "",
            "previous_conversion": percent(s.conversion.previous) if s.conversion else "",
            "median": duration(s.median_seconds.current) if s.median_seconds else "",
            "previous_median": duration(s.median_seconds.previous) if s.median_seconds else "",
        }
        for s in funnel.stages
    ]
    return {
        "kpis": kpis,
        "lifecycle": _figures(kpis, LIFECYCLE, links),
        "stages": stages,
        "funnel_chart": bars(
            [(STAGE_LABELS[s.stage], s.entered.current, s.entered.previous) for s in funnel.stages]
        ),
        "sources": [
            {
                "source": r.source,
                "medium": r.medium,
                "campaign": r.campaign,
                "leads": number(r.leads.current),
                "previous": number(r.leads.previous),
                "change": change(r.leads),
            }
            for r in sources
        ],
        "sources_chart": bars(
            [(f"{r.source} / {r.medium}", r.leads.current, r.leads.previous) for r in sources]
        ),
        "email": _figures(kpis, EMAIL_COUNTS, False),
        "email_chart": bars([(label, f[name].current, f[name].previous) for name, label in EMAIL_COUNTS]),
        "rates": [
            (label, percent(_rate(f, part, whole, "current")), percent(_rate(f, part, whole, "previous")))
            for label, part, whole in EMAIL_RATES
        ],
        "bots": {
            "opened": number(sum(r.machine_opened for r in by_template)),
            "clicked": number(sum(r.machine_clicked for r in by_template)),
        },
        "sla": _figures(kpis, SLA, links),
        "sla_met": (percent(f["sla_met_rate"].current), percent(f["sla_met_rate"].previous)),
        "health": analytics.health(ctx, HEALTH_HOURS),
    }


@router.get("/")
def dashboard(
    request: Request,
    days: str | None = None,
    viewer: Viewer = Depends(page("dashboard")),
    web: Console = Depends(console),
) -> Response:
    if viewer.role == "sales":
        return RedirectResponse("/app/crm/leads", status_code=303)
    start, end = request.query_params.get("from"), request.query_params.get("to")
    with web.ctx.db.read() as conn:
        now = {"contacts": contacts.contact_count(conn), "waiting": events.backlog(conn)[0]}
    fields = {"days": days or "", "start": start or "", "end": end or ""}
    try:
        choice = choose(days, start, end, web.ctx.clock.now().date())
        shown = numbers(web, viewer, choice.start, choice.end)
        link_contacts(shown, now, viewer)
    except (BadPeriod, LeadflowError) as exc:
        return render(
            request, "dashboard.html", viewer, 422, error=str(exc), now=now, fields=fields, presets=PRESETS
        )
    return render(
        request,
        "dashboard.html",
        viewer,
        now=now,
        choice=choice,
        fields=fields,
        presets=PRESETS,
        hours=HEALTH_HOURS,
        **shown,
    )
