"""``/api/v1/connectors``: CRM and email-platform connectors. Configuring one (and its credentials,
which no answer ever contains) needs ``admin``; syncing, backfilling and replaying ``write``; reading
``read``. No route waits for a vendor except ``POST /{id}/test``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from leadflow.connectors import config, manage
from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.inputs import INT32_MAX
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate

router = APIRouter(prefix="/api/v1/connectors", tags=["connectors"])

Policy = Literal["leadflow", "remote", "newest"]


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate: float | None = Field(None, gt=0, le=10_000, description="requests per second")
    burst: float | None = Field(None, gt=0, le=100_000, description="requests at once")
    batch: int | None = Field(None, gt=0, le=1000, description="records per write")


class ConnectorFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    credentials: dict[str, Any] | None = Field(
        None, description="e.g. {'access_token': ...}: sealed at rest, never returned"
    )
    host: str | None = Field(
        None, max_length=2000, description="the vendor's API base URL (default: its own)"
    )
    options: dict[str, Any] | None = Field(
        None,
        max_length=50,
        description="the vendor's non-secret settings, shown unlike the credentials (Pipedrive "
        "`pipeline_id`/`stage_id`/`stages`, Salesforce `object`/`external_id`/`link_field`/`stages`/"
        "`version`/`domain`, Mailchimp `list_id`); a PATCH replaces them all; an unknown name is a 422 "
        "`unknown_option`",
    )
    mapping: list[dict[str, Any]] | None = Field(None, max_length=200)
    triggers: dict[str, Any] | None = None
    objects: list[Literal["contact", "company", "deal", "activity"]] | None = Field(None, min_length=1)
    direction: Literal["push", "both"] | None = None
    conflict: dict[str, Policy] | None = Field(None, description="remote field (or '*') → who wins")
    limits: Limits | None = None
    active: bool | None = None
    health_threshold: float | None = Field(None, ge=0, le=1)


class ConnectorIn(ConnectorFields):
    vendor: str = Field(min_length=1, max_length=32)
    preset: str | None = Field(
        None,
        max_length=64,
        description="a ready-made mapping of the vendor instead of `mapping` (e.g. ActiveCampaign's "
        "`event-registration`; `GET /api/v1/connectors/presets` lists them)",
    )
    name: str = Field(min_length=1, max_length=200)
    credentials: dict[str, Any] = Field(
        description="e.g. {'access_token': ...}: sealed at rest, never returned"
    )


class Preset(BaseModel):
    vendor: str
    name: str = Field(description="what `preset` takes when creating a connector")
    mapping: list[dict[str, Any]]


class Connector(BaseModel):
    id: str
    vendor: str
    name: str
    host: str | None
    has_credentials: bool
    options: dict[str, Any]
    mapping: list[dict[str, Any]]
    triggers: dict[str, Any]
    objects: list[str]
    direction: str
    conflict: dict[str, str]
    limits: dict[str, Any] | None
    active: bool
    health_threshold: float
    pulled_until: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class ContactRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: str = Field(min_length=1, max_length=64)


class SegmentRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment_id: str = Field(min_length=1, max_length=64)


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: int | None = Field(None, ge=1, le=INT32_MAX, description="one dead letter")
    since: AwareDatetime | None = Field(None, description="every dead letter since")


class Replayed(BaseModel):
    replayed: int


def _values(body: ConnectorFields) -> dict[str, Any]:
    given = body.model_dump(exclude_unset=True)
    if "limits" in given and given["limits"] is not None:
        given["limits"] = {k: v for k, v in given["limits"].items() if v is not None}
    return given


@router.post("", response_model=Connector, status_code=201, summary="Connect a vendor account")
def create_connector(
    body: ConnectorIn, ctx: AppContext = Depends(context), principal: Principal = Depends(require("admin"))
) -> Connector:
    return Connector.model_validate(config.create(ctx, _values(body), actor=principal.actor))


@router.get("", response_model=Page[Connector], summary="Connectors")
def list_connectors(
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[Connector]:
    after = pagination.text_at(cursor, "after")
    rows = config.listing(ctx, after=after, limit=limit + 1)
    items, next_cursor = paginate(rows, limit, lambda r: {"after": r["id"]})
    return Page[Connector](data=[Connector.model_validate(r) for r in items], next_cursor=next_cursor)


@router.get("/presets", response_model=list[Preset], summary="Ready-made mappings per vendor")
def list_presets(
    vendor: str | None = Query(None, min_length=1, max_length=32, description="one vendor's (default: all)"),
    _: Principal = Depends(require("read")),
) -> list[Preset]:
    return [Preset.model_validate(row) for row in config.presets(vendor)]


@router.get("/audit", response_model=Page[dict[str, Any]], summary="Fields synced for one contact")
def contact_audit(
    contact_id: str = Query(min_length=1, max_length=64),
    limit: int = Limit,
    before: int | None = Query(None, ge=1, le=INT32_MAX),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[dict[str, Any]]:
    rows = manage.audit(ctx, connector_id=None, contact_id=contact_id, before=before, limit=limit)
    return Page[dict[str, Any]](data=rows, next_cursor=None)


@router.get("/dead-letters", response_model=Page[dict[str, Any]], summary="Dead letters of every connector")
def all_dead_letters(
    limit: int = Limit,
    after: int = Query(0, ge=0, le=INT32_MAX),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[dict[str, Any]]:
    return Page[dict[str, Any]](data=manage.dead_letters(ctx, None, after, limit), next_cursor=None)


@router.post("/replay", response_model=Replayed, summary="Replay every dead letter since a time")
def replay_all(
    body: Replay, ctx: AppContext = Depends(context), _: Principal = Depends(require("write"))
) -> Replayed:
    return Replayed(replayed=manage.replay(ctx, row_id=body.id, since=body.since))


@router.get("/{connector_id}", response_model=Connector, summary="One connector")
def get_connector(
    connector_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Connector:
    return Connector.model_validate(config.get(ctx, connector_id))


@router.patch("/{connector_id}", response_model=Connector, summary="Change a connector")
def patch_connector(
    connector_id: str,
    body: ConnectorFields,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
) -> Connector:
    return Connector.model_validate(config.update(ctx, connector_id, _values(body), actor=principal.actor))


@router.delete("/{connector_id}", status_code=204, response_class=Response, summary="Disconnect")
def delete_connector(
    connector_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("admin"))
) -> Response:
    config.delete(ctx, connector_id, actor=principal.actor)
    return Response(status_code=204)


@router.post("/{connector_id}/test", summary="Test the connection (one authenticated call to the vendor)")
def check_connector(
    connector_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("admin"))
) -> dict[str, Any]:
    return manage.test_connection(ctx, connector_id)


@router.get("/{connector_id}/preview", summary="What the mapping would write for a contact")
def preview(
    connector_id: str,
    contact_id: str = Query(min_length=1, max_length=64),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> dict[str, Any]:
    return manage.preview(ctx, connector_id, contact_id)


@router.post("/{connector_id}/sync", status_code=202, summary="Sync one contact now (queued, not awaited)")
def sync_contact(
    connector_id: str,
    body: ContactRef,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("write")),
) -> dict[str, Any]:
    return manage.sync_now(ctx, connector_id, body.contact_id)


@router.post("/{connector_id}/backfill", status_code=202, summary="Queue every member of a segment")
def backfill(
    connector_id: str,
    body: SegmentRef,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("write")),
) -> dict[str, Any]:
    return manage.backfill(ctx, connector_id, body.segment_id)


@router.get(
    "/{connector_id}/audit", response_model=Page[dict[str, Any]], summary="Fields synced, newest first"
)
def connector_audit(
    connector_id: str,
    contact_id: str | None = Query(None, min_length=1, max_length=64),
    limit: int = Limit,
    before: int | None = Query(None, ge=1, le=INT32_MAX),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[dict[str, Any]]:
    config.get(ctx, connector_id)
    rows = manage.audit(ctx, connector_id=connector_id, contact_id=contact_id, before=before, limit=limit)
    return Page[dict[str, Any]](data=rows, next_cursor=None)


@router.get("/{connector_id}/health", summary="Success rate, lag, backlog, dead letters, last error")
def health(
    connector_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> dict[str, Any]:
    return manage.health(ctx, connector_id)


@router.get(
    "/{connector_id}/conflicts", response_model=Page[dict[str, Any]], summary="Matches left to a human"
)
def conflicts(
    connector_id: str,
    limit: int = Limit,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[dict[str, Any]]:
    return Page[dict[str, Any]](data=manage.conflicts(ctx, connector_id, limit), next_cursor=None)


@router.get("/{connector_id}/dead-letters", response_model=Page[dict[str, Any]], summary="Dead letters")
def dead_letters(
    connector_id: str,
    limit: int = Limit,
    after: int = Query(0, ge=0, le=INT32_MAX),
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
) -> Page[dict[str, Any]]:
    return Page[dict[str, Any]](data=manage.dead_letters(ctx, connector_id, after, limit), next_cursor=None)


@router.post("/{connector_id}/replay", response_model=Replayed, summary="Replay one, all, or since a time")
def replay(
    connector_id: str,
    body: Replay,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("write")),
) -> Replayed:
    return Replayed(replayed=manage.replay(ctx, row_id=body.id, connector_id=connector_id, since=body.since))
