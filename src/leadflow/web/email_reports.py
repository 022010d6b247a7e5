"""The console's email numbers: broadcasts, and per message (template, broadcast, journey, journey step)
sent, delivered, opened, clicked, unsubscribed, bounced and complained for a period — bot hits apart —
clicks by link (a template's), and who opened and who clicked.

The numbers are analytics' (``analytics.email``: the daily rollups, the same as
``GET /api/v1/analytics/email``), so no page scans the event log: opens and clicks are unique human ones
(one per message); machine opens and clicks (security scanners, image proxies, the honeypot link:
``messaging.feedback.bots``) are counted apart. *Who* is messaging's list of the messages a person
first opened (or clicked) in the period, latest first, 50 a page, each linking to the contact.

The period picker is the dashboard's (``days`` 7/30/90 or ``from``/``to``, UTC days; bad input is a
422 page with the reason); a broadcast's report starts on the day it started.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from leadflow.analytics import service as analytics
from leadflow.journeys import service as journeys
from leadflow.kernel import pagination
from leadflow.kernel.errors import LeadflowError, NotFound
from leadflow.messaging import service as messaging
from leadflow.web.access import Console, PageError, Viewer, console, page
from leadflow.web.dashboard import PRESETS, BadPeriod, Choice, choose, number, percent
from leadflow.web.render import page as render

router = APIRouter()
AREA = "email"
PAGE_SIZE = 50
BY = {"template": "Templates", "broadcast": "Broadcasts", "journey": "Journeys", "step": "Journey steps"}
COUNTS = (
    ("sent", "Sent"),
    ("delivered", "Delivered"),
    ("opened", "Opened"),
    ("clicked", "Clicked"),
    ("unsubscribed", "Unsubscribed"),
    ("bounced", "Bounced"),
    ("complained", "Complained"),
)
RATES = (
    ("open_rate", "Open rate"),
    ("click_rate", "Click rate"),
    ("unsubscribe_rate", "Unsubscribe rate"),
    ("bounce_rate", "Bounce rate"),
    ("complaint_rate", "Complaint rate"),
)


def report_path(by: str, key: str, **query: str) -> str:
    path = f"/app/email/reports/{by}/{quote(key, safe=':')}"
    kept = {k: v for k, v in query.items() if v}
    return f"{path}?{urlencode(kept)}" if kept else path


def _names(web: Console) -> dict[str, dict[str, str]]:
    """What the keys of each dimension are called (templates and broadcasts by their names)."""
    ctx = web.ctx
    return {
        "template": {t.id: t.name for t in messaging.templates(ctx, after=None, limit=500)},
        "broadcast": {b.id: b.name for b in messaging.broadcasts(ctx, after=None, limit=500)},
        "journey": {j.id: j.name for j in journeys.listing(ctx, status=None, after=None, limit=500)},
    }


def _name(by: str, key: str, names: dict[str, dict[str, str]]) -> str:
    """A row's name: the template's, broadcast's or journey's; a step as "journey: step"."""
    if by == "step":
        journey_id, _, step = key.partition(":")
        return f"{names['journey'].get(journey_id, journey_id)}: {step}"
    return names[by].get(key, key)


def _fields(request: Request) -> dict[str, str]:
    q = request.query_params
    return {"days": q.get("days") or "", "start": q.get("from") or "", "end": q.get("to") or ""}


def _choice(web: Console, fields: dict[str, str], since: date | None = None) -> Choice:
    """The picker's period; with nothing picked, from ``since`` (a broadcast's first day) when given."""
    today = web.ctx.clock.now().date()
    if since is not None and not any(fields.values()):
        return Choice(days=None, start=max(since, today - timedelta(days=3 * 366 - 1)), end=today)
    return choose(fields["days"] or None, fields["start"] or None, fields["end"] or None, today)


def _shown(row: Any) -> dict[str, Any]:
    return {
        "counts": [(name, label, number(getattr(row, name))) for name, label in COUNTS],
        "rates": [(name, label, percent(getattr(row, name))) for name, label in RATES],
        "bots": {"opened": number(row.machine_opened), "clicked": number(row.machine_clicked)},
    }


@router.get("/email/reports")
def reports(
    request: Request,
    by: str = "template",
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    """Every template (broadcast, journey, step) that sent or was engaged with in the period."""
    by = by if by in BY else "template"
    fields = _fields(request)
    values: dict[str, Any] = {"by": by, "dimensions": BY, "fields": fields, "presets": PRESETS}
    try:
        choice = _choice(web, fields)
        found = analytics.email(web.ctx, by, choice.start, choice.end)
    except (BadPeriod, LeadflowError) as exc:
        return render(
            request, "email/reports.html", viewer, 422, title="Email reports", error=str(exc), **values
        )
    names = _names(web)
    rows = [
        {"key": r.key, "name": _name(by, r.key, names), "link": report_path(by, r.key), **_shown(r)}
        for r in found.rows
    ]
    return render(
        request, "email/reports.html", viewer, title="Email reports", rows=rows, report=found, **values
    )


def _position(cursor: str | None) -> tuple[datetime, str] | None:
    try:
        found = pagination.decode(cursor)
        return None if found is None else (datetime.fromisoformat(found["t"]), str(found["id"]))
    except (LeadflowError, KeyError, TypeError, ValueError):
        raise PageError(400, "Bad link", "This page link is not one the console made.") from None


def _subject(web: Console, by: str, key: str) -> tuple[str, date | None]:
    """The report's title, and the first day of a broadcast (its report starts there)."""
    try:
        if by == "template":
            return f"Template {messaging.get_template(web.ctx, key).name}", None
        if by == "broadcast":
            found = messaging.get_broadcast(web.ctx, key)
            began = found.started_at or found.created_at
            return f"Broadcast {found.name}", began.astimezone(UTC).date()
    except NotFound:
        raise PageError(404, "Not found", f"There is no {by} {key}.") from None
    journey_id, _, step = key.partition(":")
    try:
        name = journeys.get(web.ctx, journey_id).name
    except NotFound:
        name = journey_id  # a deleted journey's numbers stay
    return (f"Journey {name}" if by == "journey" else f"Journey {name}, step {step}"), None


@router.get("/email/reports/{by}/{key}")
def report(
    request: Request,
    by: str,
    key: str,
    who: str = "opened",
    cursor: str | None = None,
    viewer: Viewer = Depends(page(AREA)),
    web: Console = Depends(console),
) -> Response:
    """One message's numbers for the period, bot hits apart, and who opened (or clicked) it."""
    if by not in BY:
        raise PageError(404, "Not found", f"There is no report by {by[:40]}.")
    what: Literal["opened", "clicked"] = "clicked" if who == "clicked" else "opened"
    title, since = _subject(web, by, key)
    fields = _fields(request)
    values: dict[str, Any] = {"by": by, "key": key, "fields": fields, "presets": PRESETS, "who": what}
    values["action"] = report_path(by, key)
    try:
        choice = _choice(web, fields, since)
        found = analytics.email(web.ctx, by, choice.start, choice.end)
    except (BadPeriod, LeadflowError) as exc:
        return render(request, "email/report.html", viewer, 422, title=title, error=str(exc), **values)
    assert choice.start is not None
    assert choice.end is not None
    row = next((r for r in found.rows if r.key == key), None)
    links = analytics.email_links(web.ctx, key, choice.start, choice.end) if by == "template" else []
    start = datetime.combine(choice.start, time(), tzinfo=UTC)
    end = datetime.combine(choice.end + timedelta(days=1), time(), tzinfo=UTC)
    people = messaging.engaged(
        web.ctx, by, key, what, start, end, before=_position(cursor), limit=PAGE_SIZE + 1
    )
    items, next_cursor = pagination.paginate(
        people, PAGE_SIZE, lambda e: {"t": e.at.isoformat(), "id": e.message_id}
    )
    period = {"days": fields["days"], "from": fields["start"], "to": fields["end"]}
    more = report_path(by, key, **period, who=what, cursor=next_cursor or "") if next_cursor else None
    return render(
        request,
        "email/report.html",
        viewer,
        title=title,
        report=found,
        row=row,
        shown=_shown(row) if row is not None else None,
        links=links,
        people=items,
        more=more,
        first=report_path(by, key, **period, who=what) if cursor else None,
        tab_links={w: report_path(by, key, **period, who=w) for w in ("opened", "clicked")},
        **values,
    )


@router.get("/email/broadcasts")
def broadcasts(
    request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    """Broadcasts (the first 500, oldest first) with their messages by status."""
    found = messaging.broadcasts(web.ctx, after=None, limit=500)
    names = _names(web)["template"]
    return render(
        request,
        "email/broadcasts.html",
        viewer,
        title="Broadcasts",
        broadcasts=found,
        names=names,
        path=report_path,
    )
