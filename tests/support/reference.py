"""A plain-Python evaluator of segment rules: the executable statement of their semantics.

The SQL compiler must agree with it on every rule, contact and event (see the hypothesis tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leadflow.contacts import stages
from leadflow.kernel import isodates
from leadflow.kernel.text import fold
from leadflow.segments import durations, rules
from leadflow.segments.anniversaries import today_pairs

MISSING = object()


@dataclass
class World:
    now: datetime
    contacts: list[dict[str, Any]]
    events: list[dict[str, Any]] = field(default_factory=list)
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    lowest_band: str = "cold"

    def matching(self, rule: Any) -> set[str]:
        return {c["id"] for c in self.contacts if evaluate(rule, c, self)}


def _walk(data: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(data, dict) or key not in data:
            return MISSING
        data = data[key]
    return data


def _raw(ref: Any, contact: dict[str, Any], world: World) -> Any:
    if ref.table == "companies":
        company = world.companies.get(contact.get("company_id") or "")
        if company is None:
            return MISSING
        return _walk(company["traits"], ref.keys) if ref.kind == "json" else company[ref.column]
    if ref.table == "scores":
        score = world.scores.get(contact["id"])
        if ref.column == "band":
            return score["band"] if score else world.lowest_band
        return float(score[ref.column]) if score else 0.0
    if ref.kind == "json":
        return _walk(contact[ref.column], ref.keys)
    return contact[ref.column]


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _instant(value: Any, kind: str) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return isodates.parse(value) if kind == "json" else None


def _month_day(value: Any, kind: str) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%m-%d")
    return isodates.month_day(value) if kind == "json" else None


def _equals(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool):
        return isinstance(value, bool) and value == wanted
    if isinstance(wanted, str):
        return isinstance(value, str) and fold(value) == fold(wanted)
    return _number(value) and value == wanted


def compare(value: Any, op: str, wanted: Any, kind: str, world: World, zone: str | None) -> bool:
    present = value is not MISSING and value is not None
    positive = {"neq": "eq", "not_in": "in", "not_contains": "contains"}
    if op in positive:
        return not compare(value, positive[op], wanted, kind, world, zone)
    if op == "is_set":
        return present
    if op == "is_not_set":
        return not present
    if not present:
        return False
    if op == "eq":
        return _equals(value, wanted)
    if op == "in":
        return any(_equals(value, item) for item in wanted)
    if op in ("contains", "starts_with", "ends_with"):
        if not isinstance(value, str):
            return False
        text, needle = fold(value), fold(wanted)
        return {
            "contains": needle in text,
            "starts_with": text.startswith(needle),
            "ends_with": text.endswith(needle),
        }[op]
    if op in ("gt", "gte", "lt", "lte", "between"):
        if kind == "stage":
            value, wanted = stages.rank(value), (stages.rank(wanted) if op != "between" else wanted)
        elif not _number(value):
            return False
        if op == "between":
            return bool(wanted[0] <= value <= wanted[1])
        return bool(
            {"gt": value > wanted, "gte": value >= wanted, "lt": value < wanted, "lte": value <= wanted}[op]
        )
    if op == "anniversary_today":
        day = _month_day(value, kind)
        return day is not None and (zone or "UTC", day) in set(today_pairs(world.now))
    instant = _instant(value, kind)
    if instant is None:
        return False
    if op == "before":
        return instant < isodates.parse(wanted)  # type: ignore[operator]
    if op == "after":
        return instant > isodates.parse(wanted)  # type: ignore[operator]
    since = world.now - durations.parse(wanted)
    if op == "more_than_ago":
        return instant < since
    return since <= instant <= world.now


def _occurrences(found: list[dict[str, Any]], node: Any, world: World) -> bool:
    if getattr(node, "within", None):
        since = world.now - durations.parse(node.within)
        found = [e for e in found if e["timestamp"] >= since]
    if not node.counting.holds(len(found)):
        return False
    total = getattr(node, "total", None)
    if total is not None:
        amounts = [_walk(e.get("properties") or {}, total.keys) for e in found]
        if not total.holds(float(sum(a for a in amounts if _number(a)))):
            return False
    for when, pick in ((getattr(node, "first", None), min), (getattr(node, "last", None), max)):
        if when is not None:
            if not found:
                return False
            moment = pick(e["timestamp"] for e in found)
            if not compare(moment, when.op, when.value, "datetime", world, None):
                return False
    return True


def _behaviour(node: rules.Behaviour, contact: dict[str, Any], world: World) -> bool:
    def matches(event: dict[str, Any]) -> bool:
        if event["contact_id"] != contact["id"]:
            return False
        if node.event is not None:
            if event["type"] != "track" or event["event"] != node.event:
                return False
        elif event["type"] != "page" or (node.page != "*" and event["name"] != node.page):
            return False
        properties = event.get("properties") or {}
        return all(
            compare(_walk(properties, c.ref.keys), c.op, c.value, "json", world, None) for c in node.where
        )

    return _occurrences([e for e in world.events if matches(e)], node, world)


def _engagement(node: rules.Engagement, contact: dict[str, Any], world: World) -> bool:
    name = rules.EMAIL_EVENTS[node.email]

    def matches(event: dict[str, Any]) -> bool:
        properties = event.get("properties") or {}
        if event["contact_id"] != contact["id"] or event["type"] != "track" or event["event"] != name:
            return False
        for key, wanted in (("journey_id", node.journey), ("message_id", node.message)):
            if wanted is not None and not _equals(_walk(properties, (key,)), wanted):
                return False
        return node.include_machine_generated or properties.get("machine_generated") is not True

    return _occurrences([e for e in world.events if matches(e)], node, world)


def evaluate(rule: Any, contact: dict[str, Any], world: World) -> bool:
    if isinstance(rule, rules.All):
        return all(evaluate(child, contact, world) for child in rule.all)
    if isinstance(rule, rules.AnyOf):
        return any(evaluate(child, contact, world) for child in rule.any)
    if isinstance(rule, rules.Not):
        return not evaluate(rule.rule, contact, world)
    if isinstance(rule, rules.Membership):
        return (contact["id"] in world.members.get(rule.segment, set())) == rule.member
    if isinstance(rule, rules.Behaviour):
        return _behaviour(rule, contact, world)
    if isinstance(rule, rules.Engagement):
        return _engagement(rule, contact, world)
    ref = rule.ref
    if ref.kind == "tags":
        tags = world.tags.get(contact["id"], set())
        if rule.op in ("is_set", "is_not_set"):
            return bool(tags) == bool(rule.op == "is_set")
        wanted = [rule.value] if rule.op in ("contains", "not_contains") else rule.value
        found = any(fold(v.strip()) in tags for v in wanted)
        return found if rule.op in ("contains", "in") else not found
    return compare(_raw(ref, contact, world), rule.op, rule.value, ref.kind, world, contact.get("timezone"))
