"""``/api/v1/suppressions``: the addresses leadflow never mails (rules in :mod:`.suppressions`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response

from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate
from leadflow.messaging import suppressions
from leadflow.messaging.suppressions import Suppression, SuppressionCreate

router = APIRouter(prefix="/api/v1/suppressions", tags=["suppressions"])


@router.get("", response_model=Page[Suppression], summary="List suppressed addresses")
def list_suppressions(
    reason: str | None = Query(None, pattern="^(unsubscribed|hard_bounce|complaint|manual)$"),
    email: str | None = Query(None, max_length=320, description="one address (any case)"),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Suppression]:
    after = pagination.text_at(cursor, "after")
    found = suppressions.listing(ctx, reason=reason, email=email, after=after, limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda s: {"after": s.email})
    return Page[Suppression](data=items, next_cursor=next_cursor)


@router.post(
    "",
    response_model=Suppression,
    summary="Suppress an address (201; an address already suppressed answers its entry with 200)",
)
def add_suppression(
    body: SuppressionCreate,
    response: Response,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Suppression:
    entry, changed = suppressions.add(ctx, body, actor=principal.actor)
    response.status_code = 201 if changed else 200
    return entry


@router.delete(
    "/{email}", status_code=204, response_class=Response, summary="Remove an address from the list"
)
def remove_suppression(
    email: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    suppressions.remove(ctx, email, actor=principal.actor)
    return Response(status_code=204)
