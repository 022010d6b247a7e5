"""The CRM steps: ``log_activity``, ``set_lead_status``, ``assign_owner``, ``create_deal`` and
``move_deal``. Each is set-based over its group and idempotent under retry: the CRM change carries the
step's key (:func:`leadflow.journeys.outcomes.step_key`), or finds the change already made."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.crm import service as crm
from leadflow.journeys import definitions
from leadflow.journeys.outcomes import Outcome, actor_of, advance, fail, render_each, step_key
from leadflow.journeys.runs import Item
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.segments import service as segments


def log_activity(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Log the activity on each contact's lead timeline, once per step (keyed by the step's key). A
    subject or body that cannot be rendered fails that contact's step (retried), as in a webhook."""
    step: definitions.LogActivity = items[0].step
    rendered = render_each(conn, ctx, items, step.texts(), f"log_activity {step.id}")
    due = now + segments.parse_duration(step.due) if step.due else None
    entries, outcomes = [], []
    for item in items:
        texts = rendered[item.key]
        if isinstance(texts, str):
            outcomes.append(fail(item, texts))
            continue
        entries.append(
            crm.NewActivity(
                contact_id=item.contact_id,
                kind=step.kind,
                subject=str(texts["subject"]),
                body=str(texts["body"]) or None,
                key=step_key(item),
                due_at=due,
            )
        )
        outcomes.append(advance(item, step.next))
    if entries:
        crm.log_activities(conn, ctx.clock, entries, actor=actor_of(items[0]))
    return outcomes


def set_lead_status(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Set the lead's status; a lead already there is left alone (nothing audited or emitted)."""
    step: definitions.SetLeadStatus = items[0].step
    changes = [crm.StatusChange(item.contact_id, step.status, step.reason, step_key(item)) for item in items]
    changed = {c.contact_id for c in crm.set_statuses(conn, ctx.clock, changes, actor=actor_of(items[0]))}
    return [advance(item, step.next, None if item.contact_id in changed else "unchanged") for item in items]


def assign_owner(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Make the step's user the lead's owner. A user that does not exist or is inactive fails the step
    with the reason (retried: the user may be created or re-activated meanwhile). With ``route`` the
    routing rules pick the owner of a lead that has none (one that has keeps it); a lead no rule or
    fallback owner could take goes on unowned, branch ``unassigned``."""
    step: definitions.AssignOwner = items[0].step
    if step.route:
        owners = crm.route_leads(conn, ctx, [item.contact_id for item in items], actor=actor_of(items[0]))
        return [
            advance(item, step.next, None if item.contact_id in owners else "unassigned") for item in items
        ]
    assert step.user is not None
    try:
        user_id = crm.find_user(conn, step.user)
    except Invalid as exc:
        return [fail(item, str(exc)) for item in items]
    changes = [crm.OwnerChange(item.contact_id, user_id, step_key(item)) for item in items]
    changed = {c.contact_id for c in crm.assign_owners(conn, ctx.clock, changes, actor=actor_of(items[0]))}
    return [advance(item, step.next, None if item.contact_id in changed else "unchanged") for item in items]


def _deal_target(conn: Connection, step: Any, items: list[Item]) -> crm.DealTarget | list[Outcome]:
    """The step's pipeline and stage, or a failure of every item with the reason (retried: the
    pipeline may be restored meanwhile; publishing checked it existed)."""
    try:
        return crm.deal_target(conn, step.pipeline, step.stage, step.reason)
    except Invalid as exc:
        return [fail(item, str(exc)) for item in items]


def create_deal(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Open a deal for each contact (:func:`leadflow.crm.service.open_deals`), keyed by the step's key
    so a retried step opens it once; a contact with an open deal in the pipeline keeps it (branch
    ``exists``). A title, value or currency that cannot be rendered, or is not a value or currency,
    fails that contact's step with the reason."""
    step: definitions.CreateDeal = items[0].step
    target = _deal_target(conn, step, items)
    if isinstance(target, list):
        return target
    rendered = render_each(conn, ctx, items, step.texts(), f"create_deal {step.id}")
    close = (now + segments.parse_duration(step.expected_close)).date() if step.expected_close else None
    outcomes, wanted = [], []
    for item in items:
        texts = rendered[item.key]
        try:
            if isinstance(texts, str):
                raise Invalid(texts)
            value, currency = crm.deal_money(texts["value"], texts["currency"])
            if not str(texts["title"]).strip():
                raise Invalid("the deal's title is empty")
        except Invalid as exc:
            outcomes.append(fail(item, str(exc)))
            continue
        wanted.append(
            (
                item,
                crm.NewDeal(
                    contact_id=item.contact_id,
                    title=str(texts["title"]),
                    value=value,
                    currency=currency,
                    key=step_key(item),
                    at=item.entered_at,
                    expected_close=close,
                ),
            )
        )
    answers = crm.open_deals(conn, ctx, target, [new for _, new in wanted], actor=actor_of(items[0]))
    for item, new in wanted:
        answer = answers[new.key]
        outcomes.append(advance(item, step.next, "exists" if answer == "exists" else None))
    return outcomes


def move_deal(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Move each contact's open deal in the pipeline to the stage (forward only unless ``backwards``);
    branch ``unchanged`` (already there, or further on) or ``no_deal`` (nothing is opened)."""
    step: definitions.MoveDeal = items[0].step
    target = _deal_target(conn, step, items)
    if isinstance(target, list):
        return target
    ids = [item.contact_id for item in items]
    answers = crm.move_deals(conn, ctx, target, ids, backwards=step.backwards, actor=actor_of(items[0]))
    return [
        advance(item, step.next, None if answers[item.contact_id] == "moved" else answers[item.contact_id])
        for item in items
    ]
