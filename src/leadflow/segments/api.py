"""``/api/v1/segments`` and ``/api/v1/contacts/{id}/segments``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate
from leadflow.segments import service
from leadflow.segments.schemas import (
    ContactSegment,
    Member,
    MemberIds,
    Preview,
    PreviewRequest,
    Refreshed,
    Segment,
    SegmentCreate,
    SegmentPatch,
)

router = APIRouter(prefix="/api/v1", tags=["segments"])


@router.post("/segments", response_model=Segment, status_code=201, summary="Create a segment or static list")
def create_segment(
    body: SegmentCreate, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Segment:
    return service.create(ctx, body, actor=principal.actor)


@router.get("/segments", response_model=Page[Segment], summary="List segments")
def list_segments(
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Segment]:
    after = pagination.text_at(cursor, "after")
    items, next_cursor = paginate(
        service.listing(ctx, after=after, limit=limit + 1), limit, lambda s: {"after": s.id}
    )
    return Page[Segment](data=items, next_cursor=next_cursor)


@router.post(
    "/segments/preview", response_model=Preview, summary="Count and sample the contacts a rule matches"
)
def preview_segment(
    body: PreviewRequest, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Preview:
    return service.preview(ctx, body.rules)


@router.get("/segments/{segment_id}", response_model=Segment, summary="Get a segment")
def get_segment(
    segment_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Segment:
    return service.get(ctx, segment_id)


@router.patch("/segments/{segment_id}", response_model=Segment, summary="Rename or change a segment's rules")
def update_segment(
    segment_id: str,
    body: SegmentPatch,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Segment:
    return service.update(ctx, segment_id, body, actor=principal.actor)


@router.delete("/segments/{segment_id}", status_code=204, response_class=Response, summary="Delete a segment")
def delete_segment(
    segment_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    service.delete(ctx, segment_id, actor=principal.actor)
    return Response(status_code=204)


@router.get("/segments/{segment_id}/members", response_model=Page[Member], summary="A segment's members")
def segment_members(
    segment_id: str,
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Member]:
    after = pagination.text_at(cursor, "after")
    found = service.members(ctx, segment_id, after=after, limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda m: {"after": m.contact.id})
    return Page[Member](data=items, next_cursor=next_cursor)


@router.post(
    "/segments/{segment_id}/refresh", response_model=Refreshed, summary="Recompute a dynamic segment now"
)
def refresh_segment(
    segment_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("write"))
) -> Refreshed:
    return service.refresh(ctx, segment_id)


@router.post(
    "/segments/{segment_id}/members", response_model=Refreshed, summary="Add contacts to a static list"
)
def add_members(
    segment_id: str,
    body: MemberIds,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Refreshed:
    return service.change_static(ctx, segment_id, body.contact_ids, [], actor=principal.actor)


@router.delete(
    "/segments/{segment_id}/members/{contact_id}",
    response_model=Refreshed,
    summary="Remove a contact from a list",
)
def remove_member(
    segment_id: str,
    contact_id: str,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Refreshed:
    return service.change_static(ctx, segment_id, [], [contact_id], actor=principal.actor)


@router.get(
    "/contacts/{contact_id}/segments", response_model=Page[ContactSegment], summary="A contact's segments"
)
def contact_segments(
    contact_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Page[ContactSegment]:
    return Page[ContactSegment](data=service.of_contact(ctx, contact_id), next_cursor=None)
