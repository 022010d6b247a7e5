"""Durations in rules and settings: ``"90m"``, ``"12h"``, ``"7d"``, ``"2w"``."""

from __future__ import annotations

import re
from datetime import timedelta

PATTERN = re.compile(r"^(\d{1,6})([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
LONGEST = timedelta(days=36_525)  # 100 years: "now" moved by any duration is still a date


def parse(text: str) -> timedelta:
    """A positive duration of at most 100 years; raises ``ValueError`` with the accepted forms.

    Six digits of weeks would be 19,000 years: subtracted from now, no date holds it (a 500 before)."""
    match = PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 90m, 12h, 7d or 2w")
    duration = timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    if duration > LONGEST:
        raise ValueError(f"{text!r} is longer than 100 years")
    return duration
