"""iCalendar both ways (``icalendar``): the invitation a booking's email links to, and the busy times
of a consultant's ICS feed.

* **Invitation**: ``METHOD:REQUEST`` while the booking stands, ``METHOD:CANCEL`` (``STATUS:CANCELLED``)
  once it is cancelled; the ``UID`` is the booking's (stable across reschedules), ``SEQUENCE`` the
  booking's, bumped by each reschedule and by the cancellation, so calendars replace the earlier copy.
* **Feed**: every ``VEVENT`` that blocks time (not ``TRANSP:TRANSPARENT``, not ``STATUS:CANCELLED``)
  becomes busy intervals within the window asked for: plain events, and recurring ones expanded by
  their ``RRULE`` (``dateutil``) less their ``EXDATE``\\ s; an overridden occurrence
  (``RECURRENCE-ID``) replaces the one it names. Floating and all-day times are read in the
  consultant's zone.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from dateutil.rrule import rrulestr

from leadflow.kernel.errors import Invalid

PRODID = "-//leadflow//consultations//EN"
Interval = tuple[datetime, datetime]


def invitation(booking: Any, organizer: Any, *, canceled: bool) -> bytes:
    """The ICS of a booking (``booking``: its row; ``organizer``: the consultant's user row)."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if canceled else "REQUEST")
    event = icalendar.Event()
    event.add("uid", f"booking-{booking.id}@leadflow")
    event.add("sequence", booking.sequence)
    event.add("dtstamp", booking.updated_at.astimezone(UTC))
    event.add("dtstart", booking.starts_at.astimezone(UTC))
    event.add("dtend", booking.ends_at.astimezone(UTC))
    event.add("summary", f"{booking.service} with {organizer.name}")
    event.add("status", "CANCELLED" if canceled else "CONFIRMED")
    event.add(
        "organizer", icalendar.vCalAddress(f"mailto:{organizer.email}"), parameters={"CN": organizer.name}
    )
    attendee = icalendar.vCalAddress(f"mailto:{booking.email}")
    event.add(
        "attendee", attendee, parameters={"CN": booking.name or booking.email, "ROLE": "REQ-PARTICIPANT"}
    )
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def _instant(value: Any, zone: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=zone)).astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=zone).astimezone(UTC)
    raise Invalid(f"unreadable time {value!r} in the ICS feed", code="invalid_ics")


def _local(value: Any, zone: ZoneInfo) -> datetime:
    """An aware start for rrule expansion (keeps its own zone so wall-clock recurrences follow DST)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=zone)
    return datetime.combine(value, time(0), tzinfo=zone)


def _blocks(event: Any) -> bool:
    transp = str(event.get("transp", "OPAQUE")).upper()
    status = str(event.get("status", "CONFIRMED")).upper()
    return transp != "TRANSPARENT" and status != "CANCELLED"


def _exdates(event: Any, zone: ZoneInfo) -> set[datetime]:
    found = event.get("exdate")
    if found is None:
        return set()
    lists = found if isinstance(found, list) else [found]
    return {_instant(item.dt, zone) for group in lists for item in group.dts}


def _length(event: Any, zone: ZoneInfo, start: Any) -> timedelta:
    if event.get("dtend") is not None:
        return _instant(event["dtend"].dt, zone) - _instant(start, zone)
    if event.get("duration") is not None:
        length: timedelta = event["duration"].dt
        return length
    return timedelta(days=1) if not isinstance(start, datetime) else timedelta(0)


def _occurrences(event: Any, zone: ZoneInfo, low: datetime, high: datetime) -> Iterable[datetime]:
    start = event["dtstart"].dt
    if event.get("rrule") is None:
        yield _instant(start, zone)
        return
    first = _local(start, zone)
    rule = rrulestr(event["rrule"].to_ical().decode(), dtstart=first)
    length = _length(event, zone, start)
    for occurrence in rule.between(low - length, high, inc=True):
        yield occurrence.astimezone(UTC)


def busy_times(
    data: bytes, zone: ZoneInfo, low: datetime, high: datetime
) -> list[tuple[Interval, str | None]]:
    """The busy intervals (with their summaries) the feed ``data`` holds overlapping ``[low, high)``."""
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except ValueError as exc:
        raise Invalid(f"the ICS feed cannot be read: {exc}", code="invalid_ics") from None
    events: list[Any] = [c for c in calendar.walk("VEVENT") if c.get("dtstart") is not None]
    overridden = {
        (str(e.get("uid")), _instant(e["recurrence-id"].dt, zone))
        for e in events
        if e.get("recurrence-id") is not None
    }
    found: list[tuple[Interval, str | None]] = []
    for event in events:
        if not _blocks(event):
            continue
        uid, start = str(event.get("uid")), event["dtstart"].dt
        length = _length(event, zone, start)
        skipped = _exdates(event, zone)
        recurring = event.get("rrule") is not None and event.get("recurrence-id") is None
        summary = str(event.get("summary"))[:500] if event.get("summary") is not None else None
        for occurrence in _occurrences(event, zone, low, high):
            if occurrence in skipped or (recurring and (uid, occurrence) in overridden):
                continue
            if occurrence < high and occurrence + length > low and length > timedelta(0):
                found.append(((occurrence, occurrence + length), summary))
    return found
