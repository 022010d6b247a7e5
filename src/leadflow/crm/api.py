"""``/api/v1/crm/leads`` and ``/api/v1/crm/activities``: read with ``read``, change with ``write``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from leadflow.crm import activities, leads
from leadflow.crm.schemas import (
    Activity,
    ActivityCreate,
    ActivityFields,
    Kind,
    Lead,
    LeadFilter,
    OwnerChange,
    Status,
    StatusChange,
    TimelineEntry,
)
from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import BadRequest
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.inputs import INT_MAX
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate

router = APIRouter(prefix="/api/v1/crm", tags=["crm"])
ActivityId = Annotated[int, Path(ge=1, le=INT_MAX)]


def _lead_position(cursor: str | None) -> tuple[datetime, str] | None:
    found = pagination.decode(cursor)
    if found is None:
        return None
    try:
        return datetime.fromisoformat(found["t"]), str(found["id"])
    except (KeyError, TypeError, ValueError):
        raise BadRequest("the cursor is not one this API issued", code="invalid_cursor") from None


@router.get("/leads", response_model=Page[Lead], summary="Search and filter leads, newest first")
def list_leads(
    status: list[Status] | None = Query(None, description="one or more statuses"),
    owner_id: str | None = Query(None, max_length=26),
    unassigned: bool = Query(False, description="only leads without an owner"),
    stage: list[str] | None = Query(None, description="lifecycle stages"),
    score_min: float | None = Query(None, ge=-1e12, le=1e12),
    score_max: float | None = Query(None, ge=-1e12, le=1e12),
    source: str | None = Query(None, max_length=255),
    created_after: datetime | None = Query(None),
    created_before: datetime | None = Query(None),
    updated_after: datetime | None = Query(None),
    updated_before: datetime | None = Query(None),
    q: str | None = Query(None, min_length=1, max_length=200, description="part of the name or email"),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Lead]:
    where = LeadFilter(
        status=list(status) if status else None,
        owner_id=owner_id,
        unassigned=unassigned,
        stage=stage,
        score_min=score_min,
        score_max=score_max,
        source=source,
        created_after=created_after,
        created_before=created_before,
        updated_after=updated_after,
        updated_before=updated_before,
        q=q,
    )
    found = leads.search(ctx, where, before=_lead_position(cursor), limit=limit + 1)
    items, next_cursor = paginate(
        found, limit, lambda lead: {"t": lead.created_at.isoformat(), "id": lead.contact_id}
    )
    return Page[Lead](data=items, next_cursor=next_cursor)


@router.get("/leads/{email}", response_model=Lead, summary="A lead: profile summary, status, owner, score")
def get_lead(email: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))) -> Lead:
    return leads.get(ctx, email)


@router.put("/leads/{email}/status", response_model=Lead, summary="Set a lead's status (audited, an event)")
def set_status(
    email: str,
    body: StatusChange,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Lead:
    return leads.change_status(ctx, email, body, actor=principal.actor)


@router.put(
    "/leads/{email}/owner", response_model=Lead, summary="Assign a lead to a user (audited, an event)"
)
def set_owner(
    email: str,
    body: OwnerChange,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Lead:
    return leads.assign(ctx, email, body, actor=principal.actor)


@router.get(
    "/leads/{email}/activities",
    response_model=Page[TimelineEntry],
    summary="A lead's timeline: logged activities and events, newest first",
)
def lead_timeline(
    email: str,
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[TimelineEntry]:
    items, next_cursor = activities.timeline(ctx, email, cursor=cursor, limit=limit)
    return Page[TimelineEntry](data=items, next_cursor=next_cursor)


@router.post(
    "/activities",
    response_model=Activity,
    status_code=201,
    summary="Log a call, meeting, note, task or email",
)
def log_activity(
    body: ActivityCreate, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Activity:
    return activities.log(ctx, body, actor=principal.actor)


@router.get("/activities", response_model=Page[Activity], summary="Activities, newest first")
def list_activities(
    email: str | None = Query(None, max_length=320, description="of this lead"),
    owner_id: str | None = Query(None, max_length=26),
    kind: Kind | None = Query(None),
    open_tasks: bool = Query(False, description="only tasks not done yet"),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Activity]:
    after = pagination.number_at(cursor, "before")
    found = activities.listing(
        ctx,
        email=email,
        owner_id=owner_id,
        kind=kind,
        open_tasks=open_tasks,
        after=after if isinstance(after, int) and 0 < after <= INT_MAX else None,
        limit=limit + 1,
    )
    items, next_cursor = paginate(found, limit, lambda a: {"before": a.id})
    return Page[Activity](data=items, next_cursor=next_cursor)


@router.get("/activities/{activity_id}", response_model=Activity, summary="Get an activity")
def get_activity(
    activity_id: ActivityId, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Activity:
    return activities.get(ctx, activity_id)


@router.patch(
    "/activities/{activity_id}", response_model=Activity, summary="Change an activity; mark a task done"
)
def change_activity(
    activity_id: ActivityId,
    body: ActivityFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Activity:
    return activities.change(ctx, activity_id, body, actor=principal.actor)


@router.delete(
    "/activities/{activity_id}", status_code=204, response_class=Response, summary="Delete an activity"
)
def delete_activity(
    activity_id: ActivityId,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Response:
    activities.delete(ctx, activity_id, actor=principal.actor)
    return Response(status_code=204)
