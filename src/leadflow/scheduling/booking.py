"""Available slots, consultation requests, reschedules and cancellations.

Rules:

* A request names a service and preferred times (the asker's zone for naive ones). The first
  preferred time that some consultant offering the service has free (:mod:`.slots`: on the slot grid,
  within notice and horizon, clear of busy times with buffers) is booked, consultants tried in id order;
  if none is, the request is stored ``pending`` for a person and ``consultation.requested`` is emitted.
* **Never two bookings for one slot**: the decision is taken in one write transaction that first
  locks the rows of every consultant offering the service (``SELECT … FOR UPDATE`` on PostgreSQL, in
  id order so two requests cannot deadlock; SQLite has a single writer), reads their busy times, and
  inserts; a partial unique index on (consultant, start) of live bookings backs it.
* A booking creates or updates the contact, logs a CRM ``meeting`` activity, emits
  ``consultation_scheduled`` and queues the confirmation email (:mod:`.notify`).
* A reschedule moves the booking (same id, so the invitation's ``UID``) to a free slot of the same
  consultant and bumps ``SEQUENCE``; a cancellation bumps it too and sends ``METHOD:CANCEL``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts
from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.scheduling import notify, profiles, queries, tokens
from leadflow.scheduling.models import BOOKED
from leadflow.scheduling.schemas import (
    Booking,
    ConsultationRequest,
    RequestOutcome,
    RequestView,
    Slot,
    Slots,
    zone_of,
)
from leadflow.scheduling.slots import Interval, available, bounds, candidates, free, padding

MAX_RANGE = timedelta(days=62)
API = "api"


def view(row: Any) -> Booking:
    return Booking(
        id=row.id,
        consultant_id=row.user_id,
        contact_id=row.contact_id,
        email=row.email,
        name=row.name,
        service=row.service,
        start=row.starts_at,
        end=row.ends_at,
        tz=row.tz,
        status=row.status,
        sequence=row.sequence,
        source=row.source,
    )


def listing(ctx: AppContext, *, consultant_id: str | None, after: str | None, limit: int) -> list[Booking]:
    """Bookings (live and cancelled) in id order, ``limit`` of them after ``after``."""
    with ctx.db.read() as conn:
        return [view(row) for row in conn.execute(queries.bookings_page(consultant_id, after, limit))]


def requests(ctx: AppContext, *, status: str | None, after: str | None, limit: int) -> list[RequestView]:
    """Consultation requests (``pending`` or ``booked``) in id order, ``limit`` of them after ``after``."""
    with ctx.db.read() as conn:
        rows = conn.execute(queries.requests_page(status, after, limit))
        return [RequestView.model_validate(dict(row._mapping)) for row in rows]


def booking_row(conn: Connection, booking_id: str) -> Any:
    found = conn.execute(queries.BOOKING, {"booking_id": booking_id}).first()
    if found is None:
        raise NotFound(f"no booking {booking_id[:40]}", code="booking_not_found")
    return found


def _offering(conn: Connection, service: str, *, lock: bool = False) -> list[tuple[Any, Any, int]]:
    """(profile, user, duration) of every active consultant offering ``service``, in id order."""
    found = []
    for profile, user in profiles.consultants(conn):
        duration = profiles.duration_of(profile, service)
        if duration is None:
            continue
        if user.active:
            if lock:
                profile = profiles.row(conn, profile.user_id, lock=True)
            found.append((profile, user, duration))
    if not found:
        raise Invalid(f"no consultant offers {service!r}", code="unknown_service")
    return found


def _busy(conn: Connection, user_ids: list[str], low: datetime, high: datetime) -> dict[str, list[Interval]]:
    busy: dict[str, list[Interval]] = defaultdict(list)
    for row in conn.execute(queries.busy_between(user_ids, low, high)):
        busy[row.user_id].append((row.starts_at, row.ends_at))
    return busy


def _aware(value: datetime, tz: str) -> datetime:
    return (value if value.tzinfo else value.replace(tzinfo=zone_of(tz))).astimezone(UTC)


def available_slots(ctx: AppContext, service: str, start: datetime, end: datetime, tz: str) -> Slots:
    """Free slots of ``service`` starting in ``[start, end)``, in the asker's zone ``tz``."""
    zone = zone_of(tz)
    low, high = _aware(start, tz), _aware(end, tz)
    if high <= low or high - low > MAX_RANGE:
        raise Invalid("the range must be positive and at most 62 days", code="invalid_range")
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        offering = _offering(conn, service)
        pad = max(padding(profiles.rules_of(p, u.timezone), d) for p, u, d in offering)
        busy = _busy(conn, [p.user_id for p, _, _ in offering], low - pad, high + pad)
    merged: dict[Interval, list[str]] = defaultdict(list)
    for profile, user, duration in offering:
        rules = profiles.rules_of(profile, user.timezone)
        for slot in available(rules, duration, now, low, high, busy[profile.user_id]):
            merged[slot].append(profile.user_id)
    data = [
        Slot(start=s.astimezone(zone), end=e.astimezone(zone), consultant_ids=ids)
        for (s, e), ids in sorted(merged.items())
    ]
    return Slots(service=service, tz=tz, data=data)


def slot_free(
    rules: Any, duration: int, now: datetime, start: datetime, busy: list[Interval]
) -> Interval | None:
    """The meeting starting at ``start`` if it is on the grid, allowed and free."""
    low, high = bounds(rules, now, start, start + timedelta(microseconds=1))
    if low > start or high <= start:
        return None
    for slot in candidates(rules, duration, start, start + timedelta(microseconds=1)):
        if slot[0] == start and free(rules, slot, busy):
            return slot
    return None


def _contact(ctx: AppContext, data: ConsultationRequest) -> str:
    traits = {"name": data.name} if data.name else None
    contact, _ = contacts.upsert(
        ctx, contacts.ContactUpsert(email=data.email, traits=traits), actor="calendar"
    )
    return str(contact.id)


def request(ctx: AppContext, data: ConsultationRequest) -> RequestOutcome:
    """Book the first free preferred time, else keep the request pending (see the module's rules)."""
    with ctx.db.read() as conn:
        _offering(conn, data.service)  # an unknown service changes nothing
    contact_id = _contact(ctx, data)
    notify.install_templates(ctx)
    wanted = [_aware(t, data.tz) for t in data.preferred_times]
    request_id, now = new_id(), ctx.clock.now()
    with ctx.db.write() as conn:
        offering = _offering(conn, data.service, lock=True)
        ids = [p.user_id for p, _, _ in offering]
        pad = max(padding(profiles.rules_of(p, u.timezone), d) for p, u, d in offering)
        busy = _busy(conn, ids, min(wanted) - pad, max(wanted) + pad)
        chosen = next(
            (
                (profile, user, slot)
                for start in wanted
                for profile, user, duration in offering
                if (
                    slot := slot_free(
                        profiles.rules_of(profile, user.timezone), duration, now, start, busy[profile.user_id]
                    )
                )
            ),
            None,
        )
        booking_id = new_id() if chosen else None
        conn.execute(
            queries.REQUEST_INSERT,
            {
                "id": request_id,
                "contact_id": contact_id,
                "email": data.email,
                "name": data.name,
                "service": data.service,
                "preferred": [t.isoformat() for t in wanted],
                "tz": data.tz,
                "notes": data.notes,
                "status": "booked" if chosen else "pending",
                "booking_id": booking_id,
                "created_at": now,
            },
        )
        if chosen is None or booking_id is None:
            properties = {
                "request_id": request_id,
                "service": data.service,
                "preferred_times": [t.isoformat() for t in wanted],
            }
            notify.track(conn, ctx, data.email, f"request:{request_id}", notify.REQUESTED, properties)
            return RequestOutcome(status="pending", request_id=request_id, booking=None)
        profile, user, (starts_at, ends_at) = chosen
        conn.execute(
            queries.BOOKING_INSERT,
            {
                "id": booking_id,
                "user_id": profile.user_id,
                "contact_id": contact_id,
                "email": data.email,
                "name": data.name,
                "service": data.service,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "tz": data.tz,
                "status": BOOKED,
                "sequence": 0,
                "source": API,
                "external_id": None,
                "notes": data.notes,
                "canceled_at": None,
                "cancel_reason": None,
                "created_at": now,
                "updated_at": now,
            },
        )
        booked = booking_row(conn, booking_id)
        _announce(conn, ctx, booked, user, request_id=request_id)
    return outcome(ctx, request_id, booked)


def _announce(conn: Connection, ctx: AppContext, booked: Any, user: Any, **extra: Any) -> None:
    notify.meeting(conn, ctx, booked, actor="calendar")
    key = f"{booked.id}:{booked.sequence}"
    notify.track(
        conn, ctx, booked.email, key, notify.SCHEDULED, notify.properties(booked, source=API, **extra)
    )
    notify.email(conn, ctx, booked, user, canceled=False)


def outcome(ctx: AppContext, request_id: str, booked: Any) -> RequestOutcome:
    return RequestOutcome(
        status="booked",
        request_id=request_id,
        booking=view(booked),
        cancel_url=tokens.url(ctx, tokens.CANCEL, booked.id),
        reschedule_url=tokens.url(ctx, tokens.RESCHEDULE, booked.id),
        ics_url=tokens.url(ctx, tokens.ICS, booked.id),
    )


def reschedule(ctx: AppContext, booking_id: str, start: datetime) -> Booking:
    """Move a live booking to another free slot of its consultant (``SEQUENCE`` + 1)."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        current = booking_row(conn, booking_id)
        if current.status != BOOKED:
            raise Conflict("the booking is cancelled", code="booking_canceled")
        profile = profiles.row(conn, current.user_id, lock=True)
        user = crm.user_row(conn, current.user_id)
        duration = int((current.ends_at - current.starts_at).total_seconds() // 60)
        rules = profiles.rules_of(profile, user.timezone)
        wanted = _aware(start, current.tz)
        pad = padding(rules, duration)
        busy = [
            b
            for b in _busy(conn, [current.user_id], wanted - pad, wanted + pad)[current.user_id]
            if b != (current.starts_at, current.ends_at)
        ]
        slot = slot_free(rules, duration, now, wanted, busy)
        if slot is None:
            raise Conflict("that time is not free", code="slot_taken")
        values = {
            "booking_id": booking_id,
            "user_id": current.user_id,
            "starts_at": slot[0],
            "ends_at": slot[1],
        }
        conn.execute(queries.MOVE, {**values, "external_id": current.external_id, "at": now})
        moved = booking_row(conn, booking_id)
        notify.track(
            conn,
            ctx,
            moved.email,
            f"{moved.id}:{moved.sequence}",
            notify.SCHEDULED,
            notify.properties(moved, source=API, rescheduled=True),
        )
        notify.email(conn, ctx, moved, user, canceled=False)
        return view(moved)


def cancel(ctx: AppContext, booking_id: str, *, reason: str | None = None) -> Booking:
    """Cancel a live booking (``SEQUENCE`` + 1, ``METHOD:CANCEL``); cancelling twice changes nothing."""
    with ctx.db.write() as conn:
        current = booking_row(conn, booking_id)
        if current.status != BOOKED:
            return view(current)
        conn.execute(queries.CANCEL, {"booking_id": booking_id, "at": ctx.clock.now(), "reason": reason})
        done = booking_row(conn, booking_id)
        user = crm.user_row(conn, done.user_id)
        notify.track(
            conn,
            ctx,
            done.email,
            f"{done.id}:{done.sequence}",
            notify.CANCELED,
            notify.properties(done, source=API, reason=reason),
        )
        notify.email(conn, ctx, done, user, canceled=True)
        return view(done)
