"""SLA clocks: qualification, assignment, response due, alerts and escalation (leadflow.crm.sla)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.crm.models import (
    crm_lead_sla,
    crm_leads,
    crm_teams,
    crm_users,
)
from leadflow.kernel.db import Sample, insert_for

_t, _u, _l, _q = crm_teams.c, crm_users.c, crm_leads.c, crm_lead_sla.c


def qualify(dialect: str) -> Any:
    """Start a lead's SLA clock when it qualifies (once: a lead qualifying again keeps its first)."""
    return (
        insert_for(dialect, crm_lead_sla)
        .values(contact_id=sa.bindparam("lead"), qualified_at=sa.bindparam("at"))
        .on_conflict_do_nothing(index_elements=["contact_id"])
    )


#: The owner is known: the response is due (computed in the owner's working hours).
STAMP_ASSIGNED = (
    crm_lead_sla.update()
    .where(_q.contact_id == sa.bindparam("lead"), _q.assigned_at.is_(None))
    .values(
        owner_id=sa.bindparam("owner"),
        assigned_at=sa.bindparam("at"),
        first_response_due_at=sa.bindparam("due"),
    )
)
MARK_ASSIGN_BREACH = (
    crm_lead_sla.update()
    .where(_q.contact_id == sa.bindparam("lead"), _q.assign_breached_at.is_(None))
    .values(assign_breached_at=sa.bindparam("at"))
)
MARK_ALERTED = (
    crm_lead_sla.update()
    .where(_q.contact_id == sa.bindparam("lead"), _q.alerted_at.is_(None))
    .values(
        breached_at=sa.bindparam("at"), alerted_at=sa.bindparam("at"), escalate_due_at=sa.bindparam("due")
    )
)
MARK_ESCALATED = (
    crm_lead_sla.update()
    .where(_q.contact_id == sa.bindparam("lead"), _q.escalated_at.is_(None))
    .values(escalated_at=sa.bindparam("at"))
)
DROP_SLA = crm_lead_sla.delete().where(_q.contact_id == sa.bindparam("loser"))


def sla_of(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(crm_lead_sla).where(_q.contact_id.in_(list(contact_ids))).order_by(_q.contact_id)


def forget_sla(contact_ids: Sequence[str]) -> sa.Delete:
    return crm_lead_sla.delete().where(_q.contact_id.in_(list(contact_ids)))


def unstamped(limit: int) -> sa.Select[Any]:
    """SLA clocks whose lead has an owner the clock has not seen yet (assigned by a person)."""
    return (
        sa.select(_q.contact_id, _l.owner_id)
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .where(_q.assigned_at.is_(None), _l.owner_id.is_not(None))
        .order_by(_q.contact_id)
        .limit(limit)
        .with_for_update(of=crm_lead_sla, skip_locked=True)
    )


def unassigned_overdue(qualified_before: datetime, limit: int) -> sa.Select[Any]:
    """Qualified leads still without an owner when they should have one (each breach recorded once)."""
    return (
        sa.select(_q.contact_id)
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .where(
            _q.assigned_at.is_(None),
            _q.assign_breached_at.is_(None),
            _l.owner_id.is_(None),
            _q.qualified_at <= qualified_before,
        )
        .order_by(_q.contact_id)
        .limit(limit)
        .with_for_update(of=crm_lead_sla, skip_locked=True)
    )


def response_overdue(now: datetime, limit: int) -> sa.Select[Any]:
    """Assigned leads not answered by their due time and not alerted yet, with their current owner."""
    return (
        sa.select(
            _q.contact_id,
            _l.owner_id,
            _q.first_response_due_at,
            _u.email,
            _u.name,
            _u.timezone,
            _u.working_hours,
        )
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .join(crm_users, _u.id == _l.owner_id)
        .where(_q.alerted_at.is_(None), _q.first_response_due_at <= now, _l.first_response_at.is_(None))
        .order_by(_q.contact_id)
        .limit(limit)
        .with_for_update(of=crm_lead_sla, skip_locked=True)
    )


def escalation_due(now: datetime, limit: int) -> sa.Select[Any]:
    """Alerted leads still unanswered after the escalation delay, with the owner's team lead."""
    owner, chief = crm_users.alias("owner"), crm_users.alias("chief")
    return (
        sa.select(
            _q.contact_id,
            _l.owner_id,
            owner.c.name.label("owner_name"),
            owner.c.team_id,
            chief.c.id.label("chief_id"),
            chief.c.email.label("chief_email"),
            chief.c.name.label("chief_name"),
        )
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .outerjoin(owner, owner.c.id == _l.owner_id)
        .outerjoin(crm_teams, _t.id == owner.c.team_id)
        .outerjoin(chief, chief.c.id == _t.lead_user_id)
        .where(
            _q.alerted_at.is_not(None),
            _q.escalated_at.is_(None),
            _q.escalate_due_at <= now,
            _l.first_response_at.is_(None),
        )
        .order_by(_q.contact_id)
        .limit(limit)
        .with_for_update(of=crm_lead_sla, skip_locked=True)
    )


#: An SLA clock's state, most advanced first.
SLA_STATE: sa.ColumnElement[str] = sa.case(
    (_l.first_response_at.is_not(None), "responded"),
    (_q.escalated_at.is_not(None), "escalated"),
    (_q.alerted_at.is_not(None), "breached"),
    (_q.assigned_at.is_(None), "awaiting_assignment"),
    else_="awaiting_response",
)


def sla_page(*, owner_id: str | None, state: str | None, after: str | None, limit: int) -> sa.Select[Any]:
    """SLA clocks with their state and the lead's current owner and first response, by contact id."""
    query = (
        sa.select(
            crm_lead_sla, _l.owner_id.label("lead_owner_id"), _l.first_response_at, SLA_STATE.label("state")
        )
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .order_by(_q.contact_id)
        .limit(limit)
    )
    if owner_id is not None:
        query = query.where(_l.owner_id == owner_id)
    if state is not None:
        query = query.where(SLA_STATE.in_([state]))
    if after is not None:
        query = query.where(_q.contact_id > after)
    return query


def sla_summary(since: datetime, until: datetime) -> sa.Select[Any]:
    """Per owner, the leads that qualified in ``[since, until)`` and their breaches."""
    return (
        sa.select(
            _l.owner_id,
            sa.func.count().label("qualified"),
            sa.func.count(_q.assign_breached_at).label("assignment_breaches"),
            sa.func.count(_q.breached_at).label("response_breaches"),
            sa.func.count(_q.escalated_at).label("escalations"),
            sa.func.count(_l.first_response_at).label("responded"),
        )
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .where(_q.qualified_at >= since, _q.qualified_at < until)
        .group_by(_l.owner_id)
        .order_by(_l.owner_id)
    )


_AT = datetime(2026, 1, 1, tzinfo=UTC)

SAMPLES: list[Sample] = [
    lambda: [qualify(d) for d in ("sqlite", "postgresql")],
    lambda: sla_of(["c1"]),
    lambda: forget_sla(["c1"]),
    lambda: unstamped(10),
    lambda: unassigned_overdue(_AT, 10),
    lambda: response_overdue(_AT, 10),
    lambda: escalation_due(_AT, 10),
    lambda: sla_page(owner_id="u", state="breached", after="c", limit=10),
    lambda: sla_summary(_AT, _AT),
]
