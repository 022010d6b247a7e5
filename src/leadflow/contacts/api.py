"""``/api/v1/contacts`` and ``/api/v1/companies``."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from leadflow.contacts import erasure, normalize, queries, stages, tags
from leadflow.contacts import service as contacts
from leadflow.contacts.import_api import router as import_router
from leadflow.contacts.related_api import router as related_router
from leadflow.contacts.schemas import Company, Contact, ContactPatch, ContactUpsert, Erasure, Event
from leadflow.events import service as events
from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.kernel.hot_reads import HotRoute, hot
from leadflow.kernel.http import Principal, context, model_json, require
from leadflow.kernel.pagination import DEFAULT_LIMIT, Cursor, Limit, Page, paginate

router = APIRouter(prefix="/api/v1", tags=["contacts"], route_class=HotRoute)
MAX_Q = 200


def _by_email_alone(request: Request) -> bool:
    """The list asked for one ``email`` and nothing else: the look-up a CRM sync or a form makes."""
    params = request.query_params
    return len(params) == 1 and len(params.getlist("email")) == 1


def _by_text_alone(request: Request) -> bool:
    """The list asked for one ``q`` (within the route's 200 characters) and nothing else: a search box."""
    params = request.query_params
    texts = params.getlist("q")
    return len(params) == 1 and len(texts) == 1 and len(texts[0]) <= MAX_Q


def _email_or_text(request: Request) -> bool:
    return _by_email_alone(request) or _by_text_alone(request)


def _listed(request: Request, conn: Connection) -> Response:
    """``list_contacts`` for ``?email=`` alone or ``?q=`` alone (its hot twin: see
    :mod:`leadflow.kernel.hot_reads`; a search is made in a worker thread, an email in the loop)."""
    params = request.query_params
    if "email" in params:
        where = queries.ContactFilter(email=_email_filter(params["email"]))
    else:
        where = queries.ContactFilter(q=params["q"])
    return _page(queries.search(conn, where, after=None, limit=DEFAULT_LIMIT + 1), DEFAULT_LIMIT)


def _page(found: list[Contact], limit: int) -> Response:
    """A page of the list (``found``: up to ``limit + 1`` contacts, the extra one meaning more follow)."""
    items, next_cursor = paginate(found, limit, lambda c: {"after": c.id})
    return model_json(Page[Contact](data=items, next_cursor=next_cursor))


def _contact_by_id(request: Request, conn: Connection) -> Response:
    """``get_contact`` (its hot twin)."""
    return model_json(queries.get(conn, request.path_params["contact_id"]))


@router.get("/contacts", response_model=Page[Contact], summary="List or search contacts")
@hot("read", _listed, accepts=_email_or_text, in_loop=_by_email_alone)
def list_contacts(
    email: str | None = Query(None, description="exact email (any case)"),
    q: str | None = Query(None, max_length=MAX_Q, description="substring of email, name or user id"),
    lifecycle_stage: str | None = Query(None),
    updated_since: datetime | None = Query(None, description="ISO-8601; contacts changed at or after"),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Response:
    after = pagination.text_at(cursor, "after")
    if lifecycle_stage is not None:
        stages.validate(lifecycle_stage)
    where = queries.ContactFilter(
        email=_email_filter(email), q=q, lifecycle_stage=lifecycle_stage, updated_since=updated_since
    )
    # one statement, or two for a text search on PostgreSQL: over contacts after the first one's last
    # match, so they need no common snapshot
    with ctx.db.read_one() as conn:
        found = queries.search(conn, where, after=after, limit=limit + 1)
    return _page(found, limit)


def _email_filter(email: str | None) -> str | None:
    if email is None:
        return None
    try:
        return normalize.email(email)
    except Invalid:
        return email.strip().lower()


@router.post("/contacts", response_model=Contact, summary="Create or update a contact (by user_id or email)")
def upsert_contact(
    body: ContactUpsert,
    response: Response,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Contact:
    contact, created = contacts.upsert(ctx, body, actor=principal.actor)
    response.status_code = 201 if created else 200
    return contact


@router.get("/contacts/{contact_id}", response_model=Contact, summary="Get a contact (merged ids resolve)")
@hot("read", _contact_by_id)
def get_contact(
    contact_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Response:
    with ctx.db.read_one() as conn:
        return model_json(queries.get(conn, contact_id))


@router.patch("/contacts/{contact_id}", response_model=Contact, summary="Change some fields of a contact")
def patch_contact(
    contact_id: str,
    body: ContactPatch,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Contact:
    return contacts.patch(ctx, contact_id, body, actor=principal.actor)


@router.delete("/contacts/{contact_id}", response_model=Erasure, summary="Erase a contact (GDPR)")
def erase_contact(
    contact_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Erasure:
    return erasure.erase(ctx, contact_id, actor=principal.actor)


@router.get(
    "/contacts/{contact_id}/events", response_model=Page[Event], summary="A contact's events, newest first"
)
def contact_events(
    contact_id: str,
    type: str | None = Query(None, description="identify, track, page, screen, group or alias"),
    name: str | None = Query(None, description="event name (track) or page/screen name"),
    source: Literal["segment", "internal"] | None = Query(
        None,
        description="segment: sent to the tracking API; internal: leadflow's own (stage, segment, score …)",
    ),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Event]:
    before = pagination.decode_time(cursor)
    with ctx.db.read() as conn:
        live = queries.get(conn, contact_id).id
        rows = events.for_contacts(
            conn, [live], kind=type, name=name, source=source, before=before, limit=limit + 1
        )
    items, next_cursor = paginate(rows, limit, lambda r: pagination.time_position(r["timestamp"], r["id"]))
    return Page[Event](
        data=[Event.model_validate({**r, "id": str(r["id"])}) for r in items], next_cursor=next_cursor
    )


class TagChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    add: list[str] = Field(default_factory=list, max_length=100)
    remove: list[str] = Field(default_factory=list, max_length=100)


class Tags(BaseModel):
    tags: list[str]


@router.get("/contacts/{contact_id}/tags", response_model=Tags, summary="A contact's tags")
def contact_tags(
    contact_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Tags:
    with ctx.db.read() as conn:
        return Tags(tags=tags.of(conn, queries.get(conn, contact_id).id))


@router.post("/contacts/{contact_id}/tags", response_model=Tags, summary="Add and remove a contact's tags")
def change_tags(
    contact_id: str,
    body: TagChange,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Tags:
    return Tags(tags=tags.update(ctx, contact_id, body.add, body.remove, actor=principal.actor))


@router.get("/companies", response_model=Page[Company], tags=["companies"], summary="List companies")
def list_companies(
    q: str | None = Query(None, max_length=200, description="substring of the name"),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Company]:
    after = pagination.text_at(cursor, "after")
    with ctx.db.read() as conn:
        found = queries.list_companies(conn, q=q, after=after, limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda c: {"after": c.id})
    return Page[Company](data=items, next_cursor=next_cursor)


@router.get("/companies/{company_id}", response_model=Company, tags=["companies"], summary="Get a company")
def get_company(
    company_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Company:
    with ctx.db.read() as conn:
        return queries.company(conn, company_id)


router.include_router(related_router)
router.include_router(import_router)
