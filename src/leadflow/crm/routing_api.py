"""``/api/v1/crm/routing-rules``, ``/api/v1/crm/routing-config``, ``/api/v1/crm/leads/{email}/route`` and
``/api/v1/crm/sla``: read with ``read``, rules and configuration changed with ``admin``, routing with
``write``."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Path, Query, Response

from leadflow.crm import routing, sla
from leadflow.crm.routing_schemas import (
    Routed,
    RoutingConfig,
    RoutingConfigFields,
    Rule,
    RuleCreate,
    RuleFields,
    Sla,
    SlaOwnerSummary,
    SlaState,
)
from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate

router = APIRouter(prefix="/api/v1/crm", tags=["crm"])


@router.get("/routing-rules", response_model=list[Rule], summary="List routing rules in evaluation order")
def list_rules(ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))) -> list[Rule]:
    return routing.list_rules(ctx)


@router.post("/routing-rules", response_model=Rule, status_code=201, summary="Add a routing rule")
def create_rule(
    body: RuleCreate, ctx: AppContext = Depends(context), principal: Principal = Depends(require("admin"))
) -> Rule:
    return routing.create_rule(ctx, body, actor=principal.actor)


@router.get("/routing-rules/{rule_id}", response_model=Rule, summary="Get a routing rule")
def get_rule(
    rule_id: str = Path(max_length=26),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Rule:
    return routing.get_rule(ctx, rule_id)


@router.patch("/routing-rules/{rule_id}", response_model=Rule, summary="Change a routing rule")
def update_rule(
    body: RuleFields,
    rule_id: str = Path(max_length=26),
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
) -> Rule:
    return routing.update_rule(ctx, rule_id, body, actor=principal.actor)


@router.delete("/routing-rules/{rule_id}", status_code=204, summary="Delete a routing rule")
def delete_rule(
    rule_id: str = Path(max_length=26),
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
) -> Response:
    routing.delete_rule(ctx, rule_id, actor=principal.actor)
    return Response(status_code=204)


@router.get("/routing-config", response_model=RoutingConfig, summary="The fallback owner and SLA durations")
def get_config(ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))) -> RoutingConfig:
    return routing.get_config(ctx)


@router.patch("/routing-config", response_model=RoutingConfig, summary="Change the fallback owner or SLAs")
def set_config(
    body: RoutingConfigFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
) -> RoutingConfig:
    return routing.set_config(ctx, body, actor=principal.actor)


@router.post(
    "/leads/{email}/route", response_model=Routed, summary="Route a lead now (an owned lead keeps its owner)"
)
def route_lead(
    email: str = Path(max_length=320),
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Routed:
    return routing.route_lead(ctx, email, actor=principal.actor)


@router.get("/sla", response_model=Page[Sla], summary="SLA state of qualified leads, by owner and state")
def list_sla(
    owner: str | None = Query(None, max_length=26, description="the lead's current owner"),
    state: SlaState | None = Query(None),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Sla]:
    after = pagination.text_at(cursor, "after")
    found = sla.listing(ctx, owner_id=owner, state=state, after=after, limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda s: {"after": s.contact_id})
    return Page[Sla](data=items, next_cursor=next_cursor)


@router.get(
    "/sla/summary", response_model=list[SlaOwnerSummary], summary="SLA breaches per owner over a range"
)
def sla_summary(
    since: datetime = Query(description="leads qualified at or after"),
    until: datetime = Query(description="leads qualified before"),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> list[SlaOwnerSummary]:
    return sla.summary(ctx, since, until)
