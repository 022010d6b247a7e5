"""SLAs on qualified leads: assigned in time, answered in time, escalated when not.

Business rules (durations in ``crm_config``, see :mod:`leadflow.crm.routing`; defaults 5 min, 2 h, 2 h):

- A lead's SLA clock starts when it qualifies (reaches MQL): ``qualified_at``.
- **Assignment**: a lead still without an owner ``assign_within`` after qualifying is given the
  fallback owner (guarded, like any routing) and an assignment breach is recorded
  (``assign_breached_at``), once; with no fallback owner the breach is still recorded.
- **First response**: once assigned (by routing or by a person), the first response is due
  ``first_response_within`` of the *owner's* working hours later (:mod:`leadflow.crm.hours`). The
  response is the lead's ``first_response_at`` (a logged call, email or meeting, or its status leaving
  ``new``). Unanswered at the due time → breach: the owner is alerted, by email (the shipped template
  ``crm-sla-breached``) and by the event ``lead.sla_breached`` (webhooks deliver it).
- **Escalation**: still unanswered ``escalate_after`` more working hours of the owner after the alert →
  the owner's team lead is told (email ``crm-sla-escalated`` and the event ``lead.sla_escalated``); with
  no team lead, only the event.
- Each alert and escalation happens exactly once: the check locks the due clocks (``SKIP LOCKED``:
  workers share the work), and sets the state column in the same transaction as the email in the
  outbox and the event, guarded by that column being null; emails and events have stable keys too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, get_args

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.crm import hours, queries, routing
from leadflow.crm.routing_schemas import Sla, SlaOwnerSummary, SlaState
from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import on_commit
from leadflow.kernel.errors import Conflict, Invalid
from leadflow.kernel.facts import ContactsErased, ContactsMerged
from leadflow.messaging import service as messaging

BREACHED, ESCALATED = "lead.sla_breached", "lead.sla_escalated"
BREACH_TEMPLATE, ESCALATION_TEMPLATE = "crm-sla-breached", "crm-sla-escalated"
BATCH = 500
TEMPLATES = (
    {
        "key": BREACH_TEMPLATE,
        "name": "CRM: a lead you own waits for its first response",
        "kind": "transactional",
        "subject": "Response overdue: {{ contact.email }}",
        "html": (
            "<p>Hello {{ vars.owner_name }},</p>"
            "<p>the lead <strong>{{ contact.email }}</strong> was due a first response by"
            " {{ vars.due_at }} (UTC) and has none yet. Please call, email or meet them, or update"
            " their status.</p>"
        ),
    },
    {
        "key": ESCALATION_TEMPLATE,
        "name": "CRM: a lead of your team is still unanswered",
        "kind": "transactional",
        "subject": "Escalation: {{ contact.email }} still unanswered",
        "html": (
            "<p>Hello {{ vars.lead_name }},</p>"
            "<p>the lead <strong>{{ contact.email }}</strong>, owned by {{ vars.owner_name }}, was alerted"
            " as overdue and still has no first response.</p>"
        ),
    },
)


@dataclass(frozen=True)
class Checked:
    """What one SLA check did."""

    fallback_assigned: int = 0
    assignment_breaches: int = 0
    stamped: int = 0
    alerted: int = 0
    escalated: int = 0


def install_templates(ctx: AppContext, *, actor: str = routing.ACTOR) -> None:
    """The shipped alert emails, unless templates with their keys exist (perhaps edited)."""
    with ctx.db.read() as conn:
        present = set(messaging.template_ids(conn, [t["key"] for t in TEMPLATES]))
    for template in TEMPLATES:
        if template["key"] not in present:
            # created meanwhile by another worker: answered as a conflict, or by the unique key
            with contextlib.suppress(Conflict, sa_exc.IntegrityError):
                messaging.create_template(ctx, messaging.TemplateCreate(**template), actor=actor)


def check(ctx: AppContext) -> Checked:
    """The periodic SLA check (the worker's ``crm.sla`` task): each step a bounded, locked batch in its
    own transaction."""
    install_templates(ctx)
    with ctx.db.write() as conn:
        fallback, breaches = _assignment_breaches(conn, ctx)
    with ctx.db.write() as conn:
        stamped = _stamp_assigned(conn, ctx)
    with ctx.db.write() as conn:
        alerted = _alerts(conn, ctx)
    with ctx.db.write() as conn:
        escalated = _escalations(conn, ctx)
    return Checked(fallback, breaches, stamped, alerted, escalated)


def _assignment_breaches(conn: Connection, ctx: AppContext) -> tuple[int, int]:
    now = ctx.clock.now()
    conf = routing.config(conn)
    late = list(
        conn.execute(
            queries.unassigned_overdue(now - timedelta(seconds=conf.assign_within_seconds), BATCH)
        ).scalars()
    )
    if not late:
        return 0, 0
    assigned = 0
    owner = conf.fallback_owner_id
    user = conn.execute(queries.USER, {"user_id": owner}).first() if owner else None
    if owner is not None and user is not None and user.active:
        unowned = list(conn.execute(queries.unowned_leads(late)).scalars())
        assigned = len(
            routing.apply(conn, ctx, dict.fromkeys(unowned, (owner, None)), now, actor=routing.ACTOR)
        )
    conn.execute(queries.MARK_ASSIGN_BREACH, [{"lead": contact_id, "at": now} for contact_id in late])
    audit.record_many(
        conn,
        ctx.clock,
        actor=routing.ACTOR,
        action="crm.sla_assignment_breached",
        entity_type="contact",
        items=[(contact_id, {"fallback_owner_id": owner}) for contact_id in late],
    )
    return assigned, len(late)


def _stamp_assigned(conn: Connection, ctx: AppContext) -> int:
    """Clocks of leads a person assigned: the first response is due from now."""
    found = {row.contact_id: row.owner_id for row in conn.execute(queries.unstamped(BATCH))}
    routing.stamp(conn, found, ctx.clock.now())
    return len(found)


def _alerts(conn: Connection, ctx: AppContext) -> int:
    now = ctx.clock.now()
    rows = conn.execute(queries.response_overdue(now, BATCH)).all()
    if not rows:
        return 0
    after = timedelta(seconds=routing.config(conn).escalate_after_seconds)
    conn.execute(
        queries.MARK_ALERTED,
        [
            {
                "lead": r.contact_id,
                "at": now,
                "due": hours.add_working(r.working_hours, r.timezone, now, after),
            }
            for r in rows
        ],
    )
    emails = [
        {
            "key": f"crm-sla-breached:{r.contact_id}",
            "kind": "internal",
            "contact_id": r.contact_id,
            "to_address": r.email,
            "template": BREACH_TEMPLATE,
            "context": {"vars": {"owner_name": r.name, "due_at": r.first_response_due_at.isoformat()}},
        }
        for r in rows
    ]
    messaging.enqueue_many(conn, ctx, emails, now)
    details = [
        (r.contact_id, {"owner_id": r.owner_id, "due_at": r.first_response_due_at.isoformat()}) for r in rows
    ]
    events.emit_many(conn, [(c, BREACHED, data, f"crm-sla-breached:{c}") for c, data in details], now)
    audit.record_many(
        conn, ctx.clock, actor=routing.ACTOR, action=BREACHED, entity_type="contact", items=details
    )
    on_commit(conn, lambda: ctx.signals.announce(events.CHANNEL))
    return len(rows)


def _escalations(conn: Connection, ctx: AppContext) -> int:
    now = ctx.clock.now()
    rows = conn.execute(queries.escalation_due(now, BATCH)).all()
    if not rows:
        return 0
    conn.execute(queries.MARK_ESCALATED, [{"lead": r.contact_id, "at": now} for r in rows])
    emails = [
        {
            "key": f"crm-sla-escalated:{r.contact_id}",
            "kind": "internal",
            "contact_id": r.contact_id,
            "to_address": r.chief_email,
            "template": ESCALATION_TEMPLATE,
            "context": {"vars": {"lead_name": r.chief_name, "owner_name": r.owner_name or ""}},
        }
        for r in rows
        if r.chief_email
    ]
    messaging.enqueue_many(conn, ctx, emails, now)
    details = [(r.contact_id, {"owner_id": r.owner_id, "team_lead_id": r.chief_id}) for r in rows]
    events.emit_many(conn, [(c, ESCALATED, data, f"crm-sla-escalated:{c}") for c, data in details], now)
    audit.record_many(
        conn, ctx.clock, actor=routing.ACTOR, action=ESCALATED, entity_type="contact", items=details
    )
    on_commit(conn, lambda: ctx.signals.announce(events.CHANNEL))
    return len(rows)


# ---- reading ----------------------------------------------------------------------------------------


def _view(row: Any) -> Sla:
    values = dict(row._mapping)
    values["owner_id"] = values.pop("lead_owner_id")
    return Sla.model_validate(values)


def listing(
    ctx: AppContext, *, owner_id: str | None, state: str | None, after: str | None, limit: int
) -> list[Sla]:
    if state is not None and state not in get_args(SlaState):
        raise Invalid(
            f"unknown SLA state {state!r}; use one of {', '.join(get_args(SlaState))}", code="invalid_state"
        )
    with ctx.db.read() as conn:
        query = queries.sla_page(owner_id=owner_id, state=state, after=after, limit=limit)
        return [_view(row) for row in conn.execute(query)]


def summary(ctx: AppContext, since: datetime, until: datetime) -> list[SlaOwnerSummary]:
    """Per owner, leads qualified in ``[since, until)`` and their breaches."""
    if since >= until:
        raise Invalid("since must be before until", code="invalid_range")
    with ctx.db.read() as conn:
        return [
            SlaOwnerSummary.model_validate(row, from_attributes=True)
            for row in conn.execute(queries.sla_summary(since, until))
        ]


# ---- merges, erasure, export ------------------------------------------------------------------------


def on_contacts_merged(conn: Connection, message: ContactsMerged) -> None:
    """A merged contact's SLA clock goes (the survivor's lead keeps its own)."""
    pairs = [{"loser": loser} for loser, _ in message.pairs]
    if pairs:
        conn.execute(queries.DROP_SLA, pairs)


def on_contacts_erased(conn: Connection, message: ContactsErased) -> None:
    if message.contact_ids:
        conn.execute(queries.forget_sla(list(message.contact_ids)))


def export(conn: Connection, contact_ids: Sequence[str]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in conn.execute(queries.sla_of(contact_ids))]
