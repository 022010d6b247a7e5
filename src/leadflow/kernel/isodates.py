"""The one date grammar rules accept, read identically by Python, SQLite and PostgreSQL.

``YYYY-MM-DD``, optionally ``(T| )HH:MM[:SS[.ffffff]]``, optionally ``Z`` or ``±HH:MM`` (up to ±14:59).
No offset means UTC. Anything else — including impossible dates such as 02-30 — is "not a date".
SQLite reads it through the ``leadflow_julian`` function registered on every connection; PostgreSQL
through ``leadflow_try_timestamptz`` (created by a migration), guarded by the same pattern.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

PATTERN = (
    r"^\d{4}-\d{2}-\d{2}"
    r"([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?)?"
    r"(Z|[+-](0\d|1[0-4]):[0-5]\d)?$"
)
ISO_DATE = re.compile(PATTERN, re.ASCII)


def parse(text: object) -> datetime | None:
    """The instant a string names (UTC when it has no offset), or None."""
    if not isinstance(text, str) or not ISO_DATE.match(text):
        return None
    try:
        value = datetime.fromisoformat(text)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except (ValueError, OverflowError):  # 0001-01-01T00:00+14:00 is in year 0 in UTC: not a date
        return None


def julian(text: object) -> float | None:
    """The Julian day number of a date string (SQLite's ``julianday`` scale), or None."""
    moment = parse(text)
    return None if moment is None else julian_of(moment)


def julian_of(moment: datetime) -> float:
    return moment.timestamp() / 86400.0 + 2440587.5


def month_day(text: object) -> str | None:
    """``MM-DD`` of a date string, as written (its calendar date), or None."""
    return text[5:10] if isinstance(text, str) and parse(text) is not None else None


def is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
