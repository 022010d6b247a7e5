"""Facts the contacts domain publishes on the bus."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ContactsMerged:
    """Each ``(merged, survivor)``: rows naming ``merged`` must now name ``survivor``."""

    pairs: tuple[tuple[str, str], ...]
    at: datetime


@dataclass(frozen=True)
class ContactsErased:
    """GDPR erasure: every row about these contacts must go, and events still waiting that carry
    their user or anonymous ids."""

    contact_ids: tuple[str, ...]
    user_ids: tuple[str, ...]
    anonymous_ids: tuple[str, ...]
    at: datetime


@dataclass(frozen=True)
class ProfilesChanged:
    """These contacts were created or their profile changed; qualifiers re-evaluate them."""

    contact_ids: tuple[str, ...]
    created: tuple[str, ...]
    at: datetime
