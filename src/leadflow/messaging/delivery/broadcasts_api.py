"""``/api/v1/broadcasts``: one-off email campaigns to a segment."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate
from leadflow.messaging.delivery import broadcasts as service
from leadflow.messaging.delivery.broadcasts import Broadcast, BroadcastCreate

router = APIRouter(prefix="/api/v1/broadcasts", tags=["broadcasts"])


@router.post("", response_model=Broadcast, status_code=201, summary="Create a broadcast (a draft)")
def create_broadcast(
    body: BroadcastCreate,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Broadcast:
    return service.create(ctx, body, actor=principal.actor)


@router.get("", response_model=Page[Broadcast], summary="List broadcasts, oldest first")
def list_broadcasts(
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Broadcast]:
    after = pagination.text_at(cursor, "after")
    items, next_cursor = paginate(
        service.listing(ctx, after=after, limit=limit + 1), limit, lambda b: {"after": b.id}
    )
    return Page[Broadcast](data=items, next_cursor=next_cursor)


@router.get("/{broadcast_id}", response_model=Broadcast, summary="Get a broadcast and its message counts")
def get_broadcast(
    broadcast_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Broadcast:
    return service.get(ctx, broadcast_id)


@router.post(
    "/{broadcast_id}/schedule", response_model=Broadcast, summary="Schedule a draft (for send_at, or now)"
)
def schedule_broadcast(
    broadcast_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Broadcast:
    return service.schedule(ctx, broadcast_id, actor=principal.actor)


@router.post(
    "/{broadcast_id}/cancel",
    response_model=Broadcast,
    summary="Cancel a broadcast; its messages not sent yet are suppressed",
)
def cancel_broadcast(
    broadcast_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Broadcast:
    return service.cancel(ctx, broadcast_id, actor=principal.actor)
