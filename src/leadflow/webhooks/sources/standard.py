"""Standard Webhooks senders (spec v1.0.0): headers ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature`` (``v1,<base64>``, several space-separated during a key rotation), the
HMAC-SHA256 of ``"{id}.{timestamp}.{body}"`` keyed with the decoded ``whsec_`` secret.

The signature is computed by the ``standardwebhooks`` library (:meth:`Webhook.sign`) and compared
here in constant time; the timestamp is checked against the injected clock (the library's ``verify``
reads the wall clock), within the source's tolerance (default 300 s, the spec's). ``webhook-id``
de-duplicates.

The payload's conventional envelope ``{"type", "timestamp", "data"}`` becomes one track event named
by ``type`` with ``data`` as its properties, for the person whose email ``data`` (or a ``customer``,
``contact`` or ``user`` object in it, or the envelope) names.
"""

from __future__ import annotations

import binascii
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook

from leadflow.webhooks.sources.common import (
    Kind,
    Translation,
    Unprocessable,
    check_fresh,
    email_of,
    iso_time,
    refuse,
    text,
)

ID, TIMESTAMP, SIGNATURE = "webhook-id", "webhook-timestamp", "webhook-signature"
MAX_ID = 255


def signer(secret: str) -> Webhook:
    """The library's signer for a ``whsec_`` secret; ``ValueError`` when it is not base64."""
    try:
        return Webhook(secret)
    except (binascii.Error, ValueError, RuntimeError) as exc:
        raise ValueError(f"not a Standard Webhooks secret (whsec_ + base64): {exc}") from None


def verify(body: bytes, headers: Mapping[str, str], secret: str, tolerance: int, now: datetime) -> None:
    msg_id, stamp, signatures = headers.get(ID), headers.get(TIMESTAMP), headers.get(SIGNATURE)
    if not (msg_id and stamp and signatures):
        raise refuse("a Standard Webhooks delivery needs webhook-id, webhook-timestamp and webhook-signature")
    if len(msg_id) > MAX_ID:
        raise refuse(f"the webhook-id is longer than {MAX_ID} characters")
    seconds = check_fresh(stamp, now, tolerance, "Standard Webhooks") if stamp.isdigit() else None
    if seconds is None:
        raise refuse("the webhook-timestamp is not a Unix time")
    expected = signer(secret).sign(msg_id, datetime.fromtimestamp(seconds, tz=UTC), body).encode()
    if not any(hmac.compare_digest(expected, given.encode()) for given in signatures.split(" ")):
        raise refuse("no webhook-signature matches the payload")


def sender_id(payload: Any, headers: Mapping[str, str], body: bytes) -> str:
    return headers.get(ID, "")[:MAX_ID]


def event_type(payload: Any, headers: Mapping[str, str]) -> str | None:
    return text(payload.get("type")) if isinstance(payload, dict) else None


def _nested_emails(data: dict[str, Any]) -> list[Any]:
    found = [data.get("email")]
    for key in ("customer", "contact", "user"):
        inner = data.get(key)
        if isinstance(inner, dict):
            found.append(inner.get("email"))
    return found


def translate(payload: Any) -> Translation:
    name = event_type(payload, {})
    if name is None:
        raise Unprocessable("a Standard Webhooks payload needs its 'type' (the event name)")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise Unprocessable("a Standard Webhooks payload carries its properties as the object 'data'")
    email = email_of(*_nested_emails(data), payload.get("email"))
    return Translation(email=email, occurred_at=iso_time(payload.get("timestamp")), events=[(name, data)])


KIND = Kind(
    name="standard",
    default_tolerance=300,
    verify=verify,
    sender_id=sender_id,
    event_type=event_type,
    translate=translate,
)
