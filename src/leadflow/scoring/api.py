"""``/api/v1/scoring/*`` and ``/api/v1/contacts/{id}/score``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Page
from leadflow.scoring import service
from leadflow.scoring.bands import Bands, Decay
from leadflow.scoring.definitions import ScoringRule, ScoringRuleCreate, ScoringRuleFields
from leadflow.scoring.service import ScoreExplanation

router = APIRouter(prefix="/api/v1", tags=["scoring"])


class Recomputed(BaseModel):
    rules: int
    contacts: int
    band_changes: int


@router.get("/scoring/rules", response_model=Page[ScoringRule], summary="List scoring rules")
def list_rules(
    ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Page[ScoringRule]:
    return Page[ScoringRule](data=service.list_rules(ctx), next_cursor=None)


@router.post("/scoring/rules", response_model=ScoringRule, status_code=201, summary="Create a scoring rule")
def create_rule(
    body: ScoringRuleCreate,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> ScoringRule:
    return service.create_rule(ctx, body, actor=principal.actor)


@router.get("/scoring/rules/{rule_id}", response_model=ScoringRule, summary="Get a scoring rule")
def get_rule(
    rule_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> ScoringRule:
    return service.get_rule(ctx, rule_id)


@router.patch("/scoring/rules/{rule_id}", response_model=ScoringRule, summary="Change a scoring rule")
def update_rule(
    rule_id: str,
    body: ScoringRuleFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> ScoringRule:
    return service.update_rule(ctx, rule_id, body, actor=principal.actor)


@router.delete(
    "/scoring/rules/{rule_id}", status_code=204, response_class=Response, summary="Delete a scoring rule"
)
def delete_rule(
    rule_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    service.delete_rule(ctx, rule_id, actor=principal.actor)
    return Response(status_code=204)


@router.get("/scoring/bands", response_model=Bands, summary="Score bands")
def get_bands(ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))) -> Bands:
    return service.get_bands(ctx)


@router.put("/scoring/bands", response_model=Bands, summary="Change the score bands")
def put_bands(
    body: Bands, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Bands:
    return service.set_bands(ctx, body, actor=principal.actor)


@router.get("/scoring/decay", response_model=Decay, summary="Behavioural points decay")
def get_decay(ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))) -> Decay:
    return service.get_decay(ctx)


@router.put("/scoring/decay", response_model=Decay, summary="Change behavioural points decay")
def put_decay(
    body: Decay, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Decay:
    return service.set_decay(ctx, body, actor=principal.actor)


@router.post("/scoring/recompute", response_model=Recomputed, summary="Recompute every score now")
def recompute(ctx: AppContext = Depends(context), _: Principal = Depends(require("write"))) -> Recomputed:
    result = service.recompute(ctx)
    return Recomputed(rules=result.rules, contacts=result.contacts, band_changes=result.band_changes)


@router.get(
    "/contacts/{contact_id}/score", response_model=ScoreExplanation, summary="A contact's score, explained"
)
def contact_score(
    contact_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> ScoreExplanation:
    return service.explain(ctx, contact_id)
