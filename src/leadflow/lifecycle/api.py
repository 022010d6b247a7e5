"""``/api/v1/lifecycle/mql``: the MQL definition and the ideal customer profile."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from leadflow.kernel.context import AppContext
from leadflow.kernel.http import Principal, context, require
from leadflow.lifecycle import service
from leadflow.lifecycle.service import Definition

router = APIRouter(prefix="/api/v1/lifecycle", tags=["lifecycle"])


@router.get("/mql", response_model=Definition, summary="The MQL rule and the ideal customer profile")
def get_definition(ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))) -> Definition:
    return service.definition(ctx)


@router.put(
    "/mql", response_model=Definition, summary="Change the MQL rule and/or the ideal customer profile"
)
def put_definition(
    body: Definition, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Definition:
    return service.change_definition(ctx, body, actor=principal.actor)
