"""The reports page: every report analytics offers (``analytics.REPORTS``, the same catalogue as the
API's ``?format=csv``), each with the period picker's period and a CSV download link.

The period picker is the dashboard's (``days`` 7/30/90 or ``from``/``to``, UTC days; bad input is a
422 page with the reason). A report that needs a journey, a template or a conversion has a small GET
form for it; its CSV is ``/app/reports/<name>.csv`` with the period and its parameters in the query.
A missing or bad parameter is a 4xx page, never a 500. Reading needs the ``reports`` area.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from leadflow.analytics import service as analytics
from leadflow.journeys import service as journeys
from leadflow.kernel.errors import LeadflowError, NotFound
from leadflow.messaging import service as messaging
from leadflow.web.access import Console, PageError, Viewer, console, page
from leadflow.web.dashboard import PRESETS, BadPeriod, Choice, choose
from leadflow.web.render import page as render
from leadflow.web.render import protect

router = APIRouter()
AREA = "reports"
LISTED = 500  # journeys / templates offered in a report's picker


def _choice(request: Request, today: date) -> Choice:
    q = request.query_params
    return choose(q.get("days"), q.get("from"), q.get("to"), today)


def _options(web: Console) -> dict[str, list[tuple[str, str]]]:
    """The choices of the parameters that name a journey or a template."""
    found = journeys.listing(web.ctx, status=None, after=None, limit=LISTED)
    return {
        "journey_id": [(j.id, j.name) for j in found],
        "template_id": [(t.id, t.name) for t in messaging.templates(web.ctx, after=None, limit=LISTED)],
    }


def csv_link(name: str, choice: Choice, **params: str) -> str:
    """The download of report ``name`` for the chosen period (and its parameters)."""
    query = {"from": str(choice.start or ""), "to": str(choice.end or ""), **params}
    return f"/app/reports/{name}.csv?{urlencode({k: v for k, v in query.items() if v})}"


@router.get("/reports")
def reports_page(
    request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    q = request.query_params
    fields = {"days": q.get("days") or "", "start": q.get("from") or "", "end": q.get("to") or ""}
    shown: dict[str, Any] = {"reports": list(analytics.REPORTS.values()), "options": _options(web)}
    try:
        choice = _choice(request, web.ctx.clock.now().date())
    except BadPeriod as exc:
        shown |= {"error": str(exc), "fields": fields, "presets": PRESETS}
        return render(request, "reports/index.html", viewer, 422, **shown)
    links = {r.name: csv_link(r.name, choice) for r in shown["reports"]}
    return render(
        request,
        "reports/index.html",
        viewer,
        fields=fields,
        presets=PRESETS,
        choice=choice,
        links=links,
        **shown,
    )


@router.get("/reports/{name}.csv")
def report_download(
    name: str, request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    if name not in analytics.REPORTS:
        raise PageError(404, "Not found", "There is no such report.")
    try:
        choice = _choice(request, web.ctx.clock.now().date())
        params = {k: v for k, v in request.query_params.items() if k not in ("days", "from", "to")}
        text = analytics.report_csv(web.ctx, name, choice.start, choice.end, params)
    except BadPeriod as exc:
        raise PageError(422, "Bad period", str(exc)) from None
    except NotFound as exc:
        raise PageError(404, "Not found", str(exc)) from None
    except LeadflowError as exc:
        raise PageError(422, "Cannot make this report", str(exc)) from None
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return protect(Response(text, media_type="text/csv; charset=utf-8", headers=headers))
