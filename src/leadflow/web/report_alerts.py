"""The reports area's alert and digest pages: threshold alert rules with their incidents
(``/app/reports/alerts``) and the scheduled KPI digests (``/app/reports/digests``), read and changed
through ``analytics.service`` only, every change audited as the signed-in user (``user:<email>``).

Forms are plain POSTs (CSRF-checked by :func:`access.change`); a refused form (bad metric, cron, time
zone, no recipient) answers the page again with the reason (422). ``viewer`` reads; ``sales`` is out.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from leadflow.analytics import service as analytics
from leadflow.crm import service as crm
from leadflow.kernel.errors import LeadflowError, NotFound
from leadflow.web.access import Console, PageError, Viewer, change, console, page
from leadflow.web.crm_pages import message
from leadflow.web.render import page as render

router = APIRouter()
AREA = "reports"
INCIDENTS = 50


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _users(web: Console) -> list[crm.User]:
    return crm.list_users(web.ctx, after=None, active=True, limit=1000)


def _alerts_page(request: Request, web: Console, viewer: Viewer, status: int = 200, **extra: Any) -> Response:
    users = _users(web)
    names = {u.id: u.name for u in users}
    rules = [
        {"rule": r, "to": ", ".join(names.get(u, u) for u in r.user_ids) or "—"}
        for r in analytics.alert_rules(web.ctx)
    ]
    return render(
        request,
        "reports/alerts.html",
        viewer,
        status,
        rules=rules,
        incidents=analytics.alert_incidents(web.ctx, limit=INCIDENTS),
        metrics=list(analytics.ALERT_METRICS.values()),
        users=users,
        can_change=viewer.may_change(AREA),
        done=request.query_params.get("done"),
        **extra,
    )


@router.get("/reports/alerts")
def alerts_page(
    request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    return _alerts_page(request, web, viewer)


@router.post("/reports/alerts")
async def create_alert(
    request: Request, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    form = await request.form()
    threshold = _text(form, "threshold")
    fields = {
        "name": _text(form, "name"),
        "metric": _text(form, "metric"),
        "threshold": threshold or None,
        "user_ids": [v for v in form.getlist("user") if isinstance(v, str)],
        "webhook": _text(form, "webhook") == "1",
    }
    try:
        data = analytics.AlertRuleFields.model_validate(fields)
        analytics.create_alert_rule(web.ctx, data, actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _alerts_page(request, web, viewer, 422, error=message(exc), asked=fields)
    return RedirectResponse("/app/reports/alerts?done=created", status_code=303)


def _rule(web: Console, rule_id: str) -> analytics.AlertRule:
    try:
        return analytics.get_alert_rule(web.ctx, rule_id)
    except NotFound:
        raise PageError(404, "Not found", f"There is no alert rule {rule_id}.") from None


@router.post("/reports/alerts/{rule_id}/enabled")
async def toggle_alert(
    request: Request, rule_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    rule = _rule(web, rule_id)
    form = await request.form()
    fields = rule.model_dump(include=set(analytics.AlertRuleFields.model_fields))
    data = analytics.AlertRuleFields.model_validate({**fields, "enabled": _text(form, "enabled") == "1"})
    analytics.update_alert_rule(web.ctx, rule_id, data, actor=viewer.actor)
    return RedirectResponse("/app/reports/alerts?done=saved", status_code=303)


@router.post("/reports/alerts/{rule_id}/delete")
def delete_alert(
    rule_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    _rule(web, rule_id)
    analytics.delete_alert_rule(web.ctx, rule_id, actor=viewer.actor)
    return RedirectResponse("/app/reports/alerts?done=deleted", status_code=303)


def _digests_page(
    request: Request, web: Console, viewer: Viewer, status: int = 200, **extra: Any
) -> Response:
    users = _users(web)
    names = {u.id: u.name for u in users}
    found = [
        {"digest": d, "to": ", ".join(names.get(u, u) for u in d.user_ids)}
        for d in analytics.digests(web.ctx)
    ]
    return render(
        request,
        "reports/digests.html",
        viewer,
        status,
        digests=found,
        users=users,
        can_change=viewer.may_change(AREA),
        done=request.query_params.get("done"),
        **extra,
    )


@router.get("/reports/digests")
def digests_page(
    request: Request, viewer: Viewer = Depends(page(AREA)), web: Console = Depends(console)
) -> Response:
    return _digests_page(request, web, viewer)


@router.post("/reports/digests")
async def create_digest(
    request: Request, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    form = await request.form()
    fields = {
        "name": _text(form, "name") or "Weekly KPI digest",
        "user_ids": [v for v in form.getlist("user") if isinstance(v, str)],
        "cron": _text(form, "cron") or "0 8 * * 1",
        "timezone": _text(form, "timezone") or None,
    }
    try:
        data = analytics.DigestFields.model_validate(fields)
        analytics.create_digest(web.ctx, data, actor=viewer.actor)
    except (LeadflowError, ValueError) as exc:
        return _digests_page(request, web, viewer, 422, error=message(exc), asked=fields)
    return RedirectResponse("/app/reports/digests?done=created", status_code=303)


@router.post("/reports/digests/{digest_id}/delete")
def delete_digest(
    digest_id: str, viewer: Viewer = Depends(change(AREA)), web: Console = Depends(console)
) -> Response:
    try:
        analytics.delete_digest(web.ctx, digest_id, actor=viewer.actor)
    except NotFound:
        raise PageError(404, "Not found", f"There is no digest {digest_id}.") from None
    return RedirectResponse("/app/reports/digests?done=deleted", status_code=303)
