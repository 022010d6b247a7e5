"""Working-hours arithmetic in a user's own time zone (pure: no database, no clock).

Working hours are, per weekday, ``["HH:MM", "HH:MM"]`` intervals of local wall time
(:func:`leadflow.crm.rules.working_hours`). An interval is turned into instants with :mod:`zoneinfo` on
its own date, so a day that loses or gains an hour (DST) counts the hours the wall clock really shows:
on the spring-forward night 09:00-17:00 is still 8 hours, and an interval spanning the skipped hour is
one hour shorter. A user with no working hours at all is counted in plain elapsed time (nobody would
ever be due otherwise).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Hours = Mapping[str, Sequence[Sequence[str]]]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: How far ahead working time is looked for (a fortnight of holidays has working days around it).
HORIZON_DAYS = 400


def _instant(day: date, clock: str, zone: ZoneInfo) -> datetime:
    hours, minutes = (int(part) for part in clock.split(":"))
    if hours == 24:
        local = datetime.combine(day + timedelta(days=1), time(0, 0), tzinfo=zone)
    else:
        local = datetime.combine(day, time(hours, minutes), tzinfo=zone)
    return local.astimezone(UTC)


def spans(hours: Hours, timezone: str, start: datetime) -> Iterator[tuple[datetime, datetime]]:
    """The working intervals (UTC instants) that end after ``start``, in order, from the local day
    before ``start`` (an interval may still be running) for :data:`HORIZON_DAYS`."""
    zone = ZoneInfo(timezone)
    day = start.astimezone(zone).date() - timedelta(days=1)
    for offset in range(HORIZON_DAYS):
        current = day + timedelta(days=offset)
        for begin, end in hours.get(DAYS[current.weekday()], ()):
            low, high = _instant(current, begin, zone), _instant(current, end, zone)
            if high > start and high > low:
                yield max(low, start), high


def is_working(hours: Hours, timezone: str, at: datetime) -> bool:
    """Whether ``at`` falls inside one of the user's working intervals (start included, end not)."""
    return any(low <= at < high for low, high in _today(hours, timezone, at))


def _today(hours: Hours, timezone: str, at: datetime) -> Iterator[tuple[datetime, datetime]]:
    for low, high in spans(hours, timezone, at):
        if low > at:
            return
        yield low, high


def add_working(hours: Hours, timezone: str, start: datetime, amount: timedelta) -> datetime:
    """The instant when ``amount`` of working time has passed since ``start`` (``start`` itself may be
    outside working hours: counting begins at the next interval)."""
    if not any(hours.get(day) for day in DAYS):
        return start + amount
    left = amount
    last = start
    for low, high in spans(hours, timezone, start):
        if high - low >= left:
            return low + left
        left -= high - low
        last = high
    return last + left
