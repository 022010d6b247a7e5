"""``/api/v1/analytics/alerts``: threshold alert alert_rules (CRUD; changes need ``write``) and their
alert_incidents (each opened once when the condition starts and resolved once when it ends)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from leadflow.analytics import alerts
from leadflow.analytics.alerts import AlertRule, AlertRuleFields, Incident
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require

router = APIRouter(prefix="/api/v1/analytics/alerts", tags=["analytics"])


class Metric(BaseModel):
    name: str
    label: str
    direction: str
    default: float


@router.get("/metrics", response_model=list[Metric], summary="The figures an alert rule may watch")
def metrics(_: Principal = Depends(require("read"))) -> list[Metric]:
    return [
        Metric(name=m.name, label=m.label, direction=m.direction, default=m.default)
        for m in alerts.ALERT_METRICS.values()
    ]


@router.get("/rules", response_model=list[AlertRule], summary="Alert rules")
def list_rules(
    ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> list[AlertRule]:
    return alerts.alert_rules(ctx)


@router.post("/rules", response_model=AlertRule, status_code=201, summary="Create an alert rule")
def create_rule(
    body: AlertRuleFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> AlertRule:
    return alerts.create_alert_rule(ctx, body, actor=principal.actor)


@router.get("/rules/{rule_id}", response_model=AlertRule, summary="An alert rule")
def get_rule(
    rule_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> AlertRule:
    return alerts.get_alert_rule(ctx, rule_id)


@router.put("/rules/{rule_id}", response_model=AlertRule, summary="Change an alert rule")
def update_rule(
    rule_id: str,
    body: AlertRuleFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> AlertRule:
    return alerts.update_alert_rule(ctx, rule_id, body, actor=principal.actor)


@router.delete("/rules/{rule_id}", status_code=204, response_class=Response, summary="Delete an alert rule")
def delete_rule(
    rule_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    alerts.delete_alert_rule(ctx, rule_id, actor=principal.actor)
    return Response(status_code=204)


@router.get("/incidents", response_model=list[Incident], summary="Incidents, newest first")
def list_incidents(
    rule_id: str | None = None,
    open: bool = Query(False, description="only the open ones"),
    limit: int = Query(100, ge=1, le=1000),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> list[Incident]:
    return alerts.alert_incidents(ctx, rule_id=rule_id, open_only=open, limit=limit)
