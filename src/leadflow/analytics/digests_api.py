"""``/api/v1/analytics/digests``: scheduled KPI digests (CRUD; changes need ``write``): the weekly
KPIs emailed to chosen CRM users on a cron schedule in a time zone, once per due time."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from leadflow.analytics import digests
from leadflow.analytics.digests import Digest, DigestFields
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require

router = APIRouter(prefix="/api/v1/analytics/digests", tags=["analytics"])


@router.get("", response_model=list[Digest], summary="Scheduled KPI digests")
def list_digests(ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))) -> list[Digest]:
    return digests.digests(ctx)


@router.post("", response_model=Digest, status_code=201, summary="Schedule a KPI digest")
def create_digest(
    body: DigestFields, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Digest:
    return digests.create_digest(ctx, body, actor=principal.actor)


@router.get("/{digest_id}", response_model=Digest, summary="A scheduled KPI digest")
def get_digest(
    digest_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Digest:
    return digests.get_digest(ctx, digest_id)


@router.put("/{digest_id}", response_model=Digest, summary="Change a scheduled KPI digest")
def update_digest(
    digest_id: str,
    body: DigestFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Digest:
    return digests.update_digest(ctx, digest_id, body, actor=principal.actor)


@router.delete("/{digest_id}", status_code=204, response_class=Response, summary="Delete a KPI digest")
def delete_digest(
    digest_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    digests.delete_digest(ctx, digest_id, actor=principal.actor)
    return Response(status_code=204)
