"""``/api/v1/crm/pipelines``, ``/api/v1/crm/deals`` and ``/api/v1/crm/pipeline/stats``: read with
``read``, change with ``write``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from leadflow.crm import deal_stats, deals, pipelines
from leadflow.crm.deal_stats import PipelineStats
from leadflow.crm.deals import Deal, DealCreate, DealDetail, DealFields, DealStatus
from leadflow.crm.pipelines import Pipeline, PipelineIn
from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import BadRequest
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate

router = APIRouter(prefix="/api/v1/crm", tags=["crm"])
Id = Annotated[str, Path(min_length=1, max_length=26)]


@router.get("/pipelines", response_model=list[Pipeline], summary="Pipelines with their stages and rules")
def list_pipelines(
    ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> list[Pipeline]:
    return pipelines.listing(ctx)


@router.post("/pipelines", response_model=Pipeline, status_code=201, summary="Create a pipeline")
def create_pipeline(
    body: PipelineIn, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Pipeline:
    return pipelines.create(ctx, body, actor=principal.actor)


@router.get("/pipelines/{pipeline_id}", response_model=Pipeline, summary="Get a pipeline")
def get_pipeline(
    pipeline_id: Id, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Pipeline:
    return pipelines.get(ctx, pipeline_id)


@router.put(
    "/pipelines/{pipeline_id}",
    response_model=Pipeline,
    summary="Replace a pipeline's name, stages (kept by id; one in use cannot go: 409) and rules",
)
def update_pipeline(
    pipeline_id: Id,
    body: PipelineIn,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Pipeline:
    return pipelines.update(ctx, pipeline_id, body, actor=principal.actor)


@router.delete(
    "/pipelines/{pipeline_id}",
    status_code=204,
    response_class=Response,
    summary="Delete a pipeline without deals",
)
def delete_pipeline(
    pipeline_id: Id, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    pipelines.delete(ctx, pipeline_id, actor=principal.actor)
    return Response(status_code=204)


@router.get(
    "/pipeline/stats",
    response_model=list[PipelineStats],
    summary="Per pipeline and stage: count, total and weighted value, conversion, average days in stage",
    description=deal_stats.__doc__ or "",
)
def pipeline_stats(
    pipeline: str | None = Query(None, max_length=26, description="one pipeline (all if omitted)"),
    start: datetime | None = Query(
        None, alias="from", description="range start: its whole UTC day is included (naive = UTC)"
    ),
    end: datetime | None = Query(
        None,
        alias="to",
        description="range end: exclusive at midnight UTC, otherwise its whole UTC day is included",
    ),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> list[PipelineStats]:
    return deal_stats.stats(ctx, pipeline_id=pipeline, start=start, end=end)


def _position(cursor: str | None) -> tuple[datetime, str] | None:
    found = pagination.decode(cursor)
    if found is None:
        return None
    try:
        stamp = datetime.fromisoformat(found["t"])
        return stamp, str(found["id"])
    except (KeyError, TypeError, ValueError):
        raise BadRequest("the cursor is not one this API issued", code="invalid_cursor") from None


@router.get("/deals", response_model=Page[Deal], summary="Deals, newest first, filtered")
def list_deals(
    pipeline_id: str | None = Query(None, max_length=26),
    stage_id: str | None = Query(None, max_length=26),
    owner_id: str | None = Query(None, max_length=26),
    email: str | None = Query(None, max_length=320, description="the contact's"),
    status: DealStatus | None = Query(None),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Deal]:
    found = deals.listing(
        ctx,
        pipeline_id=pipeline_id,
        stage_id=stage_id,
        owner_id=owner_id,
        email=email,
        status=status,
        before=_position(cursor),
        limit=limit + 1,
    )
    items, next_cursor = paginate(found, limit, lambda d: {"t": d.created_at.isoformat(), "id": d.id})
    return Page[Deal](data=items, next_cursor=next_cursor)


@router.post(
    "/deals", response_model=DealDetail, status_code=201, summary="Open a deal (audited, deal.created)"
)
def create_deal(
    body: DealCreate, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> DealDetail:
    return deals.create(ctx, body, actor=principal.actor)


@router.get("/deals/{deal_id}", response_model=DealDetail, summary="A deal with its time in each stage")
def get_deal(
    deal_id: Id, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> DealDetail:
    return deals.get(ctx, deal_id)


@router.patch(
    "/deals/{deal_id}",
    response_model=DealDetail,
    summary="Change a deal; move it to a stage (won/lost need a reason; deal.stage_changed)",
)
def change_deal(
    deal_id: Id,
    body: DealFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> DealDetail:
    return deals.update(ctx, deal_id, body, actor=principal.actor)


@router.delete("/deals/{deal_id}", status_code=204, response_class=Response, summary="Delete a deal")
def delete_deal(
    deal_id: Id, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    deals.delete(ctx, deal_id, actor=principal.actor)
    return Response(status_code=204)
