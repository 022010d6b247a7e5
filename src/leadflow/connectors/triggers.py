"""Which changes cause a sync: a connector's ``triggers``.

``{"profile": true, "fields": [], "events": [], "segments": [], "stages": [], "lead_statuses": [],
"deals": true}``:

- ``profile`` — any change of a contact's profile (a new contact too); ``fields`` narrows it to
  changes of these fields (``email``, ``traits.plan`` …);
- ``events`` — a tracked event of one of these names;
- ``segments`` — entering one of these segments (ids);
- ``stages`` — a lifecycle stage change *to* one of these (``["*"]``: any);
- ``lead_statuses`` — a lead status change to one of these (``["*"]``: any);
- ``deals`` — a deal of the contact opened or moved (``deal.created``, ``deal.stage_changed``).

Everything arrives as one ``ContactsTouched`` fact per unit of work (segment entries, stage and
status changes are internal events of the pipeline), so the outbox rows are written in the
transaction that made the change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from leadflow.kernel.errors import Invalid
from leadflow.kernel.facts import EVERYTHING, ContactsTouched

DEFAULT: dict[str, Any] = {"profile": True, "deals": True}
ANY = "*"
QUIET = frozenset({"last_seen_at", "updated_at"})
SEGMENT_ENTERED = "leadflow.segment_entered"
STAGE_CHANGED = "leadflow.stage_changed"
STATUS_CHANGED = "lead.status_changed"
DEAL_EVENTS = frozenset({"deal.created", "deal.stage_changed"})
_LISTS = ("fields", "events", "segments", "stages", "lead_statuses")


@dataclass(frozen=True)
class Triggers:
    raw: dict[str, Any]
    profile: bool
    deals: bool
    fields: frozenset[str]
    events: frozenset[str]
    segments: frozenset[str]
    stages: frozenset[str]
    lead_statuses: frozenset[str]


def parse(raw: Any) -> Triggers:
    if not isinstance(raw, Mapping) or set(raw) - {"profile", "deals", *_LISTS}:
        raise Invalid(
            "triggers has profile, deals, fields, events, segments, stages and lead_statuses",
            code="invalid_triggers",
        )
    lists: dict[str, frozenset[str]] = {}
    for name in _LISTS:
        value = raw.get(name, [])
        if (
            not isinstance(value, list)
            or not all(isinstance(v, str) and v for v in value)
            or len(value) > 500
        ):
            raise Invalid(f"triggers.{name} is a list of names", code="invalid_triggers")
        lists[name] = frozenset(value)
    for name in ("profile", "deals"):
        if not isinstance(raw.get(name, False), bool):
            raise Invalid(f"triggers.{name} is true or false", code="invalid_triggers")
    return Triggers(dict(raw), bool(raw.get("profile")), bool(raw.get("deals")), **lists)


def _wanted(values: frozenset[str], value: Any) -> bool:
    return ANY in values or (isinstance(value, str) and value in values)


def contacts_for(fact: ContactsTouched, triggers: Triggers) -> Iterator[str]:
    """The contacts of this unit of work the connector must sync (may repeat)."""
    if triggers.profile:
        for contact_id, fields in fact.changes.items():
            changed = fields - QUIET
            if not changed:
                continue
            if not triggers.fields or EVERYTHING in changed or changed & triggers.fields:
                yield contact_id
    for event in fact.events:
        props = event.properties or {}
        name = event.event
        if name is None:
            continue
        if (
            name in triggers.events
            or (name == SEGMENT_ENTERED and props.get("segment_id") in triggers.segments)
            or (name == STAGE_CHANGED and _wanted(triggers.stages, props.get("to")))
            or (name == STATUS_CHANGED and _wanted(triggers.lead_statuses, props.get("to")))
            or (name in DEAL_EVENTS and triggers.deals)
        ):
            yield event.contact_id
