"""Builds the application context and wires the bus: the one place that knows every domain."""

from __future__ import annotations

from leadflow.contacts.domain_events import ContactsErased, ContactsMerged
from leadflow.events import service as events
from leadflow.kernel.bus import Bus
from leadflow.kernel.clock import Clock, SystemClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import Database
from leadflow.kernel.metrics import Metrics
from leadflow.kernel.settings import Settings
from leadflow.kernel.signals import Signals


def build_bus() -> Bus:
    bus = Bus()
    bus.subscribe(ContactsMerged, events.on_contacts_merged)
    bus.subscribe(ContactsErased, events.on_contacts_erased)
    return bus


def build_context(settings: Settings | None = None, *, clock: Clock | None = None) -> AppContext:
    settings = settings or Settings()
    db = Database(settings.database_url)
    return AppContext(
        settings=settings,
        db=db,
        clock=clock or SystemClock(),
        bus=build_bus(),
        metrics=Metrics(),
        signals=Signals(db),
    )
