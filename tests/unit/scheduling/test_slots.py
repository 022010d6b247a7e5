"""Slot arithmetic: wall-clock availability across DST, buffers, notice, horizon; ICS both ways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import icalendar

from leadflow.scheduling import ics
from leadflow.scheduling.slots import Rules, available

WEEKDAYS = {day: [["09:00", "10:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def rules(zone: str, **changes: int) -> Rules:
    values = {"slot_minutes": 30, "buffer_before": 0, "buffer_after": 0, "min_notice": 0, "horizon_days": 60}
    values.update(changes)
    return Rules(zone=ZoneInfo(zone), availability=WEEKDAYS, **values)


def test_a_dst_week_in_berlin_keeps_local_hours() -> None:
    # Europe/Berlin moves to summer time on Sunday 29 March 2026 at 02:00
    now = datetime(2026, 3, 20, tzinfo=UTC)
    found = available(
        rules("Europe/Berlin"),
        30,
        now,
        datetime(2026, 3, 27, tzinfo=UTC),
        datetime(2026, 4, 1, tzinfo=UTC),
        [],
    )
    starts = [s.isoformat() for s, _ in found]
    assert starts[:4] == [
        "2026-03-27T08:00:00+00:00",
        "2026-03-27T08:30:00+00:00",
        "2026-03-28T08:00:00+00:00",
        "2026-03-28T08:30:00+00:00",
    ]
    assert "2026-03-29T07:00:00+00:00" in starts
    assert "2026-03-29T08:00:00+00:00" not in starts
    berlin = {s.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") for s, _ in found}
    assert berlin == {"09:00", "09:30"}
    assert len(found) == 10


def test_a_dst_week_in_new_york_and_the_askers_zone() -> None:
    # America/New_York moves on Sunday 8 March 2026; the asker in Berlin sees the gap shrink to 5 hours
    now = datetime(2026, 3, 1, tzinfo=UTC)
    found = available(
        rules("America/New_York"),
        60,
        now,
        datetime(2026, 3, 6, tzinfo=UTC),
        datetime(2026, 3, 10, tzinfo=UTC),
        [],
    )
    starts = [s for s, _ in found]
    assert [s.isoformat() for s in starts] == [
        "2026-03-06T14:00:00+00:00",
        "2026-03-07T14:00:00+00:00",
        "2026-03-08T13:00:00+00:00",
        "2026-03-09T13:00:00+00:00",
    ]
    in_berlin = [s.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") for s in starts]
    assert in_berlin == ["15:00", "15:00", "14:00", "14:00"]


def test_a_skipped_local_hour_is_not_offered() -> None:
    night = Rules(
        zone=ZoneInfo("Europe/Berlin"),
        availability={"sun": [["01:30", "04:00"]]},
        slot_minutes=30,
        buffer_before=0,
        buffer_after=0,
        min_notice=0,
        horizon_days=60,
    )
    found = available(
        night,
        30,
        datetime(2026, 3, 1, tzinfo=UTC),
        datetime(2026, 3, 29, tzinfo=UTC),
        datetime(2026, 3, 30, tzinfo=UTC),
        [],
    )
    local = [s.astimezone(ZoneInfo("Europe/Berlin")).strftime("%H:%M") for s, _ in found]
    assert local == ["01:30", "03:00", "03:30"]  # 02:00 and 02:30 do not exist that night


def test_buffers_notice_and_horizon() -> None:
    zone = "UTC"
    now = datetime(2026, 3, 2, 8, 45, tzinfo=UTC)  # a Monday
    day = (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
    assert [s.minute for s, _ in available(rules(zone), 30, now, *day, [])] == [0, 30]
    # 30 minutes' notice: 09:00 is too soon
    assert [s.minute for s, _ in available(rules(zone, min_notice=30), 30, now, *day, [])] == [30]
    busy = [(datetime(2026, 3, 2, 9, 40, tzinfo=UTC), datetime(2026, 3, 2, 9, 50, tzinfo=UTC))]
    assert available(rules(zone), 30, now, *day, busy) == [
        (datetime(2026, 3, 2, 9, 0, tzinfo=UTC), datetime(2026, 3, 2, 9, 30, tzinfo=UTC))
    ]
    # 15 minutes after each meeting: 09:00-09:30 + 15 reaches the busy time at 09:40
    assert available(rules(zone, buffer_after=15), 30, now, *day, busy) == []
    touching = [(datetime(2026, 3, 2, 8, 50, tzinfo=UTC), datetime(2026, 3, 2, 9, 0, tzinfo=UTC))]
    assert len(available(rules(zone), 30, now, *day, touching)) == 2
    assert [s.minute for s, _ in available(rules(zone, buffer_before=10), 30, now, *day, touching)] == [30]
    # horizon: 2 days from now
    week = (datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 9, tzinfo=UTC))
    found = available(rules(zone, horizon_days=2), 30, now, *week, [])
    assert max(s for s, _ in found) < now + timedelta(days=2)
    assert len(found) == 4  # Monday and Tuesday; Wednesday 09:00 is past 08:45 + 2 days


def _booking(sequence: int) -> SimpleNamespace:
    at = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    return SimpleNamespace(
        id="01BOOKING",
        sequence=sequence,
        updated_at=at,
        starts_at=at,
        ends_at=at + timedelta(minutes=30),
        service="Intro call",
        email="ada@example.com",
        name="Ada",
    )


def test_the_invitation_parses_back() -> None:
    organizer = SimpleNamespace(name="Grace", email="grace@example.com")
    first = icalendar.Calendar.from_ical(ics.invitation(_booking(0), organizer, canceled=False))
    moved = icalendar.Calendar.from_ical(ics.invitation(_booking(1), organizer, canceled=False))
    gone = icalendar.Calendar.from_ical(ics.invitation(_booking(2), organizer, canceled=True))
    events: list[Any] = [c.walk("VEVENT")[0] for c in (first, moved, gone)]
    assert [str(c["method"]) for c in (first, moved, gone)] == ["REQUEST", "REQUEST", "CANCEL"]
    assert len({str(e["uid"]) for e in events}) == 1
    assert [int(e["sequence"]) for e in events] == [0, 1, 2]
    assert str(events[2]["status"]) == "CANCELLED"
    assert events[0]["dtstart"].dt == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert str(events[0]["attendee"]) == "mailto:ada@example.com"


FEED = b"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:standup
DTSTART;TZID=Europe/Berlin:20260326T100000
DTEND;TZID=Europe/Berlin:20260326T103000
RRULE:FREQ=DAILY;COUNT=5
EXDATE;TZID=Europe/Berlin:20260327T100000
SUMMARY:Standup
END:VEVENT
BEGIN:VEVENT
UID:standup
RECURRENCE-ID;TZID=Europe/Berlin:20260328T100000
DTSTART;TZID=Europe/Berlin:20260328T120000
DTEND;TZID=Europe/Berlin:20260328T123000
END:VEVENT
BEGIN:VEVENT
UID:free
DTSTART:20260326T150000Z
DTEND:20260326T160000Z
TRANSP:TRANSPARENT
END:VEVENT
BEGIN:VEVENT
UID:holiday
DTSTART;VALUE=DATE:20260401
DTEND;VALUE=DATE:20260402
END:VEVENT
END:VCALENDAR
"""


def test_feed_busy_times_expand_recurrences_across_dst() -> None:
    zone = ZoneInfo("Europe/Berlin")
    found = [
        i
        for i, _ in ics.busy_times(
            FEED, zone, datetime(2026, 3, 25, tzinfo=UTC), datetime(2026, 4, 5, tzinfo=UTC)
        )
    ]
    starts = sorted(s.isoformat() for s, _ in found)
    assert starts == [
        "2026-03-26T09:00:00+00:00",  # winter time
        "2026-03-28T11:00:00+00:00",  # the moved occurrence
        "2026-03-29T08:00:00+00:00",  # summer time: still 10:00 in Berlin
        "2026-03-30T08:00:00+00:00",
        "2026-03-31T22:00:00+00:00",  # the all-day event, a Berlin day
    ]
