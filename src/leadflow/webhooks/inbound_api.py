"""Incoming webhooks: the public ``POST /hooks/{source}`` (no API key: the sender's signature is the
credential, see :mod:`leadflow.webhooks.inbound`) and the operator's routes: sources
(``/api/v1/webhooks/sources``, scope ``admin``, reading ``read``), the stored deliveries and their replay
(``/api/v1/webhooks/inbound``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from leadflow.events.service import read_body
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import BadRequest
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate, text_at
from leadflow.webhooks import inbound, inbound_sources

hooks_router = APIRouter(tags=["incoming webhooks"])
router = APIRouter(prefix="/api/v1/webhooks", tags=["incoming webhooks"])

Kind = Literal["stripe", "calendly", "standard"]
Status = Literal["processed", "failed"]


class Received(BaseModel):
    id: str = Field(description="the stored delivery (for a duplicate: the one stored first)")
    status: Status | None = Field(description="processed, or failed (kept with its error, replayable)")
    duplicate: bool = Field(description="this sender event was received before: nothing changed")
    error: str | None = None


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, description="the {source} of /hooks/{source}")
    kind: Kind
    secret: str = Field(min_length=1, max_length=1000, description="the sender's signing secret (write-only)")
    tolerance: int | None = Field(
        None, ge=1, le=3600, description="seconds; stripe/standard 300, calendly 180"
    )
    active: bool = True


class SourcePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    secret: str | None = Field(None, min_length=1, max_length=1000)
    tolerance: int | None = Field(None, ge=1, le=3600)
    active: bool | None = None


class Source(BaseModel):
    name: str
    kind: Kind
    tolerance: int
    active: bool
    created_at: datetime
    updated_at: datetime


class Inbound(BaseModel):
    id: str
    source: str
    kind: Kind
    sender_id: str
    type: str | None
    received_at: datetime
    status: Status
    error: str | None
    processed_at: datetime | None
    body: Any = Field(description="the payload as received (JSON)")


def _is_json(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


@hooks_router.post(
    "/hooks/{source}",
    response_model=Received,
    summary="Receive a webhook from a configured sender (Stripe, Calendly, Standard Webhooks)",
    description=(
        "No API key: the sender's signature (Stripe-Signature, Calendly-Webhook-Signature or "
        "webhook-signature) is the credential. 400 invalid_signature / stale_webhook changes nothing; "
        "a sender event received before answers duplicate: true; a verified payload that cannot become "
        "events is kept as failed (200) and can be replayed."
    ),
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
    },
)
async def receive_hook(source: str, request: Request, ctx: AppContext = Depends(context)) -> Received:
    content_type = request.headers.get("content-type")
    if content_type is not None and not _is_json(content_type):
        raise BadRequest("a webhook body is JSON (application/json)", code="unsupported_media_type")
    body = await read_body(request, ctx.settings.api_max_body_bytes)  # the edge's 413 answers first
    headers = {name.lower(): value for name, value in request.headers.items()}
    received = await run_in_threadpool(inbound.receive, ctx, source, body, headers)
    return Received(**received.__dict__)


@router.post(
    "/sources", response_model=Source, status_code=201, summary="Configure an incoming webhook sender"
)
def create_source(
    body: SourceCreate, ctx: AppContext = Depends(context), principal: Principal = Depends(require("admin"))
) -> Source:
    made = inbound_sources.create(ctx, **body.model_dump(), actor=principal.actor)
    return Source(**made.public())


@router.get("/sources", response_model=list[Source], summary="Incoming webhook senders")
def list_sources(ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))) -> list[Source]:
    return [Source(**source.public()) for source in inbound_sources.listing(ctx)]


@router.get("/sources/{name}", response_model=Source, summary="One incoming webhook sender")
def get_source(
    name: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Source:
    return Source(**inbound_sources.get(ctx, name).public())


@router.patch(
    "/sources/{name}", response_model=Source, summary="Change a sender's secret, tolerance or state"
)
def patch_source(
    name: str,
    body: SourcePatch,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
) -> Source:
    changes = body.model_dump(exclude_unset=True)
    if any(value is None for value in changes.values()):
        raise BadRequest("secret, tolerance and active cannot be null", code="invalid_field")
    return Source(**inbound_sources.update(ctx, name, changes, actor=principal.actor).public())


@router.delete("/sources/{name}", status_code=204, response_class=Response, summary="Remove a sender")
def delete_source(
    name: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("admin"))
) -> Response:
    inbound_sources.delete(ctx, name, actor=principal.actor)
    return Response(status_code=204)


@router.get("/inbound", response_model=Page[Inbound], summary="Received webhooks, newest first")
def list_inbound(
    source: str | None = Query(None, max_length=64),
    status: Status | None = Query(None),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Inbound]:
    before = text_at(cursor, "id")
    rows = inbound.listing(ctx, source=source, status=status, before=before, limit=limit + 1)
    items, next_cursor = paginate(rows, limit, lambda row: {"id": row["id"]})
    return Page[Inbound](data=[Inbound(**row) for row in items], next_cursor=next_cursor)


@router.get("/inbound/{inbound_id}", response_model=Inbound, summary="One received webhook")
def get_inbound(
    inbound_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Inbound:
    return Inbound(**inbound.get(ctx, inbound_id))


@router.post(
    "/inbound/{inbound_id}/replay",
    response_model=Inbound,
    summary="Process a failed received webhook again (409 not_failed once processed)",
)
def replay_inbound(
    inbound_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("write"))
) -> Inbound:
    return Inbound(**inbound.replay(ctx, inbound_id))
