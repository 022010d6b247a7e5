"""Leads: contacts with a sales record (status, reason, owner, source, first response).

A contact becomes a lead when it reaches the lifecycle stage ``lead`` or later — the pipeline's
``ContactsTouched`` fact names the contacts whose stage may have changed, and one
``INSERT … SELECT`` per batch makes the new ones leads — or when a status, an owner or an activity
is set on it through the API.

Status changes and assignments are audited (on the contact, so an erasure redacts them) and are
internal events of the pipeline, so segments, journeys and webhooks can use them:

- ``lead.status_changed`` ``{"from", "to", "reason"}`` (the webhook catalogue calls it
  ``lead.status_updated``);
- ``lead.owner_assigned`` ``{"from", "to"}`` (user ids; ``to`` null when unassigned).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import service as contacts
from leadflow.crm import people, queries, rules
from leadflow.crm.schemas import Lead, LeadFilter, OwnerChange, StatusChange
from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import chunk_size, chunked
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.kernel.facts import EVERYTHING, ContactsErased, ContactsMerged, ContactsTouched
from leadflow.kernel.ids import new_id
from leadflow.scoring import service as scoring

STATUS_CHANGED = "lead.status_changed"
OWNER_ASSIGNED = "lead.owner_assigned"
STAGE_CHANGED = "leadflow.stage_changed"
#: The lifecycle stages that make a contact a lead.
LEAD_STAGES = tuple(
    stage for stage in contacts.STAGES if contacts.stage_rank(stage) >= contacts.stage_rank("lead")
)


# ---- from the pipeline ---------------------------------------------------------------------------------


def candidates(message: ContactsTouched) -> set[str]:
    """Contacts whose stage may have reached ``lead``: new or re-staged profiles, and stage changes
    made outside a unit of work's change set (lifecycle promotion), seen as their events."""
    found = {
        contact_id
        for contact_id, fields in message.changes.items()
        if "lifecycle_stage" in fields or EVERYTHING in fields
    }
    return found | {event.contact_id for event in message.events if event.event == STAGE_CHANGED}


def on_contacts_touched(conn: Connection, message: ContactsTouched) -> None:
    """Make leads of the touched contacts at ``lead`` or later: one statement for the batch."""
    found = sorted(candidates(message))
    for chunk in chunked(found, chunk_size(conn)):
        conn.execute(queries.insert_leads(conn.dialect.name, chunk, LEAD_STAGES, message.at))


def ensure(conn: Connection, contact_id: str, now: datetime) -> None:
    """Make this contact a lead if it is not one (a status, owner or activity set by a person)."""
    conn.execute(queries.ensure_lead(conn.dialect.name, contact_id, now))


# ---- reading -------------------------------------------------------------------------------------------


def contact_of(conn: Connection, email: str) -> str:
    """The contact holding this address (404 ``contact_not_found``)."""
    contact_id = contacts.contact_id_for_email(conn, contacts.canonical_email(email))
    if contact_id is None:
        raise NotFound(f"no contact with email {email}", code="contact_not_found")
    return contact_id


def read(conn: Connection, contact_id: str) -> Lead:
    row = conn.execute(queries.lead(contact_id, scoring.lowest_band(conn))).first()
    if row is None:
        raise NotFound(f"contact {contact_id} is not a lead", code="lead_not_found")
    return Lead.model_validate(row, from_attributes=True)


def get(ctx: AppContext, email: str) -> Lead:
    with ctx.db.read() as conn:
        return read(conn, contact_of(conn, email))


def search(
    ctx: AppContext, where: LeadFilter, *, before: tuple[datetime, str] | None, limit: int
) -> list[Lead]:
    """Leads newest first (see :func:`leadflow.crm.queries.leads_page`); one query."""
    for status in where.status or ():
        rules.status(status)
    for stage in where.stage or ():
        if stage not in contacts.STAGES:
            raise Invalid(f"unknown lifecycle stage {stage!r}", code="invalid_stage")
    with ctx.db.read() as conn:
        query = queries.leads_page(where, before=before, limit=limit, lowest_band=scoring.lowest_band(conn))
        return [Lead.model_validate(row, from_attributes=True) for row in conn.execute(query)]


# ---- changes by people ----------------------------------------------------------------------------------


def _locked(conn: Connection, contact_id: str, now: datetime) -> Any:
    ensure(conn, contact_id, now)
    return conn.execute(queries.LEAD.with_for_update(), {"contact_id": contact_id}).one()


def change_status(ctx: AppContext, email: str, change: StatusChange, *, actor: str) -> Lead:
    """Set a lead's status (any status to any other); ``unqualified`` and ``lost`` need a reason. The
    first status leaving ``new`` stamps the first response. Setting the status it has changes
    nothing and emits nothing."""
    reason = rules.reason_for(change.status, change.reason)
    with ctx.db.write() as conn:
        contact_id = contact_of(conn, email)
        now = ctx.clock.now()
        before = _locked(conn, contact_id, now)
        if (before.status, before.reason) == (change.status, reason):
            return read(conn, contact_id)
        conn.execute(
            queries.SET_STATUS,
            {
                "lead": contact_id,
                "new_status": change.status,
                "new_reason": reason,
                "now": now,
                "responded_at": now if change.status != "new" else None,
            },
        )
        details = {"from": before.status, "to": change.status, "reason": reason}
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action=STATUS_CHANGED,
            entity_type="contact",
            entity_id=contact_id,
            data=details,
        )
        events.emit(conn, contact_id, STATUS_CHANGED, details, now, f"lead-status:{new_id()}")
        return read(conn, contact_id)


def assign(ctx: AppContext, email: str, change: OwnerChange, *, actor: str) -> Lead:
    """Give a lead an owner (an active CRM user), or none."""
    with ctx.db.write() as conn:
        contact_id = contact_of(conn, email)
        if change.owner_id is not None:
            people.check_owner(conn, change.owner_id)
        now = ctx.clock.now()
        before = _locked(conn, contact_id, now)
        if before.owner_id == change.owner_id:
            return read(conn, contact_id)
        conn.execute(queries.SET_OWNER, {"lead": contact_id, "owner": change.owner_id, "now": now})
        details = {"from": before.owner_id, "to": change.owner_id}
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action=OWNER_ASSIGNED,
            entity_type="contact",
            entity_id=contact_id,
            data=details,
        )
        events.emit(conn, contact_id, OWNER_ASSIGNED, details, now, f"lead-owner:{new_id()}")
        return read(conn, contact_id)


# ---- merges, erasure, export ------------------------------------------------------------------------


def on_contacts_merged(conn: Connection, message: ContactsMerged) -> None:
    """A merged contact's activities move to the survivor; its lead too when the survivor has none
    (otherwise the survivor's record stays)."""
    pairs = [{"loser": loser, "survivor": survivor} for loser, survivor in message.pairs]
    if not pairs:
        return
    conn.execute(queries.MOVE_ACTIVITIES, pairs)
    conn.execute(queries.MOVE_LEAD, pairs)
    conn.execute(queries.DROP_LEAD, pairs)


def on_contacts_erased(conn: Connection, message: ContactsErased) -> None:
    """GDPR erasure: the person's lead record and every activity logged about them go."""
    for chunk in chunked(list(message.contact_ids), 1000):
        for statement in queries.forget(chunk):
            conn.execute(statement)


def export(conn: Connection, contact_ids: Sequence[str]) -> dict[str, Any]:
    """The person's lead record and activities (GDPR access)."""
    leads, activities = queries.export(contact_ids)
    return {
        "crm_lead": [dict(row._mapping) for row in conn.execute(leads)],
        "crm_activities": [dict(row._mapping) for row in conn.execute(activities)],
    }


def status_counts(conn: Connection) -> dict[str, int]:
    """How many leads hold each status (statuses without a lead are left out)."""
    return {row.status: int(row.n) for row in conn.execute(queries.LEAD_STATUS_COUNTS)}
