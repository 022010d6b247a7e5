"""Durations in rules and settings: ``"90m"``, ``"12h"``, ``"7d"``, ``"2w"``."""

from __future__ import annotations

import re
from datetime import timedelta

PATTERN = re.compile(r"^(\d{1,6})([mhdw])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse(text: str) -> timedelta:
    """A positive duration; raises ``ValueError`` with the accepted forms."""
    match = PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration like 90m, 12h, 7d or 2w")
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
