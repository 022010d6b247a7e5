"""What each step type does, for a whole group of runs at the same step at once (set-based).

A handler receives the items standing at one step of one journey version and answers an
:class:`Outcome` for each: go on to a step, wait longer at this one, end the run, or fail (retried).
Side effects go to outboxes (``messages``, ``webhook_deliveries``) keyed by the item's idempotency key,
in the caller's transaction. The CRM steps are in :mod:`leadflow.journeys.crm_steps`; what handlers
answer and share, in :mod:`leadflow.journeys.outcomes`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts
from leadflow.contacts.service import ProfileBatch, ProfileChanges
from leadflow.crm import service as crm
from leadflow.events import service as events
from leadflow.journeys import crm_steps, definitions, timing
from leadflow.journeys.outcomes import (
    Handler,
    Outcome,
    advance,
    end,
    fail,
    hold,
    liquid_context,
    message_row,
    render_each,
)
from leadflow.journeys.runs import Item, zones
from leadflow.kernel.brand import sales_address
from leadflow.kernel.context import AppContext
from leadflow.messaging import service as messaging
from leadflow.segments import service as segments
from leadflow.webhooks import service as webhooks

PROFILE_RETRY = timedelta(seconds=1)
__all__ = ["HANDLERS", "Handler", "Outcome", "advance", "end", "fail", "hold"]


def send_email(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Queue the email in the outbox. Quiet hours (contact's time zone) hold the step until they end;
    over the frequency cap the email is recorded as suppressed (``frequency_capped``) and the run goes
    on, as it does after any email."""
    step: definitions.SendEmail = items[0].step
    settings = items[0].journey.definition.settings
    outcomes: list[Outcome] = []
    ready = items
    if settings.quiet_hours is not None:
        tz = zones(conn, [item.contact_id for item in items])
        ready = []
        for item in items:
            zone = timing.zone(tz.get(item.contact_id), ctx.settings.default_timezone)
            until = timing.quiet_until(now, zone, settings.quiet_hours)
            if until is None:
                ready.append(item)
            else:
                outcomes.append(hold(item, until, detail={"held": "quiet_hours"}))
    marketing = settings.kind == "marketing"
    capped = (
        messaging.over_cap(conn, ctx, [item.contact_id for item in ready], now)
        if marketing and settings.frequency_cap
        else set()
    )
    rows = [
        message_row(
            item,
            now,
            kind=settings.kind,
            template=step.template,
            topic=settings.topic,
            status="suppressed" if item.contact_id in capped else "queued",
            error="frequency_capped" if item.contact_id in capped else None,
        )
        for item in ready
    ]
    messaging.enqueue_many(conn, ctx, rows, now)
    for item in ready:
        outcomes.append(advance(item, step.next, "capped" if item.contact_id in capped else None))
    return outcomes


def notify_owner(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Email the lead's owner — the address of the CRM user who owns the lead, when active — through
    the messaging outbox as an internal notice (about the contact, not to them: no consent, topic or
    frequency cap applies).

    Without such an owner (no lead, no owner, or an inactive one) the notice goes, in this order, to the
    contact's own ``owner_id`` when it is an email address (contacts imported with one), the step's
    ``fallback``, the sales inbox (:func:`leadflow.kernel.brand.sales_address`); the step's branch is
    then ``fallback``. With none of them the notice is recorded as failed with the reason, the branch is
    ``no_owner``, and the run goes on."""
    step: definitions.NotifyOwner = items[0].step
    ids = [item.contact_id for item in items]
    owners = crm.owner_emails(conn, ids)
    legacy = {c.id: c.owner_id for c in contacts.by_ids(conn, ids) if c.id not in owners}
    fallback = step.fallback or sales_address(ctx.settings)
    rows, outcomes = [], []
    for item in items:
        owner = owners.get(item.contact_id)
        other = legacy.get(item.contact_id)
        address = owner["email"] if owner else (other if other and "@" in other else fallback)
        context = {**liquid_context(item), **({"owner": owner} if owner else {})}
        rows.append(
            message_row(
                item,
                now,
                context=context,
                kind="internal",
                template=step.template,
                topic=None,
                to_address=address,
                status="queued" if address else "failed",
                error=None if address else "the lead has no owner email and the step no fallback",
            )
        )
        outcomes.append(advance(item, step.next, None if owner else "fallback" if address else "no_owner"))
    messaging.enqueue_many(conn, ctx, rows, now)
    return outcomes


def webhook(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """POST the contact, the triggering event and ``data`` through the signed webhook outbox.

    Every string of ``data`` is Liquid, rendered for each contact with an email's variables
    (:mod:`leadflow.messaging.build.liquid_data`). A value that cannot be rendered (a missing variable, a
    template limit) fails that contact's step with the reason, like any failing step: it is retried
    with the engine's backoff (the profile may have gained the value by then), then the step and the run
    are ``failed``; nothing is queued for that contact meanwhile, and the other contacts go on.
    """
    step: definitions.Webhook = items[0].step
    found = {c.id: c for c in contacts.by_ids(conn, [item.contact_id for item in items])}
    message_ids = _message_ids(conn, items)
    each = render_each(conn, ctx, items, step.data, f"webhook {step.id} data")
    rows, outcomes = [], []
    for item in items:
        contact = found.get(item.contact_id)
        rendered = each[item.key]
        if isinstance(rendered, str):
            outcomes.append(fail(item, rendered))
            continue
        payload = {
            "journey": {"id": item.journey.journey_id, "key": item.journey.key, "name": item.journey.name},
            "run_id": item.run_id,
            "step": item.step_id,
            "contact": contact.model_dump(mode="json") if contact else {"id": item.contact_id},
            "event": _trigger_event(item.trigger, message_ids),
            "data": rendered,
        }
        rows.append(
            {
                "key": f"j:{item.key}",
                "url": step.url,
                "event": step.event,
                "payload": payload,
                "at": now,
                "contact_id": item.contact_id,
                "journey_id": item.journey.journey_id,
                "run_id": item.run_id,
            }
        )
        outcomes.append(advance(item, step.next))
    webhooks.enqueue_many(conn, ctx, rows)
    return outcomes


def _message_ids(conn: Connection, items: list[Item]) -> dict[int, str]:
    """The ``messageId`` of each triggering event still stored, in one query."""
    wanted = sorted({i.trigger["event_id"] for i in items if isinstance(i.trigger.get("event_id"), int)})
    return events.message_ids(conn, wanted)


def _trigger_event(trigger: dict[str, Any] | None, message_ids: dict[int, str]) -> dict[str, Any]:
    """What entered the contact: the event (``leadflow.segment_entered`` …, or ``schedule`` and
    ``anniversary`` for the triggers that are not events)."""
    trigger = trigger or {}
    event_id = trigger.get("event_id")
    return {
        "name": trigger.get("event"),
        "properties": trigger.get("properties") or {},
        "timestamp": trigger.get("timestamp"),
        "message_id": message_ids.get(event_id) if isinstance(event_id, int) else None,
    }


def branch(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    step: definitions.Branch = items[0].step
    matched = segments.matching(conn, step.condition, [item.contact_id for item in items], now)
    return [
        advance(item, step.then, "then")
        if item.contact_id in matched
        else advance(item, step.otherwise, "else")
        for item in items
    ]


def split(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    step: definitions.Split = items[0].step
    outcomes = []
    for item in items:
        name, target = timing.split_path(item.journey.journey_id, step, item.contact_id)
        if name == "holdout":
            outcomes.append(end(item, "exited", "holdout", branch=name, variant=name))
        else:
            outcomes.append(advance(item, target, name, variant=name))
    return outcomes


def passing(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """``wait`` and ``wait_for_time``: the waiting happened before the step became due."""
    return [advance(item, item.step.next) for item in items]


def wait_until_time(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Reached: render ``at`` for each contact, shift it by ``offset`` and hold the step until then
    (the moment is kept in the step's detail, in UTC); due again: go on. A moment already past goes on
    at once, to ``next`` or with ``skip_if_past`` to ``on_past`` (branch ``past`` either way). A value
    that cannot be rendered or is not an ISO-8601 time with an offset fails the step with the reason
    (retried on the engine's schedule, then the run fails: never a loop)."""
    step: definitions.WaitUntilTime = items[0].step
    waited = [item for item in items if (item.detail or {}).get("until")]
    outcomes = [advance(item, step.next) for item in waited]
    fresh = [item for item in items if item not in waited]
    rendered = render_each(conn, ctx, fresh, {"at": step.at}, f"wait_until_time {step.id}") if fresh else {}
    for item in fresh:
        value = rendered[item.key]
        try:
            if isinstance(value, str):
                raise ValueError(value)
            moment = timing.moment(value["at"]) + timing.shift(step.offset)
        except ValueError as exc:
            outcomes.append(fail(item, f"wait_until_time {step.id}: {exc}"))
            continue
        if moment > now:
            outcomes.append(hold(item, moment, detail={"until": moment.isoformat()}))
        else:
            outcomes.append(advance(item, step.on_past if step.skip_if_past else step.next, "past"))
    return outcomes


def wait_until(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Due because the event arrived (``branch`` set by the pipeline) or because the timeout passed."""
    step: definitions.WaitUntil = items[0].step
    return [
        advance(item, step.on_event, "event")
        if item.branch == "event"
        else advance(item, step.on_timeout, "timeout")
        for item in items
    ]


def goal(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Converted if the goal event happened since the contact entered (or arrives within ``within``)."""
    step: definitions.GoalStep = items[0].step
    done = _did_since(conn, step, items, now)
    outcomes = []
    for item in items:
        if item.branch == "event" or item.run_id in done:
            outcomes.append(end(item, "converted", "goal", branch="converted"))
        elif step.within and not (item.detail or {}).get("waited"):
            outcomes.append(
                hold(item, now + segments.parse_duration(step.within), step.event, detail={"waited": True})
            )
        else:
            outcomes.append(advance(item, step.next, "not_converted"))
    return outcomes


def _did_since(
    conn: Connection, condition: definitions.EventCondition, items: list[Item], now: datetime
) -> set[str]:
    earliest = min(item.entered_at for item in items)
    ids = [i.contact_id for i in items]
    last = segments.last_occurrences(conn, condition.behaviour(), ids, earliest, now)
    return {
        item.run_id for item in items if item.contact_id in last and last[item.contact_id] >= item.entered_at
    }


def exit_step(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    return [end(item, "completed", "exit step") for item in items]


def _profile_locked(conn: Connection, items: list[Item], now: datetime) -> list[Outcome] | None:
    """Profile changes need the profile lock; a worker never waits for it while holding step rows (the
    event processor may be waiting for those rows): it tries, and if busy holds the steps a moment."""
    if contacts.profile_lock(conn, wait=False):
        return None
    return [hold(item, now + PROFILE_RETRY) for item in items]


def change_tags(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    busy = _profile_locked(conn, items, now)
    if busy is not None:
        return busy
    step: definitions.Tags = items[0].step
    ids = [item.contact_id for item in items]
    adding = step.tags if step.type == "add_tag" else []
    removing = step.tags if step.type == "remove_tag" else []
    contacts.change_many(conn, ctx, ids, adding, removing)
    return [advance(item, step.next) for item in items]


def change_profile(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """``update_field`` and ``set_stage`` (forward only unless ``force``), through the profile batch so
    the change is qualified (segments, scoring, stage events) like any other."""
    busy = _profile_locked(conn, items, now)
    if busy is not None:
        return busy
    step = items[0].step
    batch = ProfileBatch(conn, ctx.clock, ctx.bus)
    batch.preload(contact_ids=[item.contact_id for item in items])
    for item in items:
        contact = batch.contact(item.contact_id)
        if contact is not None:
            batch.apply_changes(contact, _changes(step, contact.lifecycle_stage), manual=True)
    contacts.publish_changes(conn, ctx, batch.flush())
    return [advance(item, step.next) for item in items]


def _changes(step: Any, stage: str) -> ProfileChanges:
    if isinstance(step, definitions.SetStage):
        return ProfileChanges(
            lifecycle_stage=step.stage if step.force else contacts.forward(stage, step.stage)
        )
    field: str = step.field
    if field.startswith("traits."):
        return ProfileChanges(traits={field.removeprefix("traits."): step.value})
    return ProfileChanges(**{field: step.value})


HANDLERS: dict[str, Handler] = {
    "send_email": send_email,
    "notify_owner": notify_owner,
    "log_activity": crm_steps.log_activity,
    "set_lead_status": crm_steps.set_lead_status,
    "assign_owner": crm_steps.assign_owner,
    "create_deal": crm_steps.create_deal,
    "move_deal": crm_steps.move_deal,
    "webhook": webhook,
    "branch": branch,
    "split": split,
    "wait": passing,
    "wait_for_time": passing,
    "wait_until": wait_until,
    "wait_until_time": wait_until_time,
    "goal": goal,
    "exit": exit_step,
    "add_tag": change_tags,
    "remove_tag": change_tags,
    "update_field": change_profile,
    "set_stage": change_profile,
}
