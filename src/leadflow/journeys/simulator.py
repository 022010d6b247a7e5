"""The journey simulator: the real engine on a scratch database and a virtual clock.

A simulation copies the installation's configuration (email templates, layouts, topics, segments,
scoring rules and bands, and a suppression of the made-up contact's address) into a private database of
the installation's kind (:mod:`leadflow.journeys.scratch`: PostgreSQL when it runs on PostgreSQL),
creates one contact from the request, publishes the journey there, and lets the real pipeline run —
events, qualifiers, executor, deliverer (into a capturing transport) — jumping a virtual clock (from the
request's ``start``, else now) from one due moment to the next up to the horizon. Nothing touches the
real database or sends anything: CRM steps (deals, activities, owners) change the scratch copy only.

The timeline says why an email did not go out, or not then (:attr:`Moment.reason`): the message's
status and reason (``failed: missing variable contact.first_name (…)``, ``suppressed: frequency_capped``,
``suppressed: contact unsubscribed`` …), a step held by quiet hours, or a step that failed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import default as email_policy
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from leadflow.contacts import service as contacts
from leadflow.crm import service as crm
from leadflow.events import service as events
from leadflow.journeys import catalog, definitions, executor, installer, manage, queries, runs, scratch
from leadflow.journeys.schemas import JourneyCreate
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.config import config_entries
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import copy_rows
from leadflow.messaging import service as messaging
from leadflow.messaging.service import CaptureTransport, Deliverer
from leadflow.scoring import service as scoring
from leadflow.segments import service as segments

USER_ID = "simulated-contact"
ACTOR = "system:simulator"
MAX_ROUNDS = 10_000
EMAIL_STEPS = ("send_email", "notify_owner")


class SimContact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str | None = "simulated@example.com"
    first_name: str | None = None
    last_name: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    timezone: str | None = None


class SimEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: str = Field(default="0m", description="time since the start, like 2d or 90m")
    event: str = Field(min_length=1, max_length=255)
    properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("after")
    @classmethod
    def _after(cls, value: str) -> str:
        if value.strip() not in ("0", "0m", "0h", "0d"):
            segments.parse_duration(value)
        return value

    @property
    def offset(self) -> timedelta:
        return (
            timedelta(0)
            if self.after.strip() in ("0", "0m", "0h", "0d")
            else segments.parse_duration(self.after)
        )


class SimulationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact: SimContact = Field(default_factory=SimContact)
    events: list[SimEvent] = Field(default_factory=list, max_length=500)
    horizon: str = "90d"
    start: datetime | None = Field(
        default=None,
        description="when the simulated clock starts, ISO-8601 (UTC without an offset); default: now",
    )
    definition: dict[str, Any] | None = Field(
        default=None, description="simulate this instead of a saved journey"
    )

    _horizon = field_validator("horizon")(classmethod(lambda cls, v: (segments.parse_duration(v), v)[1]))

    @field_validator("start")
    @classmethod
    def _start(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).replace(microsecond=0)


class Email(BaseModel):
    to: str
    subject: str
    html: str
    text: str


class Moment(BaseModel):
    at: datetime
    step: str
    type: str
    branch: str | None
    status: str
    email: Email | None = None
    error: str | None = None
    email_status: str | None = Field(
        default=None, description="an email step's message: sent, failed, suppressed, queued …"
    )
    reason: str | None = Field(
        default=None, description="why the email did not go out (or not then), or why the step failed"
    )


class Simulation(BaseModel):
    journey: str
    started_at: datetime
    run_status: str | None
    exit_reason: str | None
    timeline: list[Moment]
    database: str = Field(default="sqlite", description="the kind of scratch database it ran in")
    note: str | None = None


def simulate(
    ctx: AppContext,
    definition: dict[str, Any],
    request: SimulationRequest,
    *,
    support: dict[str, Any] | None = None,
) -> Simulation:
    """Run ``definition`` for the request's contact and events; returns what happened, in order.
    ``support`` (a template file's ``emails``, ``segments``, ``topics``) adds what the installation
    lacks, in the scratch database only."""
    parsed = manage.validate(definition)
    start = request.start or ctx.clock.now().replace(microsecond=0)
    clock = VirtualClock(start)
    with scratch.database(ctx.db) as place:
        sim = _scratch_context(ctx, place.url, clock)
        try:
            _copy_configuration(ctx, sim, request.contact.email)
            if support:
                installer.install_support(sim, support, actor=ACTOR)
            journey_id = _publish(sim, definition)
            result = _run(sim, clock, parsed, journey_id, request, start)
        finally:
            sim.close()
    return result.model_copy(update={"database": place.kind, "note": place.note})


def _scratch_context(ctx: AppContext, url: str, clock: VirtualClock) -> AppContext:
    """A context on the scratch database (its tables created), built by the composition root like the
    installation's: same settings and secret key (suppression digests match), no SMTP server."""
    assert ctx.derive is not None, "the simulator needs a context built by runtime.context.build_context"
    update = {"database_url": url, "smtp_url": None, "secret_key": SecretStr(ctx.secret_key)}
    return ctx.derive(ctx.settings.model_copy(update=update), clock)


def _copy_configuration(ctx: AppContext, scratch: AppContext, email: str | None) -> None:
    """The installation's configuration, and the suppression of the contact's address if it has one
    (an address the installation never mails is not mailed in the simulation either)."""
    with ctx.db.read() as source, scratch.db.write() as target:
        # as itself or, once its person was erased, as its keyed digest
        messaging.copy_configuration(source, target, scratch.secret_key, [email] if email else [])
        segments.copy_configuration(source, target)
        scoring.copy_configuration(source, target)
        crm.copy_configuration(source, target)  # users and teams: owners named by CRM steps
        crm.copy_pipelines(source, target)  # pipelines and stages: deal steps open and move deals
        copy_rows(source, target, config_entries)


def _publish(scratch: AppContext, definition: dict[str, Any]) -> str:
    journey = manage.create(scratch, JourneyCreate(definition=definition), actor=ACTOR)
    manage.publish(scratch, journey.id, actor=ACTOR, sending=False)  # nothing is sent
    return journey.id


def _send(scratch: AppContext, *messages_: dict[str, Any]) -> None:
    rows = events.batch_rows({"batch": list(messages_)}, scratch.clock.now())
    events.store(scratch.db, scratch.signals, scratch.metrics, rows)


def _identify(scratch: AppContext, contact: SimContact) -> None:
    traits = {**contact.traits}
    for name in ("email", "first_name", "last_name", "timezone"):
        value = getattr(contact, name)
        if value is not None:
            traits[name] = value
    _send(scratch, {"type": "identify", "userId": USER_ID, "traits": traits})


def _run(
    scratch: AppContext,
    clock: VirtualClock,
    parsed: definitions.Definition,
    journey_id: str,
    request: SimulationRequest,
    start: datetime,
) -> Simulation:
    end = start + segments.parse_duration(request.horizon)
    script = sorted(request.events, key=lambda e: e.offset)
    deliverer = Deliverer(scratch, CaptureTransport())
    _identify(scratch, request.contact)
    _settle(scratch, deliverer)
    if not _scripted_trigger(parsed, script):
        _enter(scratch, journey_id)
    for _ in range(MAX_ROUNDS):
        while script and start + script[0].offset <= clock.now():
            event = script.pop(0)
            _send(
                scratch,
                {"type": "track", "userId": USER_ID, "event": event.event, "properties": event.properties},
            )
        _settle(scratch, deliverer)
        upcoming = [
            moment for moment in (_next_due(scratch), start + script[0].offset if script else None) if moment
        ]
        if not upcoming or min(upcoming) > end:
            break
        clock.set(max(min(upcoming), clock.now()))
    return _timeline(scratch, parsed, deliverer, start)


def _scripted_trigger(parsed: definitions.Definition, script: list[SimEvent]) -> bool:
    """An event-triggered journey whose trigger event is in the script enters through the pipeline;
    any other journey (segment, schedule, stage …) is entered at the start, as if the trigger fired."""
    trigger = parsed.trigger
    return isinstance(trigger, definitions.EventTrigger) and any(e.event == trigger.event for e in script)


def _enter(scratch: AppContext, journey_id: str) -> None:
    with scratch.db.write() as conn:
        contact_id = contacts.id_for_user(conn, USER_ID)
        assert contact_id is not None, "the simulated contact was identified first"
        journey = next(j for j in catalog.active(conn, scratch) if j.journey_id == journey_id)
        trigger: dict[str, Any] = {
            "event": None,
            "properties": {},
            "timestamp": scratch.clock.now().isoformat(),
        }
        runs.enrol(
            conn, scratch, [runs.Entry(journey, contact_id, "simulated", trigger)], scratch.clock.now()
        )


def _settle(scratch: AppContext, deliverer: Deliverer) -> None:
    processor = contacts.EventProcessor(scratch)
    for _ in range(1000):
        worked = 0
        while processor.process_next():
            worked += 1
        while executor.run_due(scratch):
            worked += 1
        while deliverer.deliver_due():
            worked += 1
        if not worked:
            return


def _next_due(scratch: AppContext) -> datetime | None:
    with scratch.db.read() as conn:
        found: datetime | None = conn.execute(queries.NEXT_DUE_STEP).scalar()
        queued = messaging.next_due(conn)
    return min((m for m in (found, queued) if m is not None), default=None)


def _timeline(
    scratch: AppContext, parsed: definitions.Definition, deliverer: Deliverer, start: datetime
) -> Simulation:
    transport = deliverer.transport
    assert isinstance(transport, CaptureTransport)
    captured = {item.message_id: item for item in transport.sent}
    with scratch.db.read() as conn:
        steps = list(conn.execute(queries.ALL_STEPS))
        sent = messaging.all_messages(conn)
        run = conn.execute(queries.RUN_OUTCOME).first()
    emails = _emails_by_step(sent, captured)
    timeline = []
    for row in steps:
        mails = emails.get(row.step_id) if row.type in EMAIL_STEPS and row.status == "done" else None
        email, message = mails.pop(0) if mails else (None, None)
        at = row.finished_at or row.due_at
        timeline.append(
            Moment(
                at=at,
                step=row.step_id,
                type=row.type,
                branch=row.branch,
                status=row.status,
                email=email,
                error=row.error,
                email_status=message.status if message is not None else None,
                reason=_reason(row, message, at),
            )
        )
    return Simulation(
        journey=parsed.name,
        started_at=start,
        run_status=run.status if run else None,
        exit_reason=run.exit_reason if run else None,
        timeline=timeline,
    )


def _reason(row: Any, message: Any, at: datetime) -> str | None:
    """Why the step's email did not go out (the message's status and reason), or went later than the
    step was reached (quiet hours), or why the step failed."""
    if message is not None and message.status != "sent":
        return f"{message.status}: {message.error}" if message.error else message.status
    if (row.detail or {}).get("held") == "quiet_hours":
        waits = "waits" if row.status == "pending" else "waited"
        return f"quiet hours: {waits} until {at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    return str(row.error) if row.error else None


def _emails_by_step(sent: list[Any], captured: dict[str, Any]) -> dict[str, list[tuple[Email | None, Any]]]:
    """Each step's messages in order, with the email as sent (None when it was not)."""
    found: dict[str, list[tuple[Email | None, Any]]] = {}
    for message in sent:
        item = captured.get(message.id)
        found.setdefault(message.step_id, []).append((_email(item) if item is not None else None, message))
    return found


def _email(item: Any) -> Email:
    parsed = message_from_bytes(item.data, policy=email_policy)
    html = parsed.get_body(("html",))
    text = parsed.get_body(("plain",))
    return Email(
        to=item.recipient,
        subject=str(parsed["Subject"]),
        html=html.get_content() if html is not None else "",
        text=text.get_content() if text is not None else "",
    )
