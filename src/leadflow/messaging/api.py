"""``/api/v1/email/*``: templates (with a strict preview), layouts, topics and the message log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field

from leadflow.contacts import service as contacts
from leadflow.kernel import pagination
from leadflow.kernel.brand import brand
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate
from leadflow.messaging import queries, templates
from leadflow.messaging.build import queries as build_queries
from leadflow.messaging.build import render
from leadflow.messaging.contact_view import ContactMessage, messages_of

router = APIRouter(prefix="/api/v1/email", tags=["email"])
contact_router = APIRouter(prefix="/api/v1", tags=["contacts"])  # what messaging holds about a contact


class PreviewRequest(BaseModel):
    contact_id: str | None = Field(default=None, description="render for this contact")
    contact: dict[str, Any] | None = Field(default=None, description="or for these contact fields")
    company: dict[str, Any] | None = None
    event: dict[str, Any] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)


class Preview(BaseModel):
    subject: str
    html: str
    text: str


class MessageView(BaseModel):
    id: str
    kind: str
    contact_id: str | None
    recipient: str | None
    template_id: str
    journey_id: str | None
    broadcast_id: str | None
    step_id: str | None
    status: str
    attempts: int
    subject: str | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    opens: int
    clicks: int
    machine_hits: int


@router.post("/templates", response_model=templates.Template, status_code=201, summary="Create a template")
def create_template(
    body: templates.TemplateCreate,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> templates.Template:
    return templates.create(ctx, body, actor=principal.actor)


@router.get("/templates", response_model=Page[templates.Template], summary="List templates")
def list_templates(
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[templates.Template]:
    after = pagination.text_at(cursor, "after")
    items, next_cursor = paginate(
        templates.listing(ctx, after=after, limit=limit + 1), limit, lambda t: {"after": t.id}
    )
    return Page[templates.Template](data=items, next_cursor=next_cursor)


@router.get("/templates/{key}", response_model=templates.Template, summary="Get a template (id or key)")
def get_template(
    key: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> templates.Template:
    return templates.get(ctx, key)


@router.put("/templates/{key}", response_model=templates.Template, summary="Replace a template's content")
def update_template(
    key: str,
    body: templates.TemplateFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> templates.Template:
    return templates.update(ctx, key, body, actor=principal.actor)


@router.delete("/templates/{key}", status_code=204, response_class=Response, summary="Delete a template")
def delete_template(
    key: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    templates.delete(ctx, key, actor=principal.actor)
    return Response(status_code=204)


@router.post(
    "/templates/{key}/preview",
    response_model=Preview,
    summary="Render strictly (a missing variable is a 422)",
)
def preview_template(
    key: str,
    body: PreviewRequest,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Preview:
    template = templates.get(ctx, key)
    with ctx.db.read() as conn:
        layout = build_queries.sources(conn, [template.id]).get(template.id, (None, None))[1]
        person = body.contact or {}
        if body.contact_id:
            person = contacts.get(conn, body.contact_id).model_dump(mode="json")
    settings = ctx.settings
    variables = {
        "contact": person,
        "company": body.company,
        "event": body.event,
        "vars": body.vars,
        "journey": {"id": None, "key": "preview", "name": "Preview"},
        "brand": brand(settings).variables(),
        "links": {
            "unsubscribe": f"{settings.public_url}/u/preview",
            "preferences": f"{settings.public_url}/p/preview",
        },
        "owner": {"email": "owner@example.com", "name": "Owner"},
        "message": {"id": "preview"},
    }
    source = render.Source(
        key=template.key,
        revision=template.revision,
        subject=template.subject,
        html=template.html,
        text=template.text,
    )
    frame = (
        render.Layout(key=layout.key, revision=layout.revision, html=layout.html, text=layout.text)
        if layout
        else None
    )
    try:
        rendered = render.Renderer().render(source, variables, frame)
    except render.MissingVariable as exc:
        raise Invalid(str(exc), code="missing_variable", details={"variable": exc.name}) from None
    except render.TemplateTooCostly as exc:
        raise Invalid(str(exc), code="template_limit_exceeded") from None
    except render.TemplateError as exc:
        raise Invalid(str(exc), code="invalid_template") from None
    return Preview(subject=rendered.subject, html=rendered.html, text=rendered.text)


@router.put("/layouts/{key}", status_code=204, response_class=Response, summary="Create or replace a layout")
def save_layout(
    key: str,
    body: templates.LayoutFields,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("write")),
) -> Response:
    if body.key != key:
        raise Invalid("the key in the path and the body differ", code="key_mismatch")
    with ctx.db.write() as conn:
        templates.save_layout(conn, ctx, body)
    return Response(status_code=204)


@router.get("/topics", response_model=list[templates.Topic], summary="Preference-centre topics")
def list_topics(
    ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> list[templates.Topic]:
    with ctx.db.read() as conn:
        return templates.topics(conn)


@router.post(
    "/topics", status_code=204, response_class=Response, summary="Add a topic (an existing key is kept)"
)
def create_topic(
    body: templates.Topic, ctx: AppContext = Depends(context), _: Principal = Depends(require("write"))
) -> Response:
    with ctx.db.write() as conn:
        templates.save_topic(conn, ctx, body)
    return Response(status_code=204)


@router.get("/messages", response_model=Page[MessageView], summary="The message log, newest first")
def list_messages(
    status: str | None = Query(None, pattern="^(queued|deferred|sent|bounced|failed|suppressed)$"),
    contact_id: str | None = None,
    journey_id: str | None = None,
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[MessageView]:
    before = pagination.text_at(cursor, "before")
    filters = {"status": status, "contact_id": contact_id, "journey_id": journey_id}
    query = queries.message_log(filters, before, limit + 1)
    with ctx.db.read() as conn:
        found = [
            MessageView(**{n: row._mapping[n] for n in MessageView.model_fields})
            for row in conn.execute(query)
        ]
    items, next_cursor = paginate(found, limit, lambda m: {"before": m.id})
    return Page[MessageView](data=items, next_cursor=next_cursor)


@contact_router.get(
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
    # A merged contact's id answers as its survivor, with the emails to every contact merged into it.
    before = pagination.text_at(cursor, "before")
    with ctx.db.read() as conn:
        found = messages_of(conn, contacts.with_merged(conn, contact_id), before=before, limit=limit + 1)
    items, next_cursor = paginate(found, limit, lambda m: {"before": m.id})
    return Page[ContactMessage](data=items, next_cursor=next_cursor)
