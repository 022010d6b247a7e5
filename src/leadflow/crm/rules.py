"""The CRM's business rules on values: roles, time zones, working hours, lead statuses and reasons,
activity kinds.

- A user's working hours are, per weekday (``mon`` … ``sun``), a list of ``["HH:MM", "HH:MM"]``
  intervals in the user's own IANA time zone, each starting before it ends, not overlapping; a
  missing day is a day off. Routing and SLAs (later) count time only inside them.
- A lead's status may move from any status to any other (people correct mistakes), but
  ``unqualified`` and ``lost`` need a reason saying why; other statuses carry none. The first
  status that leaves ``new`` is the lead's first response (as is a logged call, email or meeting).
"""

from __future__ import annotations

import re
from functools import cache
from itertools import pairwise
from typing import Any
from zoneinfo import available_timezones

from leadflow.kernel.errors import Invalid

ROLES = ("admin", "marketer", "sales", "viewer")
STATUSES = ("new", "contacted", "qualified", "unqualified", "customer", "lost")
NEEDS_REASON = frozenset({"unqualified", "lost"})
KINDS = ("call", "meeting", "note", "task", "email")
#: Logged activities that answer a lead: the first one stamps ``first_response_at``.
RESPONSES = frozenset({"call", "meeting", "email"})
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_HOURS: dict[str, list[list[str]]] = {day: [["09:00", "17:00"]] for day in DAYS[:5]}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
MAX_REASON = 2000


def role(value: str) -> str:
    if value not in ROLES:
        raise Invalid(f"unknown role {value!r}; use one of {', '.join(ROLES)}", code="invalid_role")
    return value


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def timezone(value: str) -> str:
    """An IANA time zone name (``Europe/Berlin``) known to this system's time zone database."""
    if value not in _zones():
        raise Invalid(f"unknown time zone {value!r}; use an IANA name", code="invalid_timezone")
    return value


def _minutes(value: Any, where: str) -> int:
    if not isinstance(value, str) or not _CLOCK.match(value):
        raise Invalid(f"{where}: {value!r} is not a time HH:MM", code="invalid_working_hours")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def working_hours(value: Any) -> dict[str, list[list[str]]]:
    """Validated working hours (see the module's docstring), intervals sorted by start."""
    if not isinstance(value, dict):
        raise Invalid("working_hours is an object of weekday -> intervals", code="invalid_working_hours")
    result: dict[str, list[list[str]]] = {}
    for day, intervals in value.items():
        if day not in DAYS:
            raise Invalid(f"unknown weekday {day!r}; use {', '.join(DAYS)}", code="invalid_working_hours")
        if not isinstance(intervals, list) or len(intervals) > 12:
            raise Invalid(f"{day}: a list of up to 12 [start, end] pairs", code="invalid_working_hours")
        spans = []
        for interval in intervals:
            if not isinstance(interval, list) or len(interval) != 2:
                raise Invalid(f"{day}: each interval is [start, end]", code="invalid_working_hours")
            start, end = _minutes(interval[0], day), _minutes(interval[1], day)
            if start >= end:
                raise Invalid(
                    f"{day}: {interval[0]} is not before {interval[1]}", code="invalid_working_hours"
                )
            spans.append((start, end, interval))
        spans.sort(key=lambda span: span[0])
        for previous, current in pairwise(spans):
            if current[0] < previous[1]:
                raise Invalid(f"{day}: intervals overlap", code="invalid_working_hours")
        result[day] = [list(span[2]) for span in spans]
    return result


def capacity(value: int) -> int:
    if value < 0:
        raise Invalid("capacity is 0 or more", code="invalid_capacity")
    return value


def status(value: str) -> str:
    if value not in STATUSES:
        raise Invalid(f"unknown status {value!r}; use one of {', '.join(STATUSES)}", code="invalid_status")
    return value


def reason_for(new_status: str, reason: str | None) -> str | None:
    """The reason a status change keeps: required (non-blank) for unqualified and lost, refused for
    the others."""
    text = reason.strip() if reason else None
    if new_status in NEEDS_REASON:
        if not text:
            raise Invalid(f"a lead marked {new_status} needs a reason", code="reason_required")
        return text[:MAX_REASON]
    if text:
        raise Invalid(f"only {' and '.join(sorted(NEEDS_REASON))} take a reason", code="reason_not_allowed")
    return None


def kind(value: str) -> str:
    if value not in KINDS:
        raise Invalid(f"unknown activity kind {value!r}; use one of {', '.join(KINDS)}", code="invalid_kind")
    return value
