"""``GET /api/v1/contacts/{id}/export``: a person's data from every domain (GDPR access). Erasure is
``DELETE /api/v1/contacts/{id}`` (:mod:`leadflow.contacts.api`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.privacy import service

router = APIRouter(prefix="/api/v1", tags=["contacts"])


@router.get("/contacts/{contact_id}/export", summary="Everything held about a contact (GDPR access)")
def export_contact(
    contact_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> dict[str, Any]:
    return service.export(ctx, contact_id)
