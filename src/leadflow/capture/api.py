"""``/api/v1/forms``: form definitions (write scope to change, read scope to read); ``/api/v1/capture``:
the business's capture flows (write scope)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Header, Query, Response

from leadflow.capture import flows, forms, render
from leadflow.capture.schemas import Embed, Form, FormFields, FormPatch
from leadflow.kernel.context import AppContext
from leadflow.kernel.http import context, require
from leadflow.kernel.pagination import Page
from leadflow.kernel.principal import Principal

router = APIRouter(prefix="/api/v1/forms", tags=["forms"])


@router.post("", response_model=Form, status_code=201, summary="Create a hosted form")
def create_form(
    body: FormFields, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Form:
    return forms.create(ctx, body, actor=principal.actor)


@router.get("", response_model=Page[Form], summary="List hosted forms")
def list_forms(
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("read")),
    after: str | None = Query(default=None, max_length=26),
    limit: int = Query(default=50, ge=1, le=500),
) -> Page[Form]:
    found = forms.listing(ctx, after=after, limit=limit)
    return Page[Form](data=found, next_cursor=found[-1].id if len(found) == limit else None)


@router.get("/{form_id}", response_model=Form, summary="A hosted form")
def get_form(
    form_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))
) -> Form:
    return forms.get(ctx, form_id)


@router.patch("/{form_id}", response_model=Form, summary="Change a hosted form")
def patch_form(
    form_id: str,
    body: FormPatch,
    ctx: AppContext = Depends(context),
    principal: Principal = Depends(require("write")),
) -> Form:
    return forms.update(ctx, form_id, body, actor=principal.actor)


@router.delete("/{form_id}", status_code=204, summary="Delete a hosted form (its submissions stay)")
def delete_form(
    form_id: str, ctx: AppContext = Depends(context), principal: Principal = Depends(require("write"))
) -> Response:
    forms.delete(ctx, form_id, actor=principal.actor)
    return Response(status_code=204)


@router.get("/{form_id}/embed", response_model=Embed, summary="Copy-paste snippets: a script, or plain HTML")
def embed(form_id: str, ctx: AppContext = Depends(context), _: Principal = Depends(require("read"))) -> Embed:
    with ctx.db.read() as conn:
        form = forms.fields_of(forms.row(conn, form_id))
    script, html = render.snippets(form, form_id, ctx.settings.public_url)
    return Embed(script=script, html=html)


# ---- the business's capture flows (leadflow.capture.flows) -----------------------------------------------

flows_router = APIRouter(prefix="/api/v1/capture", tags=["capture"])
_KEY = Header(
    default=None,
    alias="Idempotency-Key",
    min_length=1,
    max_length=80,
    description="the same key answers the first call's result again and changes nothing",
)


@flows_router.post(
    "/assessments",
    response_model=flows.Captured,
    status_code=202,
    summary="An assessment completed: contact traits, a timeline note, the assessment.completed event",
)
def capture_assessment(
    body: flows.Assessment,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("write")),
    idempotency_key: str | None = _KEY,
) -> flows.Captured:
    return flows.assessment(ctx, body, idempotency_key)


@flows_router.post(
    "/consultations",
    response_model=flows.Captured,
    status_code=202,
    summary="A consultation requested: a task for the lead's owner, the consultation.requested event",
)
def capture_consultation(
    body: flows.Consultation,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("write")),
    idempotency_key: str | None = _KEY,
) -> flows.Captured:
    return flows.consultation(ctx, body, idempotency_key)


@flows_router.post(
    "/leads",
    response_model=flows.Captured,
    status_code=202,
    summary="A lead captured from a source (form, chat, content download, social lead ad): lead.captured",
)
def capture_lead(
    body: flows.CapturedLead,
    ctx: AppContext = Depends(context),
    _: Principal = Depends(require("write")),
    idempotency_key: str | None = _KEY,
) -> flows.Captured:
    return flows.lead(ctx, body, idempotency_key)
