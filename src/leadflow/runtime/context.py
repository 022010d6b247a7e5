"""Builds the application context and wires the bus: the one place that knows every domain."""

from __future__ import annotations

from leadflow.analytics import service as analytics
from leadflow.capture import service as capture
from leadflow.connectors import service as connectors
from leadflow.contacts import import_jobs
from leadflow.contacts import service as contacts
from leadflow.crm import service as crm
from leadflow.events import service as events
from leadflow.journeys import service as journeys
from leadflow.kernel.bus import Bus
from leadflow.kernel.clock import Clock, SystemClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import Database
from leadflow.kernel.facts import AddressesSuppressed, ContactsErased, ContactsMerged, ContactsTouched
from leadflow.kernel.metrics import Metrics
from leadflow.kernel.settings import Settings
from leadflow.kernel.signals import Signals
from leadflow.messaging import service as messaging
from leadflow.runtime.pipeline import qualifier
from leadflow.scheduling import service as scheduling
from leadflow.scoring import service as scoring
from leadflow.segments import service as segments
from leadflow.tables import metadata
from leadflow.webhooks import service as webhooks


def wire(ctx: AppContext) -> None:
    """Subscribe every domain's handlers, in the order they must run."""
    contacts.use_preferences(messaging.preferences_column)  # a contact view shows its topic preferences
    # a CSV import may add its contacts to a static list (segments sit above contacts)
    contacts.use_static_lists(ctx, segments.static_list, segments.add_to_static_list)
    bus = ctx.bus
    for handler in (
        events.on_contacts_merged,
        segments.on_contacts_merged,
        scoring.on_contacts_merged,
        crm.on_contacts_merged,
        crm.on_sla_merged,
        crm.on_deals_merged,
        capture.on_contacts_merged,
        scheduling.on_contacts_merged,
        webhooks.on_contacts_merged,
        connectors.on_contacts_merged,
    ):
        bus.subscribe(ContactsMerged, handler)
    for erase in (
        events.on_contacts_erased,
        segments.on_contacts_erased,
        scoring.on_contacts_erased,
        journeys.on_contacts_erased,
        messaging.erasure_handler(ctx),
        webhooks.on_contacts_erased,
        webhooks.on_inbound_contacts_erased,
        import_jobs.on_contacts_erased,
        capture.on_contacts_erased,
        scheduling.on_contacts_erased,
        analytics.on_contacts_erased,
        crm.on_contacts_erased,
        crm.on_sla_erased,
        crm.on_deals_erased,
        connectors.erasure_handler(ctx),  # every connected vendor deletes the person too
    ):
        bus.subscribe(ContactsErased, erase)
    # first: a processed form post's submission is linked to its contact, its list, tags and confirmation
    bus.subscribe(ContactsTouched, capture.forms_processed(ctx))
    bus.subscribe(ContactsTouched, crm.on_contacts_touched)  # contacts at stage lead become CRM leads
    bus.subscribe(ContactsTouched, crm.route_qualified(ctx))  # MQLs start their SLA clock and get an owner
    bus.subscribe(ContactsTouched, scheduling.calendly_handler(ctx))  # Calendly's bookings mirrored
    bus.subscribe(ContactsTouched, crm.deal_progression(ctx))  # pipeline rules move (or open) deals
    bus.subscribe(ContactsTouched, qualifier(ctx))
    # after qualifying: events the pipeline applied go out to the webhook endpoints subscribed to them
    bus.subscribe(ContactsTouched, webhooks.fanout(ctx))
    # after qualifying: contacts the connectors' triggers name get an outbox row (never a vendor call here)
    bus.subscribe(ContactsTouched, connectors.outbox_handler(ctx))
    # a suppression alone (a hard bounce …) syncs the marketing status of connectors that map it
    bus.subscribe(AddressesSuppressed, connectors.suppressed_handler(ctx))
    connectors.register_metrics(ctx)  # connector health gauges in /metrics


def build_context(settings: Settings | None = None, *, clock: Clock | None = None) -> AppContext:
    settings = settings or Settings()
    db = Database(settings.database_url)
    ctx = AppContext(
        settings=settings,
        db=db,
        clock=clock or SystemClock(),
        bus=Bus(),
        metrics=Metrics(),
        signals=Signals(db),
        derive=derive,
    )
    wire(ctx)
    return ctx


def derive(settings: Settings, clock: Clock) -> AppContext:
    """A context like :func:`build_context`'s for other settings, every table created in its database
    if missing (the simulator's scratch database starts empty)."""
    ctx = build_context(settings, clock=clock)
    metadata.create_all(ctx.db.engine)
    return ctx
