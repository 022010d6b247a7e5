"""Applying Segment events to profiles: what the event processor calls for each batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.contacts import identity, normalize, store, suppression, touchpoints
from leadflow.contacts.batch import ProfileBatch
from leadflow.contacts.changes import ProfileChanges, from_traits
from leadflow.contacts.state import CompanyState, ContactState, FlushResult
from leadflow.kernel.bus import Bus
from leadflow.kernel.clock import Clock
from leadflow.kernel.inputs import INT32_MAX, INT32_MIN


@dataclass
class Applied:
    """Where each event landed: its contact, or nowhere (the person was erased)."""

    contacts: dict[int, str] = field(default_factory=dict)
    dropped: list[int] = field(default_factory=list)
    flush: FlushResult = field(default_factory=FlushResult)


def _group(batch: ProfileBatch, contact: ContactState, group_id: str, traits: dict[str, Any] | None) -> None:
    """``group``: create or update the company and make it the contact's company."""
    company = batch.company(group_id)
    _update_company(company, traits or {}, batch)
    if contact.company_id != company.id:
        batch.apply_changes(contact, ProfileChanges(company_id=company.id))


def _update_company(company: CompanyState, traits: dict[str, Any], batch: ProfileBatch) -> None:
    if not traits:
        return
    merged = {**company.traits, **traits}
    company.traits = {k: v for k, v in merged.items() if v is not None}
    company.name = _text(traits, "name", company.name)
    company.industry = _text(traits, "industry", company.industry)
    company.domain = _domain(traits, company.domain)
    size = _size(traits.get("employees", traits.get("size")))
    if size is not None:
        company.size = size
    company.updated_at = batch.now
    company.dirty = True


def _size(value: Any) -> int | None:
    """The head count for the company's ``size``: a number, or a string of digits, that fits its 32-bit
    column. Anything else (``1e12`` employees, a word) stays only in the company's traits."""
    if isinstance(value, bool) or not (
        isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit())
    ):
        return None
    try:
        size = int(value)
    except (ValueError, OverflowError):  # "²" is a digit to str.isdigit(); a float may be infinite
        return None
    return size if INT32_MIN <= size <= INT32_MAX else None


def _domain(traits: dict[str, Any], current: str | None) -> str | None:
    """The company's domain from ``domain`` (first) or ``website``, normalised (``https://www.Acme.example/x``
    → ``acme.example``). Both stay as sent in the company's traits. A value that names no domain is kept
    only there and leaves the domain as it was; ``null`` (with nothing valid beside it) clears it."""
    given = [traits[key] for key in ("domain", "website") if key in traits]
    if not given:
        return current
    for value in given:
        found = normalize.domain(value)
        if found is not None:
            return found
    return None if all(value is None for value in given) else current


def _text(traits: dict[str, Any], key: str, default: str | None) -> str | None:
    if key not in traits:
        return default
    value = traits[key]
    return str(value)[:255] if value is not None else None


def _changes_for(rows: Sequence[Any], phone_region: str | None) -> dict[int, ProfileChanges]:
    return {
        row.id: from_traits(row.traits, row.context, phone_region=phone_region)
        for row in rows
        if row.type == "identify"
    }


def _preload(batch: ProfileBatch, rows: Sequence[Any], changes: dict[int, ProfileChanges]) -> None:
    previous = [row.previous_id for row in rows if row.previous_id]
    batch.preload(
        user_ids=[row.user_id for row in rows if row.user_id] + previous,
        anon_ids=[row.anonymous_id for row in rows if row.anonymous_id] + previous,
        emails=[c.email for c in changes.values() if isinstance(c.email, str)],
        contact_ids=[row.contact_id for row in rows if row.contact_id],
        group_ids=[row.group_id for row in rows if row.group_id],
    )


def _suppressed_rows(conn: Connection, rows: Sequence[Any], secret: str) -> set[int]:
    digests = {
        row.id: suppression.event_digests(
            secret, [row.user_id, row.previous_id], [row.anonymous_id, row.previous_id]
        )
        for row in rows
        if row.source != "internal"
    }
    hits = store.suppressed(conn, {d for values in digests.values() for d in values})
    return {event_id for event_id, values in digests.items() if hits.intersection(values)} if hits else set()


def _touch(batch: ProfileBatch, row: Any, contact: ContactState, touch: dict[str, Any] | None) -> None:
    if touch is not None:
        batch.touchpoints.append(
            {**touch, "contact_id": contact.id, "event_id": row.id, "occurred_at": row.timestamp}
        )


def _apply_one(batch: ProfileBatch, row: Any, changes: ProfileChanges | None) -> ContactState | None:
    if row.source == "internal":
        if not row.contact_id:
            return None
        internal = batch.contact(row.contact_id)
        if internal is not None and row.event == touchpoints.EMAIL_CLICKED:
            _touch(batch, row, internal, touchpoints.from_click(row.properties))
        return internal
    if row.type == "alias":
        contact = identity.alias(batch, previous_id=row.previous_id, user_id=row.user_id)
    else:
        email = changes.email if changes is not None and isinstance(changes.email, str) else None
        contact = identity.resolve(batch, user_id=row.user_id, anonymous_id=row.anonymous_id, email=email)
    if changes is not None:
        batch.apply_changes(contact, changes)
    if row.type == "group" and row.group_id:
        _group(batch, contact, row.group_id, row.traits)
    elif row.type == "page":
        _touch(batch, row, contact, touchpoints.from_page(row.properties, row.context))
    elif row.type == "track":
        _touch(batch, row, contact, touchpoints.from_track(row.event, row.properties, row.context))
    contact.touch(row.timestamp, activity=row.type in ("page", "screen", "track"))
    return contact


def apply_events(
    conn: Connection, clock: Clock, bus: Bus, rows: Sequence[Any], *, secret: str, phone_region: str | None
) -> Applied:
    """Apply events in order; the caller holds the profile lock and marks the events processed."""
    batch = ProfileBatch(conn, clock, bus)
    changes = _changes_for(rows, phone_region)
    dropped = _suppressed_rows(conn, rows, secret)
    _preload(batch, [row for row in rows if row.id not in dropped], changes)
    assigned: dict[int, str] = {}
    for row in rows:
        if row.id in dropped:
            continue
        contact = _apply_one(batch, row, changes.get(row.id))
        if contact is None:
            dropped.add(row.id)
        else:
            assigned[row.id] = contact.id
    result = batch.flush()
    return Applied(
        contacts={event_id: batch.resolve(cid) for event_id, cid in assigned.items()},
        dropped=sorted(dropped),
        flush=result,
    )
