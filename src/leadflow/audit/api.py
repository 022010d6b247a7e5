"""``/api/v1/audit``: the audit log, newest first (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from leadflow.audit import service as audit
from leadflow.kernel import pagination
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.kernel.pagination import Cursor, Limit, Page, paginate

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str | None
    data: dict[str, Any] | None
    redacted: bool


@router.get("", response_model=Page[AuditEntry], summary="Audit entries, newest first")
def list_entries(
    entity_type: str | None = Query(None),
    entity_id: str | None = Query(None),
    since: datetime | None = Query(None),
    limit: int = Limit,
    cursor: str | None = Cursor,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("admin")),
) -> Page[AuditEntry]:
    before = pagination.number_at(cursor, "before")
    with ctx.db.read() as conn:
        rows = audit.entries(
            conn,
            entity_type=entity_type,
            entity_ids=[entity_id] if entity_id else None,
            before_id=int(before) if isinstance(before, int) else None,
            since=since,
            limit=limit + 1,
        )
    items, next_cursor = paginate(rows, limit, lambda r: {"before": r["id"]})
    return Page[AuditEntry](data=[AuditEntry.model_validate(r) for r in items], next_cursor=next_cursor)
