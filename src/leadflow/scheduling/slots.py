"""Free slots: pure arithmetic over a consultant's weekly availability, their busy times and the clock.

Rules:

* Availability is wall-clock time in the consultant's own zone (``{"mon": [["09:00", "12:00"]]}``):
  a window keeps its local hours across a DST change, so its UTC offset moves with the zone.
  Candidate starts step by the slot length from each window's start; a meeting (the service's
  duration, absolute time) must end inside its window. A local time that does not exist (the hour a
  spring change skips) is not offered; an ambiguous one (the repeated autumn hour) is its first
  occurrence.
* **Minimum notice**: no start earlier than ``now + min_notice`` minutes. **Horizon**: no start later
  than ``now + horizon_days`` days.
* **Busy times** (live bookings and the ICS feed's events) block a start when they overlap the
  meeting widened by the buffers: ``[start - buffer_before, end + buffer_after)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Rules:
    """What a consultant's profile says about when they may be booked."""

    zone: ZoneInfo
    availability: dict[str, list[list[str]]]
    slot_minutes: int
    buffer_before: int
    buffer_after: int
    min_notice: int
    horizon_days: int


Interval = tuple[datetime, datetime]


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _local(day: date, at: time, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall-clock time, or None when the zone skips it that day."""
    wall = datetime.combine(day, at, tzinfo=zone)
    instant = wall.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None):
        return None
    return instant


def bounds(rules: Rules, now: datetime, start: datetime, end: datetime) -> Interval:
    """The part of ``[start, end)`` that notice and horizon allow."""
    return (
        max(start, now + timedelta(minutes=rules.min_notice)),
        min(end, now + timedelta(days=rules.horizon_days)),
    )


def candidates(rules: Rules, duration: int, start: datetime, end: datetime) -> Iterator[Interval]:
    """Every meeting of ``duration`` minutes the weekly availability allows, starting in ``[start, end)``."""
    length = timedelta(minutes=duration)
    step = timedelta(minutes=rules.slot_minutes)
    day = start.astimezone(rules.zone).date() - timedelta(days=1)
    last = end.astimezone(rules.zone).date() + timedelta(days=1)
    while day <= last:
        for opening, closing in rules.availability.get(DAYS[day.weekday()], []):
            window_end = _local(day, _clock(closing), rules.zone)
            wall = datetime.combine(day, _clock(opening))
            close_wall = datetime.combine(day, _clock(closing))
            while wall < close_wall:
                instant = _local(day, wall.time(), rules.zone) if wall.date() == day else None
                if instant is not None and window_end is not None:
                    if instant + length > window_end:
                        break
                    if start <= instant < end:
                        yield instant, instant + length
                wall += step
        day += timedelta(days=1)


def free(rules: Rules, slot: Interval, busy: Sequence[Interval]) -> bool:
    """No busy time overlaps the meeting widened by its buffers."""
    low = slot[0] - timedelta(minutes=rules.buffer_before)
    high = slot[1] + timedelta(minutes=rules.buffer_after)
    return not any(b_start < high and b_end > low for b_start, b_end in busy)


def padding(rules: Rules, duration: int) -> timedelta:
    """How far around a range busy times can matter."""
    return timedelta(minutes=max(rules.buffer_before, rules.buffer_after) + duration + rules.slot_minutes)


def available(
    rules: Rules, duration: int, now: datetime, start: datetime, end: datetime, busy: Sequence[Interval]
) -> list[Interval]:
    """The free meetings of ``duration`` minutes starting in ``[start, end)`` (see the module's rules)."""
    low, high = bounds(rules, now, start, end)
    if low >= high:
        return []
    return [slot for slot in candidates(rules, duration, low, high) if free(rules, slot, busy)]
