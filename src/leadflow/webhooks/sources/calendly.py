"""Calendly: ``Calendly-Webhook-Signature: t=<unix>,v1=<hex>``, the HMAC-SHA256 (hex) of
``"{t}.{raw body}"`` keyed with the webhook signing key; refused outside the source's window (default
180 s: Calendly signs when it sends, so a few minutes cover clock drift and nothing else).

Calendly gives its deliveries no id: one is the digest of the event name, the invitee's URI and the
envelope's ``created_at`` (a top-level ``id`` is used when present). A reschedule arrives as
``invitee.canceled`` with ``rescheduled: true``, then ``invitee.created`` for the new time:

* ``invitee.created`` → ``consultation_scheduled`` (start, end, the scheduled event's URI and name,
  the invitee's URI, cancel and reschedule links, whether it replaces an earlier booking);
* ``invitee.canceled`` → ``consultation_canceled`` (the same, ``rescheduled``, the reason and who
  cancelled).

The invitee's email identifies the person; their name becomes traits.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from leadflow.webhooks.sources.common import (
    Kind,
    Translation,
    Unprocessable,
    check_fresh,
    digest_id,
    email_of,
    iso_time,
    parse_pairs,
    refuse,
    text,
)

HEADER = "calendly-webhook-signature"
EVENTS = {"invitee.created": "consultation_scheduled", "invitee.canceled": "consultation_canceled"}


def signature(secret: str, stamp: str, body: bytes) -> str:
    """The ``v1`` value Calendly sends for ``body`` signed at ``stamp``."""
    return hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(body: bytes, headers: Mapping[str, str], secret: str, tolerance: int, now: datetime) -> None:
    stamp, signatures = parse_pairs(headers.get(HEADER), "Calendly")
    expected = signature(secret, stamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise refuse("the Calendly signature does not match the payload")
    check_fresh(stamp, now, tolerance, "Calendly")


def _payload(envelope: Any) -> dict[str, Any]:
    inner = envelope.get("payload") if isinstance(envelope, dict) else None
    return inner if isinstance(inner, dict) else {}


def sender_id(envelope: Any, headers: Mapping[str, str], body: bytes) -> str:
    if isinstance(envelope, dict) and text(envelope.get("id")):
        return str(envelope["id"])[:255]
    invitee = text(_payload(envelope).get("uri"))
    if invitee is None or not isinstance(envelope, dict):
        return digest_id("calendly", body.decode("utf-8", "replace"))
    return digest_id(str(envelope.get("event")), invitee, str(envelope.get("created_at")))


def event_type(envelope: Any, headers: Mapping[str, str]) -> str | None:
    return text(envelope.get("event")) if isinstance(envelope, dict) else None


def _scheduled(payload: dict[str, Any]) -> dict[str, Any]:
    found = payload.get("scheduled_event")
    return found if isinstance(found, dict) else {}


def translate(envelope: Any) -> Translation:
    kind = event_type(envelope, {})
    if kind not in EVENTS:
        raise Unprocessable(f"Calendly event {kind!r} is not one leadflow handles ({', '.join(EVENTS)})")
    payload = _payload(envelope)
    email = email_of(payload.get("email"))
    scheduled = _scheduled(payload)
    properties: dict[str, Any] = {
        "email": email,
        "name": payload.get("name"),
        "start_time": scheduled.get("start_time"),
        "end_time": scheduled.get("end_time"),
        "event_uri": payload.get("event") or scheduled.get("uri"),
        "event_name": scheduled.get("name"),
        "invitee_uri": payload.get("uri"),
        "cancel_url": payload.get("cancel_url"),
        "reschedule_url": payload.get("reschedule_url"),
    }
    if kind == "invitee.created":
        properties["rescheduled"] = bool(payload.get("old_invitee"))
    else:
        cancellation = payload.get("cancellation")
        cancellation = cancellation if isinstance(cancellation, dict) else {}
        properties["rescheduled"] = payload.get("rescheduled") is True
        properties["reason"] = cancellation.get("reason")
        properties["canceled_by"] = cancellation.get("canceled_by")
    traits = {
        key: payload[key] for key in ("name", "first_name", "last_name") if text(payload.get(key)) is not None
    }
    return Translation(
        email=email,
        occurred_at=iso_time(envelope.get("created_at")),
        events=[(EVENTS[kind], properties)],
        traits=traits,
    )


KIND = Kind(
    name="calendly",
    default_tolerance=180,
    verify=verify,
    sender_id=sender_id,
    event_type=event_type,
    translate=translate,
)
