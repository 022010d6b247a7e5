"""What a person editing email sees before it goes out, and who engaged with it after.

* :func:`preview` renders a template (as saved, or a draft of its fields) for one contact, with the
  renderer and the variables the deliverer uses (:mod:`.build.profiles`): what that contact would get,
  except that links are not rewritten for tracking and the unsubscribe links point nowhere. A template
  that does not parse, goes over a resource limit or uses a variable the contact lacks is a 422 with the
  reason (``invalid_template``, ``template_limit_exceeded``, ``missing_variable``), never a 500.
* :func:`send_test` queues the template, rendered for a contact, to any address through the outbox as an
  internal notice: no consent, topic or frequency cap applies, links are not tracked and no
  ``leadflow.email_*`` event is emitted, so a test never shows in the numbers. Audited.
* :func:`engaged`: who first opened or clicked a template / broadcast / journey (step) in a period,
  latest first, paged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import service as contacts
from leadflow.kernel.brand import brand
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.messaging import queries, templates
from leadflow.messaging.build import profiles, render
from leadflow.messaging.build import queries as build_queries
from leadflow.messaging.delivery import outbox

__all__ = ["Engaged", "Preview", "contact_of", "engaged", "preview", "send_test"]

_RENDERER = render.Renderer(max_entries=64)
PREVIEW_JOURNEY = {"id": None, "key": "preview", "name": "Preview"}


class Preview(BaseModel):
    subject: str
    html: str
    text: str
    contact_id: str | None


@dataclass(frozen=True)
class Engaged:
    """One message someone opened (or clicked): the first human hit's time and the counts."""

    message_id: str
    contact_id: str | None
    recipient: str | None
    at: datetime
    opens: int
    clicks: int
    machine_hits: int


def contact_of(ctx: AppContext, who: str) -> str:
    """The contact named by an id or an email address (``404 contact_not_found`` when none)."""
    wanted = who.strip()
    with ctx.db.read() as conn:
        if "@" in wanted:
            try:
                found = contacts.contact_id_for_email(conn, contacts.canonical_email(wanted))
            except Invalid:
                found = None
        else:
            found = contacts.live_id(conn, wanted) if wanted else None
    if found is None:
        raise NotFound(f"no contact {wanted[:320]}", code="contact_not_found")
    return found


def _layout(conn: Connection, key: str | None) -> render.Layout | None:
    if not key:
        return None
    row = conn.execute(queries.layout(key)).first()
    if row is None:
        raise Invalid(f"layout {key} does not exist", code="unknown_layout")
    return render.Layout(key=row.key, revision=row.revision, html=row.html, text=row.text)


def preview(
    ctx: AppContext,
    template: str,
    *,
    contact: str | None,
    draft: templates.TemplateFields | None = None,
) -> Preview:
    """``template`` (id or key; with ``draft``, those fields instead of the saved ones) rendered for
    ``contact`` (an id or an email address; None: no contact, so ``contact.*`` is missing)."""
    saved = templates.get(ctx, template)
    contact_id = contact_of(ctx, contact) if contact else None
    with ctx.db.read() as conn:
        if draft is None:
            found = build_queries.sources(conn, [saved.id]).get(saved.id)
            if found is None:
                raise NotFound(f"email template {template} not found", code="template_not_found")
            row, frame = found
            source = render.Source(row.key, row.revision, row.subject, row.html, row.text)
            layout = (
                render.Layout(key=frame.key, revision=frame.revision, html=frame.html, text=frame.text)
                if frame is not None
                else None
            )
        else:
            source = templates.draft_source(saved.key, saved.revision, draft)
            layout = _layout(conn, draft.layout)
        people = profiles.load(conn, [contact_id] if contact_id else [])
    settings = ctx.settings
    person = people.variables(contact_id) if contact_id else {"contact": None, "company": None}
    variables = {
        **person,
        "event": {},
        "vars": {},
        "journey": PREVIEW_JOURNEY,
        "brand": brand(settings).variables(),
        "links": {
            "unsubscribe": f"{settings.public_url}/u/preview",
            "preferences": f"{settings.public_url}/p/preview",
        },
        "owner": {"email": "owner@example.com", "name": "Owner"},
        "message": {"id": "preview"},
    }
    try:
        rendered = _RENDERER.render(source, variables, layout)
    except render.MissingVariable as exc:
        raise Invalid(str(exc), code="missing_variable", details={"variable": exc.name}) from None
    except render.TemplateTooCostly as exc:
        raise Invalid(str(exc), code="template_limit_exceeded") from None
    except render.TemplateError as exc:
        raise Invalid(str(exc), code="invalid_template") from None
    return Preview(subject=rendered.subject, html=rendered.html, text=rendered.text, contact_id=contact_id)


def send_test(ctx: AppContext, template: str, *, to: str, contact: str | None, actor: str) -> str:
    """Queue a test of ``template`` to the address ``to``, rendered for ``contact`` (id or email) when
    given; returns the message id. The deliverer renders it like any message (a template the contact
    cannot fill fails there as it would for real: preview first)."""
    address = contacts.canonical_email(to)
    saved = templates.get(ctx, template)
    contact_id = contact_of(ctx, contact) if contact else None
    message_id = new_id()
    row = {
        "id": message_id,
        "key": f"test:{message_id}",
        "kind": "internal",
        "contact_id": contact_id,
        "to_address": address,
        "template": saved.key,
        "context": {"journey": PREVIEW_JOURNEY, "test": True},
    }
    with ctx.db.write() as conn:
        outbox.enqueue_many(conn, ctx, [row], ctx.clock.now())
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="template.test_sent",
            entity_type="email_template",
            entity_id=saved.id,
        )
    return message_id


def engaged(
    ctx: AppContext,
    by: str,
    key: str,
    what: Literal["opened", "clicked"],
    start: datetime,
    end: datetime,
    *,
    before: tuple[datetime, str] | None,
    limit: int,
) -> list[Engaged]:
    """Who first opened (or clicked) the messages of a template, broadcast, journey or journey step
    (``journey_id:step_id``) in ``[start, end)``: people only (a machine's hit never sets the time)."""
    if by not in queries.ENGAGEMENT_BY:
        raise Invalid(f"'by' is one of {', '.join(queries.ENGAGEMENT_BY)}", code="invalid_dimension")
    query = queries.engaged(by, key, what, start, end, before, limit)
    with ctx.db.read() as conn:
        return [
            Engaged(
                message_id=r.id,
                contact_id=r.contact_id,
                recipient=r.recipient,
                at=r.at,
                opens=r.opens,
                clicks=r.clicks,
                machine_hits=r.machine_hits,
            )
            for r in conn.execute(query)
        ]
