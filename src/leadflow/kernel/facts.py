"""Facts that cross domains on the bus (:mod:`leadflow.kernel.bus`), published in the transaction that
made them true. They live in the kernel so that every domain can subscribe without importing the one
that publishes them (the contacts domain publishes all three today)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

EVERYTHING = "*"


@dataclass(frozen=True)
class ContactsMerged:
    """Each ``(merged, survivor)``: rows naming ``merged`` must now name ``survivor``."""

    pairs: tuple[tuple[str, str], ...]
    at: datetime


@dataclass(frozen=True)
class ContactsErased:
    """GDPR erasure: every row about these contacts must go, and events still waiting that carry
    their user or anonymous ids. ``emails``: the person's address (suppressions keyed by it become
    digests). What each table keeps is listed in :mod:`leadflow.privacy`."""

    contact_ids: tuple[str, ...]
    user_ids: tuple[str, ...]
    anonymous_ids: tuple[str, ...]
    at: datetime
    emails: tuple[str, ...] = ()


@dataclass(frozen=True)
class TouchedEvent:
    id: int
    contact_id: str
    type: str
    event: str | None
    name: str | None
    source: str
    timestamp: datetime
    properties: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ContactsTouched:
    """A unit of work changed these profiles and/or applied these events (architecture step 2 → 3).

    ``changes`` maps each contact to the fields that changed (``email``, ``traits.plan``,
    ``company_id`` …; ``*`` when the contact is new or absorbed a merge). The qualifiers (scoring,
    segments, lifecycle) re-evaluate exactly what these can affect.
    """

    changes: Mapping[str, frozenset[str]]
    events: tuple[TouchedEvent, ...]
    at: datetime
    merged: tuple[tuple[str, str], ...] = field(default=())

    @property
    def contact_ids(self) -> set[str]:
        return set(self.changes) | {event.contact_id for event in self.events}


@dataclass(frozen=True)
class AddressesSuppressed:
    """Addresses messaging may no longer market to (a hard bounce, a complaint, an unsubscribe, a staff
    entry), published by messaging in the transaction that recorded the suppression — also when the
    contact's own subscription did not change, so whatever mirrors "may we market" hears of it."""

    emails: tuple[str, ...]
    at: datetime
