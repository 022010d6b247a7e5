"""Form definitions: create, read, change, delete (audited), and the confirmation email a double
opt-in form sends (installed when such a form is saved; an edited copy is kept)."""

from __future__ import annotations

import contextlib
from typing import Any

from pydantic import ValidationError
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.capture import queries
from leadflow.capture.schemas import Form, FormFields, FormPatch, definition_of
from leadflow.journeys import service as journeys
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.messaging import service as messaging
from leadflow.segments import service as segments

CONFIRMATION_TEMPLATE = "form-confirmation"
CONFIRMATION_EMAIL = {
    "key": CONFIRMATION_TEMPLATE,
    "name": "Form: confirm your subscription (double opt-in)",
    "kind": "transactional",
    "subject": "Please confirm your subscription",
    "html": (
        "<p>Hello{% if contact.first_name %} {{ contact.first_name }}{% endif %},</p>"
        "<p>you asked to hear from us through <strong>{{ vars.form_name }}</strong>. Please confirm"
        " your address:</p>"
        '<p><a href="{{ vars.confirm_url }}">Yes, subscribe me</a></p>'
        "<p>If you did not ask for this, ignore this email: you will get nothing more from us.</p>"
    ),
}


def row(conn: Connection, form_id: str) -> Any:
    found = conn.execute(queries.FORM_BY_ID, {"form_id": form_id}).first()
    if found is None:
        raise NotFound(f"form {form_id[:40]} not found", code="form_not_found")
    return found


def fields_of(found: Any) -> FormFields:
    return FormFields.model_validate({**found.definition, "name": found.name})


def view(ctx: AppContext, found: Any) -> Form:
    return Form(
        **fields_of(found).model_dump(),
        id=found.id,
        spam_count=found.spam_count,
        url=f"{ctx.settings.public_url}/f/{found.id}",
        created_by=found.created_by,
        created_at=found.created_at,
        updated_at=found.updated_at,
    )


def _check_references(ctx: AppContext, data: FormFields) -> None:
    """The list is a static list, the journey exists (each answered as the domain that owns it does)."""
    if data.list_id:
        segments.static_list(ctx, data.list_id)
    if data.journey_id:
        journeys.get(ctx, data.journey_id)


def install_confirmation(ctx: AppContext, *, actor: str) -> None:
    """The shipped confirmation email, unless a template with its key exists (perhaps edited)."""
    with ctx.db.read() as conn:
        if messaging.template_ids(conn, [CONFIRMATION_TEMPLATE]):
            return
    with contextlib.suppress(Conflict):  # created meanwhile by another process
        messaging.create_template(ctx, messaging.TemplateCreate(**CONFIRMATION_EMAIL), actor=actor)


def create(ctx: AppContext, data: FormFields, *, actor: str) -> Form:
    _check_references(ctx, data)
    if data.double_opt_in:
        install_confirmation(ctx, actor=actor)
    now = ctx.clock.now()
    form_id = new_id()
    with ctx.db.write() as conn:
        conn.execute(
            queries.FORM_INSERT,
            {
                "id": form_id,
                "name": data.name,
                "definition": definition_of(data),
                "spam_count": 0,
                "created_by": actor,
                "created_at": now,
                "updated_at": now,
            },
        )
        audit.record(
            conn, ctx.clock, actor=actor, action="form.created", entity_type="form", entity_id=form_id
        )
        return view(ctx, row(conn, form_id))


def get(ctx: AppContext, form_id: str) -> Form:
    with ctx.db.read() as conn:
        return view(ctx, row(conn, form_id))


def listing(ctx: AppContext, *, after: str | None, limit: int) -> list[Form]:
    with ctx.db.read() as conn:
        return [view(ctx, found) for found in conn.execute(queries.forms_page(after, limit))]


def update(ctx: AppContext, form_id: str, patch: FormPatch, *, actor: str) -> Form:
    with ctx.db.read() as conn:
        current = fields_of(row(conn, form_id)).model_dump()
    try:
        data = FormFields.model_validate({**current, **patch.model_dump(exclude_unset=True)})
    except ValidationError as exc:
        raise Invalid(_first_error(exc), code="invalid_form") from None
    _check_references(ctx, data)
    if data.double_opt_in:
        install_confirmation(ctx, actor=actor)
    with ctx.db.write() as conn:
        row(conn, form_id)
        params = {"form_id": form_id, "name": data.name, "definition": definition_of(data)}
        conn.execute(queries.FORM_UPDATE, {**params, "at": ctx.clock.now()})
        changed = sorted(patch.model_dump(exclude_unset=True))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="form.updated",
            entity_type="form",
            entity_id=form_id,
            data={"changed": changed},
        )
        return view(ctx, row(conn, form_id))


def delete(ctx: AppContext, form_id: str, *, actor: str) -> None:
    """The definition goes; its submissions (consent records) stay with their contacts."""
    with ctx.db.write() as conn:
        row(conn, form_id)
        conn.execute(queries.FORM_DELETE, {"form_id": form_id})
        audit.record(
            conn, ctx.clock, actor=actor, action="form.deleted", entity_type="form", entity_id=form_id
        )


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
