"""Today's date where each contact lives, for ``anniversary_today`` (birthdays, customer-since)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from leadflow.kernel import isodates

ZONES = tuple(sorted(available_timezones() | {"UTC"}))


@lru_cache(maxsize=64)
def _pairs_for(minute: datetime) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for zone in ZONES:
        local = minute.astimezone(ZoneInfo(zone))
        today = local.strftime("%m-%d")
        pairs.append((zone, today))
        if today == "02-28" and not isodates.is_leap(local.year):
            pairs.append((zone, "02-29"))
    return tuple(pairs)


def today_pairs(now: datetime) -> list[tuple[str, str]]:
    """(IANA zone, ``MM-DD`` today there) for every zone; a 29 February birthday is also matched on
    28 February of a common year."""
    return list(_pairs_for(now.replace(second=0, microsecond=0)))
