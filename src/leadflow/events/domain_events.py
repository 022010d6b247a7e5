"""Facts the events domain publishes on the bus."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class ProcessedEvent:
    id: int
    contact_id: str
    type: str
    event: str | None
    name: str | None
    source: str
    timestamp: datetime


@dataclass(frozen=True)
class EventsProcessed:
    """A batch of events has been applied to profiles: hand them to the qualifiers (architecture step 3)."""

    events: tuple[ProcessedEvent, ...]
    at: datetime
