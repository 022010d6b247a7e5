"""What hangs off a contact or a company in this domain: ``/contacts/{id}/touchpoints`` and
``/companies/{id}/contacts``. (A contact's messages and journey runs are served by messaging and journeys;
tags, events, score and segments have their own routes.)"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from leadflow.contacts import queries
from leadflow.contacts.schemas import Contact, Touchpoint
from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate

router = APIRouter()


@router.get(
    "/contacts/{contact_id}/touchpoints",
    response_model=Page[Touchpoint],
    summary="A contact's marketing touchpoints (UTM, referrals), newest first",
)
def contact_touchpoints(
    contact_id: str,
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Touchpoint]:
    before = pagination.decode_time(cursor)
    with ctx.db.read() as conn:
        live = queries.get(conn, contact_id).id
        rows = queries.touchpoints_page(conn, live, before=before, limit=limit + 1)
    items, next_cursor = paginate(rows, limit, lambda r: pagination.time_position(r["occurred_at"], r["id"]))
    data = [
        Touchpoint.model_validate({**r, "id": str(r["id"]), "event_id": str(r["event_id"])}) for r in items
    ]
    return Page[Touchpoint](data=data, next_cursor=next_cursor)


@router.get(
    "/companies/{company_id}/contacts",
    response_model=Page[Contact],
    tags=["companies"],
    summary="A company's contacts (company id or group id)",
)
def company_contacts(
    company_id: str,
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Contact]:
    after = pagination.text_at(cursor, "after")
    with ctx.db.read() as conn:
        found = queries.company_contacts(conn, company_id, after=after, limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda c: {"after": c.id})
    return Page[Contact](data=items, next_cursor=next_cursor)
