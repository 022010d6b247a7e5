"""What hangs off a contact or a company: ``/contacts/{id}/touchpoints``, ``/messages``, ``/runs`` (also
``/journey-runs``, its older name), and ``/companies/{id}/contacts``. (Tags, events, score and segments
have their own routes.)"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from leadflow.contacts import queries
from leadflow.contacts.schemas import Contact, Touchpoint
from leadflow.journeys import service as journeys
from leadflow.journeys.schemas import Run
from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate
from leadflow.messaging import service as messaging
from leadflow.messaging.service import ContactMessage

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
    "/contacts/{contact_id}/messages",
    response_model=Page[ContactMessage],
    summary="Emails to a contact, newest first: status, subject, sent / opened / clicked",
)
def contact_messages(
    contact_id: str,
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[ContactMessage]:
    before = (pagination.decode(cursor) or {}).get("before")
    with ctx.db.read() as conn:
        live = queries.get(conn, contact_id).id
        ids = [live, *queries.merged_ids(conn, live)]
        found = messaging.messages_of(conn, ids, before=before, limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda m: {"before": m.id})
    return Page[ContactMessage](data=items, next_cursor=next_cursor)


@router.get(
    "/contacts/{contact_id}/runs",
    response_model=Page[Run],
    summary="A contact's journey runs, oldest first: status, current step, each step's record",
)
@router.get(
    "/contacts/{contact_id}/journey-runs",
    response_model=Page[Run],
    tags=["journeys"],
    summary="A contact's journey runs (the older name of /contacts/{contact_id}/runs)",
)
def contact_runs(
    contact_id: str,
    status: str | None = Query(None, pattern="^(active|completed|exited|converted|failed)$"),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Run]:
    """Both paths are this one route. A merged contact's id answers as its survivor: the survivor's runs
    and those of every contact merged into it (a run keeps the id it started with); an unknown id
    ``404``."""
    after = (pagination.decode(cursor) or {}).get("after")
    with ctx.db.read() as conn:
        live = queries.get(conn, contact_id).id
        ids = [live, *queries.merged_ids(conn, live)]
    found = journeys.runs_of(
        ctx, contact_ids=ids, status=status, after=after, limit=limit + 1, with_steps=True
    )
    items, next_cursor = paginate(found, limit, lambda r: {"after": r.id})
    return Page[Run](data=items, next_cursor=next_cursor)


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
    after = (pagination.decode(cursor) or {}).get("after")
    with ctx.db.read() as conn:
        found = queries.company_contacts(conn, company_id, after=after, limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda c: {"after": c.id})
    return Page[Contact](data=items, next_cursor=next_cursor)
