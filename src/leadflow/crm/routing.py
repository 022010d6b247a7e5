"""Routing: which user owns a lead once it qualifies.

Business rules:

- **Rules** run by ascending ``position`` (then id); a rule's condition is a rule of the segment
  language (on the contact, its company, its score, its source …), evaluated in SQL for the whole
  batch at once (:func:`leadflow.segments.service.matching`); a rule with no condition matches every
  lead. The first rule that matches a lead *and can give it an owner* picks it: a rule naming a user
  needs that user active (and, with ``respect_working_hours``, inside their working hours at that
  instant in their own zone); a rule naming a team needs one such member with capacity above 0.
  A lead no rule can place goes to the **fallback owner** (when set and active), else stays
  unassigned (the SLA check assigns it to the fallback later and records a breach).
- **Within a team**, a weighted round-robin by capacity: each lead goes to the member with the
  smallest ``(assigned + 1) / capacity`` (ties: fewer assigned, then the smaller id), where
  ``assigned`` is what this team's rotation gave that user so far (``crm_routing_counts``). Over time
  each member gets leads in proportion to their capacity, deterministically; a member skipped for
  being away catches up, never beyond their share.
- **Race-free and idempotent**: only leads without an owner are routed, locked in id order (rows
  another worker is routing are skipped, ``SKIP LOCKED``) and assigned by an ``UPDATE`` guarded by
  ``owner_id IS NULL``; the team's row is locked (``FOR UPDATE``) while its rotation is read and
  counted, so two workers never assign one lead twice and never skew the rotation. SQLite has one
  writer. Routing a lead that has an owner changes nothing.
- Each assignment is audited and is a ``lead.owner_assigned`` event (``{"from": null, "to", "rule_id"}``),
  and starts the lead's first-response clock if it qualified (:mod:`leadflow.crm.sla`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import service as contacts
from leadflow.crm import hours, leads, people, queries
from leadflow.crm.routing_schemas import (
    Routed,
    RoutingConfig,
    RoutingConfigFields,
    Rule,
    RuleCreate,
    RuleFields,
)
from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import on_commit
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.kernel.facts import ContactsTouched
from leadflow.kernel.ids import new_id
from leadflow.segments import service as segments

CONFIG_ID = "default"
DEFAULTS = RoutingConfig(
    fallback_owner_id=None,
    assign_within_seconds=5 * 60,
    first_response_within_seconds=2 * 3600,
    escalate_after_seconds=2 * 3600,
)
ACTOR = "routing"
ENTITY_RULE = "crm_routing_rule"
MQL = "mql"


# ---- configuration ----------------------------------------------------------------------------------


def config(conn: Connection) -> RoutingConfig:
    row = conn.execute(queries.CONFIG, {"config_id": CONFIG_ID}).first()
    return DEFAULTS if row is None else RoutingConfig.model_validate(row, from_attributes=True)


def get_config(ctx: AppContext) -> RoutingConfig:
    with ctx.db.read() as conn:
        return config(conn)


def set_config(ctx: AppContext, data: RoutingConfigFields, *, actor: str) -> RoutingConfig:
    """Change the fallback owner (an active user, or null) and the SLA durations."""
    given = data.model_dump(exclude_unset=True)
    with ctx.db.write() as conn:
        if given.get("fallback_owner_id") is not None:
            people.check_owner(conn, given["fallback_owner_id"])
        values = {**config(conn).model_dump(), **given, "id": CONFIG_ID, "updated_at": ctx.clock.now()}
        conn.execute(queries.save_config(conn.dialect.name, values))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.routing_config_updated",
            entity_type="crm_config",
            entity_id=CONFIG_ID,
            data=data.model_dump(mode="json", exclude_unset=True),
        )
        return config(conn)


# ---- rules ------------------------------------------------------------------------------------------


def _rule_row(conn: Connection, rule_id: str) -> Any:
    row = conn.execute(queries.RULE, {"rule_id": rule_id}).first()
    if row is None:
        raise NotFound(f"no routing rule {rule_id}", code="routing_rule_not_found")
    return row


def _checked(conn: Connection, values: dict[str, Any], before: Any = None) -> dict[str, Any]:
    """The rule's values validated: a condition of the segment language, exactly one target that
    exists (a team, or a user)."""
    for name in ("name", "position", "respect_working_hours", "active"):
        if name in values and values[name] is None:
            raise Invalid(f"{name} cannot be null", code=f"invalid_{name}")
    if "name" in values:
        values["name"] = values["name"].strip()
    if values.get("condition") is not None:
        values["condition"] = segments.dump_rule(segments.parse_rule(values["condition"], root="condition"))
    team_id = values["team_id"] if "team_id" in values else getattr(before, "team_id", None)
    user_id = values["user_id"] if "user_id" in values else getattr(before, "user_id", None)
    if (team_id is None) == (user_id is None):
        raise Invalid("a routing rule targets exactly one of team_id and user_id", code="invalid_target")
    if (
        "team_id" in values
        and team_id is not None
        and conn.execute(queries.TEAM, {"team_id": team_id}).first() is None
    ):
        raise Invalid(f"no team {team_id}", code="team_not_found")
    if (
        "user_id" in values
        and user_id is not None
        and conn.execute(queries.USER, {"user_id": user_id}).first() is None
    ):
        raise Invalid(f"no user {user_id}", code="user_not_found")
    return values


def create_rule(ctx: AppContext, data: RuleCreate, *, actor: str) -> Rule:
    now, rule_id = ctx.clock.now(), new_id()
    with ctx.db.write() as conn:
        values = _checked(conn, data.model_dump(exclude_unset=True))
        if values.get("position") is None:
            values["position"] = int(conn.execute(queries.NEXT_POSITION).scalar_one())
        row = {
            "condition": None,
            "team_id": None,
            "user_id": None,
            "respect_working_hours": False,
            "active": True,
            **values,
            "id": rule_id,
            "created_at": now,
            "updated_at": now,
        }
        conn.execute(queries.INSERT_RULE, row)
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.routing_rule_created",
            entity_type=ENTITY_RULE,
            entity_id=rule_id,
            data=data.model_dump(mode="json"),
        )
        return Rule.model_validate(_rule_row(conn, rule_id), from_attributes=True)


def list_rules(ctx: AppContext) -> list[Rule]:
    with ctx.db.read() as conn:
        return [Rule.model_validate(row, from_attributes=True) for row in conn.execute(queries.RULES)]


def get_rule(ctx: AppContext, rule_id: str) -> Rule:
    with ctx.db.read() as conn:
        return Rule.model_validate(_rule_row(conn, rule_id), from_attributes=True)


def update_rule(ctx: AppContext, rule_id: str, data: RuleFields, *, actor: str) -> Rule:
    with ctx.db.write() as conn:
        before = _rule_row(conn, rule_id)
        values = _checked(conn, data.model_dump(exclude_unset=True), before)
        conn.execute(queries.change_rule(rule_id, {**values, "updated_at": ctx.clock.now()}))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.routing_rule_updated",
            entity_type=ENTITY_RULE,
            entity_id=rule_id,
            data=data.model_dump(mode="json", exclude_unset=True),
        )
        return Rule.model_validate(_rule_row(conn, rule_id), from_attributes=True)


def delete_rule(ctx: AppContext, rule_id: str, *, actor: str) -> None:
    with ctx.db.write() as conn:
        _rule_row(conn, rule_id)
        conn.execute(queries.DELETE_RULE, {"rule_id": rule_id})
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="crm.routing_rule_deleted",
            entity_type=ENTITY_RULE,
            entity_id=rule_id,
        )


# ---- the rotation -----------------------------------------------------------------------------------


def _available(user: Any, respect_hours: bool, now: datetime) -> bool:
    if not user.active or user.capacity <= 0:
        return False
    return not respect_hours or hours.is_working(user.working_hours, user.timezone, now)


def pick(members: Sequence[Any], count: int) -> list[str]:
    """``count`` owners from a team's available ``members`` (``id``, ``capacity``, ``assigned``), by the
    weighted round-robin of the module's docstring."""
    assigned = {member.id: int(member.assigned) for member in members}
    capacity = {member.id: int(member.capacity) for member in members}
    chosen = []
    for _ in range(count):
        user = min(assigned, key=lambda uid: (Fraction(assigned[uid] + 1, capacity[uid]), assigned[uid], uid))
        assigned[user] += 1
        chosen.append(user)
    return chosen


def _team_owners(conn: Connection, team_id: str, count: int, respect_hours: bool, now: datetime) -> list[str]:
    """Owners for ``count`` leads from this team's rotation, counted (the team's row stays locked until
    the caller's transaction ends); none when no member is available."""
    conn.execute(queries.LOCK_TEAM, {"team_id": team_id})
    members = [
        member
        for member in conn.execute(queries.TEAM_MEMBERS, {"team_id": team_id})
        if not respect_hours or hours.is_working(member.working_hours, member.timezone, now)
    ]
    if not members:
        return []
    owners = pick(members, count)
    counts = Counter(owners)
    conn.execute(
        queries.count_assigned(conn.dialect.name),
        [{"team": team_id, "user": user, "n": n} for user, n in sorted(counts.items())],
    )
    return owners


def route(
    conn: Connection, ctx: AppContext, contact_ids: Sequence[str], *, actor: str = ACTOR
) -> list[Routed]:
    """Give an owner to those of ``contact_ids`` that are leads without one (see the module's
    docstring), in the caller's transaction; the assignments made."""
    now = ctx.clock.now()
    remaining = list(conn.execute(queries.unowned_leads(sorted(set(contact_ids)))).scalars())
    plan: dict[str, tuple[str, str | None]] = {}
    for rule in conn.execute(queries.ACTIVE_RULES).all():
        if not remaining:
            break
        if rule.condition is None:
            matched = list(remaining)
        else:
            found = segments.matching(conn, rule.condition, remaining, now)
            matched = [contact_id for contact_id in remaining if contact_id in found]
        if not matched:
            continue
        if rule.user_id is not None:
            user = conn.execute(queries.USER, {"user_id": rule.user_id}).first()
            owners = (
                [rule.user_id] * len(matched)
                if user and _available(user, rule.respect_working_hours, now)
                else []
            )
        else:
            owners = _team_owners(conn, rule.team_id, len(matched), rule.respect_working_hours, now)
        for contact_id, owner in zip(matched, owners, strict=False):
            plan[contact_id] = (owner, rule.id)
        remaining = [contact_id for contact_id in remaining if contact_id not in plan]
    fallback = config(conn).fallback_owner_id
    if remaining and fallback is not None:
        user = conn.execute(queries.USER, {"user_id": fallback}).first()
        if user is not None and user.active:
            plan |= dict.fromkeys(remaining, (fallback, None))
    return apply(conn, ctx, plan, now, actor=actor)


def apply(
    conn: Connection, ctx: AppContext, plan: dict[str, tuple[str, str | None]], now: datetime, *, actor: str
) -> list[Routed]:
    """Assign each lead of ``plan`` (``contact_id → (owner, rule_id)``), locked and without an owner,
    audited, as ``lead.owner_assigned`` events, and stamp their SLA clocks."""
    if not plan:
        return []
    items = sorted(plan.items())
    conn.execute(queries.ASSIGN_UNOWNED, [{"lead": c, "owner": owner, "now": now} for c, (owner, _) in items])
    details = [(c, {"from": None, "to": owner, "rule_id": rule}) for c, (owner, rule) in items]
    audit.record_many(
        conn, ctx.clock, actor=actor, action=leads.OWNER_ASSIGNED, entity_type="contact", items=details
    )
    events.emit_many(
        conn, [(c, leads.OWNER_ASSIGNED, data, f"lead-owner:{new_id()}") for c, data in details], now
    )
    stamp(conn, {c: owner for c, (owner, _) in items}, now)
    on_commit(conn, lambda: ctx.signals.announce(events.CHANNEL))
    return [Routed(contact_id=c, owner_id=owner, rule_id=rule) for c, (owner, rule) in items]


def stamp(conn: Connection, owners: dict[str, str], now: datetime) -> None:
    """The first response of these qualified leads is due ``first_response_within`` of their owner's
    working hours after ``now`` (leads without an SLA clock, or already stamped, are left alone)."""
    if not owners:
        return
    within = timedelta(seconds=config(conn).first_response_within_seconds)
    users = {row.id: row for row in conn.execute(queries.users_by_ids(sorted(set(owners.values()))))}
    conn.execute(
        queries.STAMP_ASSIGNED,
        [
            {
                "lead": contact_id,
                "owner": owner,
                "at": now,
                "due": hours.add_working(users[owner].working_hours, users[owner].timezone, now, within),
            }
            for contact_id, owner in sorted(owners.items())
        ],
    )


# ---- when a lead qualifies, and on demand -----------------------------------------------------------


def _qualifies(properties: Any) -> bool:
    """A stage change that reaches ``mql`` (or jumps past it) from below."""
    if not properties:
        return False
    before, after = properties.get("from"), properties.get("to")
    if not isinstance(after, str) or after not in contacts.STAGES:
        return False
    rank = contacts.stage_rank(MQL)
    return contacts.stage_rank(after) >= rank and (
        not isinstance(before, str) or before not in contacts.STAGES or contacts.stage_rank(before) < rank
    )


def on_qualified(ctx: AppContext) -> Callable[[Connection, ContactsTouched], None]:
    """The pipeline's handler: leads that reached MQL in this batch start their SLA clock and are
    routed, in the batch's transaction (subscribed after the CRM has made them leads)."""

    def handle(conn: Connection, message: ContactsTouched) -> None:
        qualified = sorted(
            {
                event.contact_id
                for event in message.events
                if event.event == leads.STAGE_CHANGED and _qualifies(event.properties)
            }
        )
        if not qualified:
            return
        now = ctx.clock.now()
        conn.execute(queries.qualify(conn.dialect.name), [{"lead": c, "at": now} for c in qualified])
        route(conn, ctx, qualified)

    return handle


def route_lead(ctx: AppContext, email: str, *, actor: str) -> Routed:
    """``POST /leads/{email}/route``: route this lead now (made a lead if it is not one); a lead that
    has an owner keeps it and is answered as it is."""
    with ctx.db.write() as conn:
        contact_id = leads.contact_of(conn, email)
        leads.ensure(conn, contact_id, ctx.clock.now())
        done = route(conn, ctx, [contact_id], actor=actor)
        if done:
            return done[0]
        return Routed(contact_id=contact_id, owner_id=leads.read(conn, contact_id).owner_id, rule_id=None)
