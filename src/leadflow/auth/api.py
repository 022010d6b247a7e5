"""``/api/v1/keys``: API key management (admin)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from leadflow.auth import service as keys
from leadflow.auth.scopes import SCOPES
from leadflow.auth.service import Principal
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import ApiState, context, require, state
from leadflow.kernel.pagination import Page

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


class KeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, description=f"any of {', '.join(SCOPES)}")


class Key(BaseModel):
    id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    last_used_at: datetime | None = Field(
        description="when a request last used the key, to within a minute (null: never)"
    )


class NewKey(Key):
    key: str = Field(description="the secret key; shown only in this answer")


def _key(view: keys.ApiKey) -> Key:
    return Key.model_validate(view, from_attributes=True)


@router.post("", response_model=NewKey, status_code=201, summary="Create an API key")
def create_key(
    body: KeyCreate, ctx: AppContext = Depends(context), principal: Principal = Depends(require("admin"))
) -> NewKey:
    with ctx.db.write() as conn:
        view, plaintext = keys.create_key(
            conn, ctx.clock, name=body.name, scopes=body.scopes, actor=principal.actor
        )
    return NewKey(**_key(view).model_dump(), key=plaintext)


@router.get("", response_model=Page[Key], summary="List API keys (never their secrets)")
def list_keys(ctx: AppContext = Depends(context), _: Principal = Depends(require("admin"))) -> Page[Key]:
    with ctx.db.read() as conn:
        return Page[Key](data=[_key(v) for v in keys.list_keys(conn)], next_cursor=None)


@router.delete("/{key_id}", response_model=Key, summary="Revoke an API key")
def revoke_key(
    key_id: str,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("admin")),
    api: ApiState = Depends(state),
) -> Key:
    with ctx.db.write() as conn:
        view = keys.revoke_key(conn, ctx.clock, key_id, actor=principal.actor)
    api.keys.invalidate()
    return _key(view)
