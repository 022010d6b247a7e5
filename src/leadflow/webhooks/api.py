"""``/api/v1/webhooks``: outgoing webhook endpoints, the event catalogue, the delivery log, statistics,
test sends and replays. Managing endpoints (and their secrets) needs ``admin``; sending a test or a
replay ``write``; reading ``read``."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate
from leadflow.webhooks import catalogue, endpoints, log

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


class EventType(BaseModel):
    type: str
    version: int
    description: str
    schema_: dict[str, Any] = Field(alias="schema")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000)
    description: str = Field("", max_length=2000)
    event_types: list[str] = Field(min_length=1, description="catalogue types, or ['*'] for all")
    active: bool = True
    rate_limit: float | None = Field(None, gt=0, description="deliveries per second at most")


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, min_length=1, max_length=2000)
    description: str | None = Field(None, max_length=2000)
    event_types: list[str] | None = Field(None, min_length=1)
    active: bool | None = None
    rate_limit: float | None = Field(None, gt=0)


class Endpoint(BaseModel):
    id: str
    url: str
    description: str
    event_types: list[str]
    active: bool
    rate_limit: float | None
    disabled_reason: str | None
    rotation_ends_at: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(Endpoint):
    secret: str = Field(description="the whsec_ signing secret: shown only now")


class Rotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_seconds: float | None = Field(
        None,
        ge=0,
        description="how long the old secret still signs (default LEADFLOW_WEBHOOK_ROTATION_GRACE)",
    )


class Queued(BaseModel):
    delivery_id: str


class Replayed(BaseModel):
    delivery_ids: list[str]


class ReplaySince(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime


class Exchange(BaseModel):
    url: str
    headers: dict[str, str] | None
    body: Any


class Answer(BaseModel):
    status: int | None
    headers: dict[str, str] | None
    body: str | None
    duration_ms: int | None


class Delivery(BaseModel):
    id: str
    endpoint_id: str | None
    event: str
    status: str
    attempts: int
    due_at: datetime
    created_at: datetime
    delivered_at: datetime | None
    error: str | None
    replay_of: str | None
    contact_id: str | None
    request: Exchange
    response: Answer


class Latency(BaseModel):
    p50: int | None
    p99: int | None
    measured: int


class Stats(BaseModel):
    endpoint_id: str
    since: datetime
    until: datetime
    counts: dict[str, int]
    total: int
    success_rate: float | None
    latency_ms: Latency


@router.get("/event-types", response_model=Page[EventType], summary="The event catalogue")
def event_types(_: Principal = Depends(require("read"))) -> Page[EventType]:
    return Page[EventType](data=[EventType.model_validate(e) for e in catalogue.listing()], next_cursor=None)


@router.post("/endpoints", response_model=EndpointWithSecret, status_code=201, summary="Register an endpoint")
def create_endpoint(
    body: EndpointIn,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
) -> EndpointWithSecret:
    view, secret = endpoints.create(ctx, **body.model_dump(), actor=principal.actor)
    return EndpointWithSecret.model_validate(view | {"secret": secret})


@router.get("/endpoints", response_model=Page[Endpoint], summary="Endpoints, oldest first")
def list_endpoints(
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Endpoint]:
    after = pagination.text_at(cursor, "after")
    rows = endpoints.listing(ctx, after=after, limit=limit + 1)
    items, next_cursor = paginate(rows, limit, lambda r: {"after": r["id"]})
    return Page[Endpoint](data=[Endpoint.model_validate(r) for r in items], next_cursor=next_cursor)


@router.get("/endpoints/{endpoint_id}", response_model=Endpoint, summary="One endpoint")
def get_endpoint(
    endpoint_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Endpoint:
    return Endpoint.model_validate(endpoints.get(ctx, endpoint_id))


@router.patch("/endpoints/{endpoint_id}", response_model=Endpoint, summary="Change an endpoint")
def patch_endpoint(
    endpoint_id: str,
    body: EndpointPatch,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
) -> Endpoint:
    changes = body.model_dump(exclude_unset=True)
    for name in ("url", "event_types", "active", "description"):
        if name in changes and changes[name] is None:
            del changes[name]  # only rate_limit may be cleared with null
    return Endpoint.model_validate(endpoints.update(ctx, endpoint_id, changes, actor=principal.actor))


@router.delete(
    "/endpoints/{endpoint_id}", status_code=204, response_class=Response, summary="Delete an endpoint"
)
def delete_endpoint(
    endpoint_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("admin"))
) -> Response:
    endpoints.delete(ctx, endpoint_id, actor=principal.actor)
    return Response(status_code=204)


@router.post(
    "/endpoints/{endpoint_id}/rotate-secret",
    response_model=EndpointWithSecret,
    summary="A new secret; the old one signs too during the grace period",
)
def rotate_secret(
    endpoint_id: str,
    body: Rotation | None = Body(None),
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
) -> EndpointWithSecret:
    grace = None if body is None or body.grace_seconds is None else timedelta(seconds=body.grace_seconds)
    view, secret = endpoints.rotate(ctx, endpoint_id, grace=grace, actor=principal.actor)
    return EndpointWithSecret.model_validate(view | {"secret": secret})


@router.post(
    "/endpoints/{endpoint_id}/test", response_model=Queued, status_code=202, summary="Send a webhook.test now"
)
def send_test(
    endpoint_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("write"))
) -> Queued:
    return Queued(delivery_id=endpoints.send_test(ctx, endpoint_id))


@router.get(
    "/endpoints/{endpoint_id}/deliveries",
    response_model=Page[Delivery],
    summary="The delivery log, newest first",
)
def endpoint_deliveries(
    endpoint_id: str,
    status: str | None = Query(None, description="queued, delivered, failed or cancelled"),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Delivery]:
    before = pagination.text_at(cursor, "before")
    rows = log.of_endpoint(ctx, endpoint_id, status=status, after=before, limit=limit + 1)
    items, next_cursor = paginate(rows, limit, lambda r: {"before": r["id"]})
    return Page[Delivery](data=[Delivery.model_validate(r) for r in items], next_cursor=next_cursor)


@router.post(
    "/endpoints/{endpoint_id}/replay",
    response_model=Replayed,
    status_code=202,
    summary="Send again every failed delivery since a time",
)
def replay_endpoint(
    endpoint_id: str,
    body: ReplaySince,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("write")),
) -> Replayed:
    return Replayed(delivery_ids=endpoints.replay_failed(ctx, endpoint_id, body.since))


@router.get(
    "/deliveries/{delivery_id}", response_model=Delivery, summary="One delivery, request and response"
)
def get_delivery(
    delivery_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Delivery:
    return Delivery.model_validate(log.get(ctx, delivery_id))


@router.post(
    "/deliveries/{delivery_id}/replay",
    response_model=Queued,
    status_code=202,
    summary="Send a delivery again (a new delivery)",
)
def replay_delivery(
    delivery_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("write"))
) -> Queued:
    return Queued(delivery_id=endpoints.replay(ctx, delivery_id))


@router.get("/stats/{endpoint_id}", response_model=Stats, summary="An endpoint's deliveries over a window")
def stats(
    endpoint_id: str,
    window_hours: float = Query(24.0, gt=0, le=24 * 90, description="hours back from now"),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Stats:
    return Stats.model_validate(log.stats(ctx, endpoint_id, window=timedelta(hours=window_hours)))
