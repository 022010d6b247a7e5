"""What a rule depends on, so one event or profile change re-evaluates only the segments it can affect.

A change or an event becomes *signals*: changed fields (``email``, ``traits.plan``, ``company_id``),
``event:<name>`` for a track event, ``page:<name>`` and ``page:*`` for a page view, ``company`` for a
``group`` call, ``score`` for a new score, ``tags``, ``segment:<id>`` for a membership change; ``*`` for
a new or merged contact. A segment is re-evaluated for a contact when its dependencies meet the
contact's signals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from leadflow.kernel.facts import EVERYTHING, TouchedEvent
from leadflow.segments import rules

RELATIVE_OPS = frozenset({"within_last", "more_than_ago", "anniversary_today"})
FIELD_ALIASES = {"company_id": "company"}
SEGMENT_EVENTS = frozenset({"leadflow.segment_entered", "leadflow.segment_exited"})
EVENT_FIELDS = {"leadflow.stage_changed": "lifecycle_stage", "leadflow.score_band_changed": "score"}


@dataclass(frozen=True)
class Dependencies:
    fields: frozenset[str]
    events: frozenset[str]
    segments: frozenset[str]
    time_relative: bool

    def keys(self) -> frozenset[str]:
        return self.fields | self.events | {f"segment:{s}" for s in self.segments}

    def to_json(self) -> dict[str, Any]:
        return {
            "fields": sorted(self.fields),
            "events": sorted(self.events),
            "segments": sorted(self.segments),
            "time_relative": self.time_relative,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Dependencies:
        return cls(
            frozenset(data.get("fields", ())),
            frozenset(data.get("events", ())),
            frozenset(data.get("segments", ())),
            bool(data.get("time_relative")),
        )


def _relative(node: Any) -> bool:
    if isinstance(node, rules.Attribute):
        return node.op in RELATIVE_OPS
    if isinstance(node, rules.Behaviour | rules.Engagement):
        dated = [w for w in (getattr(node, "first", None), getattr(node, "last", None)) if w is not None]
        return node.within is not None or any(w.op in RELATIVE_OPS for w in dated)
    return False


def of(rule: Any) -> Dependencies:
    fields: set[str] = set()
    events: set[str] = set()
    segments: set[str] = set()
    for node in rules.walk(rule):
        if isinstance(node, rules.Attribute):
            fields.add(node.ref.dependency)
        elif isinstance(node, rules.Behaviour):
            events.add(f"event:{node.event}" if node.event is not None else f"page:{node.page}")
        elif isinstance(node, rules.Engagement):
            events.add(f"event:{rules.EMAIL_EVENTS[node.email]}")
        elif isinstance(node, rules.Membership):
            segments.add(node.segment)
    return Dependencies(
        frozenset(fields),
        frozenset(events),
        frozenset(segments),
        any(_relative(node) for node in rules.walk(rule)),
    )


def field_signals(changed: Iterable[str]) -> set[str]:
    return {FIELD_ALIASES.get(name, name) for name in changed}


def event_signals(event: TouchedEvent) -> set[str]:
    if event.type == "page":
        return {"page:*", f"page:{event.name}"} if event.name else {"page:*"}
    if event.type == "group":
        return {"company"}
    if event.type != "track" or not event.event:
        return set()
    found = {f"event:{event.event}"}
    if event.event in SEGMENT_EVENTS and event.properties and event.properties.get("segment_id"):
        found.add(f"segment:{event.properties['segment_id']}")
    if event.event in EVENT_FIELDS:
        found.add(EVENT_FIELDS[event.event])
    return found


def affected(dependencies: Dependencies, signals: set[str]) -> bool:
    return EVERYTHING in signals or not signals.isdisjoint(dependencies.keys())
