"""What every incoming sender's module provides, and the rules they share.

A sender's module answers three questions about a delivery:

* ``verify``: is it signed by the holder of the source's secret, recently? A missing or wrong
  signature is ``400 invalid_signature``; a timestamp further than the source's tolerance from the
  injected clock (either way) is ``400 stale_webhook``. Nothing is stored before both hold.
* ``sender_id``: the sender's own id of the event (what it keeps when it delivers again), so a replay
  of one event is recognised whatever its signature and timestamp.
* ``translate``: what the delivery means in the pipeline: the person (by email), their traits, and
  the track events to record. A payload that cannot be read (no email, an unknown shape) raises
  :class:`Unprocessable`: the delivery is kept as ``failed`` with that reason, and can be replayed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leadflow.kernel.errors import BadRequest

INVALID_SIGNATURE = "invalid_signature"
STALE_WEBHOOK = "stale_webhook"


class Unprocessable(Exception):
    """A verified payload that cannot become events; the message is stored as the delivery's error."""


@dataclass(frozen=True)
class Translation:
    """A delivery as the pipeline sees it: one person (``email``, ``traits``), the time it happened, and
    the track events (name, properties) to record for them. ``subject`` is the sender's own id of the
    person (a Stripe customer): a delivery naming only it takes the email an earlier one gave with it."""

    email: str | None
    occurred_at: datetime | None
    events: list[tuple[str, dict[str, Any]]]
    traits: dict[str, Any] = field(default_factory=dict)
    subject: str | None = None


Verify = Callable[[bytes, Mapping[str, str], str, int, datetime], None]


@dataclass(frozen=True)
class Kind:
    """One signing scheme and payload shape. ``default_tolerance``: seconds a signature stays
    acceptable when the source does not say."""

    name: str
    default_tolerance: int
    verify: Verify
    sender_id: Callable[[Any, Mapping[str, str], bytes], str]
    event_type: Callable[[Any, Mapping[str, str]], str | None]
    translate: Callable[[Any], Translation]


def refuse(message: str) -> BadRequest:
    return BadRequest(message, code=INVALID_SIGNATURE)


def check_fresh(timestamp: str, now: datetime, tolerance: int, sender: str) -> int:
    """The signature's Unix time, if within ``tolerance`` seconds of ``now`` (the injected clock)."""
    try:
        seconds = int(timestamp)
    except ValueError:
        raise refuse(f"the {sender} signature timestamp is not a Unix time") from None
    if abs(now.timestamp() - seconds) > tolerance:
        raise BadRequest(
            f"the {sender} signature is more than {tolerance} seconds away from now (a replay?)",
            code=STALE_WEBHOOK,
        )
    return seconds


def parse_pairs(header: str | None, sender: str) -> tuple[str, list[str]]:
    """``t=<unix>,v1=<hex>[,v1=...]`` (Stripe and Calendly): the timestamp and the ``v1`` signatures."""
    if not header:
        raise refuse(f"the {sender} signature header is missing")
    stamp, signatures = "", []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            stamp = value
        elif key == "v1":
            signatures.append(value)
    if not stamp or not signatures:
        raise refuse(f"the {sender} signature header needs t=<unix time> and v1=<signature>")
    return stamp, signatures


def digest_id(*parts: str) -> str:
    """A stable sender id from what identifies an event when the sender gives no id of its own."""
    return "sha256:" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def first_email(*candidates: Any) -> str | None:
    """The first candidate that looks like an address."""
    for value in candidates:
        found = text(value)
        if found is not None and "@" in found:
            return found.strip()
    return None


def email_of(*candidates: Any) -> str:
    """:func:`first_email`; :class:`Unprocessable` without one."""
    found = first_email(*candidates)
    if found is None:
        raise Unprocessable("the payload names no email address to attach its events to")
    return found


def unix_time(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**37:
        return datetime.fromtimestamp(value, tz=UTC)
    return None


def iso_time(value: Any) -> datetime | None:
    found = text(value)
    if found is None:
        return None
    try:
        moment = datetime.fromisoformat(found.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
