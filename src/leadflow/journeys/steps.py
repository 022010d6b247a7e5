"""What each step type does, for a whole group of runs at the same step at once (set-based).

A handler receives the items standing at one step of one journey version and answers an
:class:`Outcome` for each: go on to a step, wait longer at this one, end the run, or fail (retried).
Side effects go to outboxes (``messages``, ``webhook_deliveries``) keyed by the item's idempotency key,
in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts
from leadflow.contacts.service import ProfileBatch, ProfileChanges
from leadflow.crm import service as crm
from leadflow.events import service as events
from leadflow.journeys import definitions, timing
from leadflow.journeys.runs import Item, zones
from leadflow.kernel.brand import brand, sales_address
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.messaging import service as messaging
from leadflow.segments import service as segments
from leadflow.webhooks import service as webhooks

PROFILE_RETRY = timedelta(seconds=1)


@dataclass
class Outcome:
    item: Item
    kind: str  # next | hold | end | fail
    target: str | None = None
    branch: str | None = None
    due_at: datetime | None = None
    waiting_for: str | None = None
    status: str | None = None
    reason: str | None = None
    detail: dict[str, Any] | None = None
    variant: str | None = None


def advance(item: Item, target: str | None, branch: str | None = None, **extra: Any) -> Outcome:
    return Outcome(item, "next", target=target, branch=branch, **extra)


def hold(item: Item, due_at: datetime, waiting_for: str | None = None, **extra: Any) -> Outcome:
    return Outcome(item, "hold", due_at=due_at, waiting_for=waiting_for, **extra)


def end(item: Item, status: str, reason: str, branch: str | None = None, **extra: Any) -> Outcome:
    return Outcome(item, "end", status=status, reason=reason, branch=branch, **extra)


def fail(item: Item, reason: str) -> Outcome:
    return Outcome(item, "fail", reason=reason)


Handler = Callable[[Connection, AppContext, list[Item], datetime], list[Outcome]]


def _context(item: Item) -> dict[str, Any]:
    """What a template sees besides the contact: the entering event, journey and step variables."""
    step = item.step
    variables = {**item.journey.definition.variables, **getattr(step, "variables", {})}
    return {
        "event": (item.trigger or {}).get("properties") or {},
        "vars": variables,
        "journey": {"id": item.journey.journey_id, "key": item.journey.key, "name": item.journey.name},
    }


def _message(item: Item, now: datetime, **values: Any) -> dict[str, Any]:
    row = {
        "key": f"j:{item.key}",
        "contact_id": item.contact_id,
        "journey_id": item.journey.journey_id,
        "run_id": item.run_id,
        "step_id": item.step_id,
        "context": _context(item),
        "due_at": now,
        "to_address": None,
        "error": None,
    }
    row.update(values)
    return row


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
        _message(
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
        context = {**_context(item), **({"owner": owner} if owner else {})}
        rows.append(
            _message(
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


def _render_each(
    conn: Connection, ctx: AppContext, items: list[Item], data: dict[str, Any], where: str
) -> dict[str, dict[str, Any] | str]:
    """Render ``data`` (Liquid strings) for each item's contact with an email's variables
    (:mod:`leadflow.messaging.build.liquid_data`): the rendered data, or the error text."""
    ids = [item.contact_id for item in items]
    compiled = messaging.compile_data(data, where)
    known = messaging.people(conn, ids) if compiled.sources else {}  # static data needs no variables
    shared = {"brand": brand(ctx.settings).variables(), "contact": None, "company": None}
    rendered: dict[str, dict[str, Any] | str] = {}
    for item in items:
        try:
            values = {**shared, **known.get(item.contact_id, {}), **_context(item)}
            rendered[item.key] = compiled.render(values)
        except messaging.TemplateError as exc:
            rendered[item.key] = str(exc)
    return rendered


def _actor(item: Item) -> str:
    return f"journey:{item.journey.journey_id}"


def _step_key(item: Item) -> str:
    """The idempotency key a CRM change of this step carries (the same in any retry)."""
    return f"journey:{item.key}"


def log_activity(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Log the activity on each contact's lead timeline, once per step (keyed by the step's key). A
    subject or body that cannot be rendered fails that contact's step (retried), as in a webhook."""
    step: definitions.LogActivity = items[0].step
    rendered = _render_each(conn, ctx, items, step.texts(), f"log_activity {step.id}")
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
                key=_step_key(item),
                due_at=due,
            )
        )
        outcomes.append(advance(item, step.next))
    if entries:
        crm.log_activities(conn, ctx.clock, entries, actor=_actor(items[0]))
    return outcomes


def set_lead_status(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Set the lead's status; a lead already there is left alone (nothing audited or emitted)."""
    step: definitions.SetLeadStatus = items[0].step
    changes = [crm.StatusChange(item.contact_id, step.status, step.reason, _step_key(item)) for item in items]
    changed = {c.contact_id for c in crm.set_statuses(conn, ctx.clock, changes, actor=_actor(items[0]))}
    return [advance(item, step.next, None if item.contact_id in changed else "unchanged") for item in items]


def assign_owner(conn: Connection, ctx: AppContext, items: list[Item], now: datetime) -> list[Outcome]:
    """Make the step's user the lead's owner. A user that does not exist or is inactive fails the step
    with the reason (retried: the user may be created or re-activated meanwhile). With ``route`` the
    routing rules pick the owner of a lead that has none (one that has keeps it); a lead no rule or
    fallback owner could take goes on unowned, branch ``unassigned``."""
    step: definitions.AssignOwner = items[0].step
    if step.route:
        owners = crm.route_leads(conn, ctx, [item.contact_id for item in items], actor=_actor(items[0]))
        return [
            advance(item, step.next, None if item.contact_id in owners else "unassigned") for item in items
        ]
    assert step.user is not None
    try:
        user_id = crm.find_user(conn, step.user)
    except Invalid as exc:
        return [fail(item, str(exc)) for item in items]
    changes = [crm.OwnerChange(item.contact_id, user_id, _step_key(item)) for item in items]
    changed = {c.contact_id for c in crm.assign_owners(conn, ctx.clock, changes, actor=_actor(items[0]))}
    return [advance(item, step.next, None if item.contact_id in changed else "unchanged") for item in items]


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
    each = _render_each(conn, ctx, items, step.data, f"webhook {step.id} data")
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
    "log_activity": log_activity,
    "set_lead_status": set_lead_status,
    "assign_owner": assign_owner,
    "webhook": webhook,
    "branch": branch,
    "split": split,
    "wait": passing,
    "wait_for_time": passing,
    "wait_until": wait_until,
    "goal": goal,
    "exit": exit_step,
    "add_tag": change_tags,
    "remove_tag": change_tags,
    "update_field": change_profile,
    "set_stage": change_profile,
}
