"""When things happen in a contact's own time: quiet hours, "next 09:00 on a weekday", split buckets,
and moments carried by the data ("24 hours before the consultation's start")."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from leadflow.journeys import definitions
from leadflow.segments import service as segments

UTC = ZoneInfo("UTC")


def zone(name: str | None, default: str) -> ZoneInfo:
    """The contact's time zone, else the installation default, else UTC (an unknown name is ignored)."""
    for candidate in (name, default):
        if candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return UTC


def quiet_until(now: datetime, tz: ZoneInfo, quiet: definitions.QuietHours) -> datetime | None:
    """The end of the quiet period ``now`` falls in (local time), or None when sending is allowed.

    Quiet hours may span midnight (22:00 to 08:00). The end is computed as a local wall-clock time, so a
    daylight-saving change in between still ends the hold at 08:00 local.
    """
    local = now.astimezone(tz)
    start, end = definitions.parse_time(quiet.start), definitions.parse_time(quiet.end)
    moment = local.time()
    if start < end:
        inside = start <= moment < end
        end_day = local.date()
    else:
        inside = moment >= start or moment < end
        end_day = local.date() + timedelta(days=1) if moment >= start else local.date()
    if not inside:
        return None
    return datetime.combine(end_day, end, tzinfo=tz).astimezone(UTC)


def next_time(now: datetime, tz: ZoneInfo, at: str, weekdays: list[str]) -> datetime:
    """The first moment after ``now`` that is ``at`` o'clock local time on one of ``weekdays``
    (now itself when it is exactly that moment)."""
    local = now.astimezone(tz)
    clock = definitions.parse_time(at)
    allowed = {definitions.WEEKDAYS.index(day) for day in weekdays}
    for offset in range(8):
        day = local.date() + timedelta(days=offset)
        if day.weekday() not in allowed:
            continue
        candidate = datetime.combine(day, clock, tzinfo=tz)
        if candidate >= local:
            return candidate.astimezone(UTC)
    raise ValueError("no allowed weekday")  # pragma: no cover - weekdays is never empty


def moment(value: Any) -> datetime:
    """An ISO-8601 date and time with its UTC offset (``2026-03-01T10:00:00+01:00``, ``…Z``), in UTC.
    Anything else — empty, not a time, a time without an offset (whose zone would be a guess) — is a
    ``ValueError`` saying what was given and what is expected."""
    text = str(value).strip() if value is not None else ""
    if not text:
        raise ValueError("the time is empty")
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:100]!r} is not an ISO-8601 time like 2026-03-01T10:00:00+01:00") from None
    if found.tzinfo is None:
        raise ValueError(f"{text[:100]!r} has no UTC offset (like +01:00 or Z)")
    return found.astimezone(UTC)


def shift(offset: str | None) -> timedelta:
    """A signed duration of the segment language: ``-24h`` (before), ``30m`` or ``+30m`` (after)."""
    if not offset:
        return timedelta(0)
    text = offset.strip()
    size = segments.parse_duration(text.removeprefix("-").removeprefix("+"))
    return -size if text.startswith("-") else size


def bucket(*parts: str) -> float:
    """A stable number in [0, 100) for these parts: the same contact always lands in the same place."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100


def split_path(journey_id: str, step: definitions.Split, contact_id: str) -> tuple[str, str | None]:
    """The path a contact takes at a split, by weight, deterministic per (journey, step, contact);
    the first ``holdout`` percent leave as the control group (path ``holdout``, no next step)."""
    point = bucket(journey_id, step.id, contact_id)
    if point < step.holdout:
        return "holdout", None
    rest = (point - step.holdout) / (100 - step.holdout)
    total = sum(path.weight for path in step.paths)
    running = 0.0
    for path in step.paths:
        running += path.weight / total
        if rest < running:
            return path.name, path.next
    last = step.paths[-1]
    return last.name, last.next
