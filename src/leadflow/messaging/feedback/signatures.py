"""Providers' own signatures on bounce and complaint webhooks, checked when their key is configured.

The API key (a header, or Basic credentials in the address) says the request may write; a provider's
signature says the provider wrote this very payload, recently. Both are checked when a key is set:

* **SendGrid** (signed Event Webhook, ``LEADFLOW_SENDGRID_VERIFICATION_KEY``): an ECDSA P-256 / SHA-256
  signature (base64 DER, ``X-Twilio-Email-Event-Webhook-Signature``) over the timestamp header
  (``X-Twilio-Email-Event-Webhook-Timestamp``) followed by the raw body; the public key is the base64
  DER ``SubjectPublicKeyInfo`` SendGrid shows (PEM is accepted too).
* **Mailgun** (``LEADFLOW_MAILGUN_SIGNING_KEY``): the payload's ``signature`` block, whose ``signature``
  is the hex HMAC-SHA256 of ``timestamp`` followed by ``token`` under the signing key.

A timestamp further than :data:`TOLERANCE` from the injected clock is refused (a replayed request), and
so is a missing or wrong signature: ``401 invalid_signature``, nothing applied.

Within those minutes a signature could be posted again. What stops a replay with new content:

* SendGrid signs the body itself: other content breaks the signature. The same body again applies
  nothing new (feedback is idempotent).
* Mailgun signs only ``timestamp + token``, not ``event-data``: :func:`check` returns the token as a
  :class:`~leadflow.webhooks.replay.Seal` with the payload's digest, remembered in the transaction that
  applies it; the token again with other content is ``409 signature_replayed``
  (:mod:`leadflow.webhooks.replay`).
* Postmark sends no signature: the API key in the address it calls authenticates it, and whoever holds
  it may write feedback anyway.

Amazon SNS (SES feedback) signs every message with a certificate of its own: :mod:`.sns` verifies each,
always (no key to configure), and remembers notifications' ``MessageId`` the same way.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from leadflow.kernel.errors import Misconfigured, Unauthorized
from leadflow.kernel.settings import Settings
from leadflow.webhooks.service import Seal, digest

TOLERANCE = timedelta(minutes=5)
SENDGRID_SIGNATURE = "x-twilio-email-event-webhook-signature"
SENDGRID_TIMESTAMP = "x-twilio-email-event-webhook-timestamp"
TOKEN_LIMIT = 200  # characters of a Mailgun token we remember (theirs are 50)


def _refuse(message: str) -> Unauthorized:
    return Unauthorized(message, code="invalid_signature")


def _fresh(timestamp: str, now: datetime, provider: str) -> datetime:
    """The signature's time, if within :data:`TOLERANCE` of ``now``."""
    try:
        moment = datetime.fromtimestamp(int(timestamp), tz=now.tzinfo)
    except (ValueError, OverflowError, OSError):
        raise _refuse(f"the {provider} signature timestamp is not a Unix time") from None
    if abs(now - moment) > TOLERANCE:
        raise _refuse(f"the {provider} signature is more than 5 minutes away from now (a replay?)")
    return moment


@functools.lru_cache(maxsize=4)
def sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or PEM, parsed once per process. A key
    that is neither answers ``500 misconfigured``: SendGrid retries, so nothing is lost once fixed."""
    try:
        key = (
            serialization.load_pem_public_key(text.encode())
            if "BEGIN PUBLIC KEY" in text
            else serialization.load_der_public_key(base64.b64decode(text.strip(), validate=True))
        )
    except (ValueError, binascii.Error):
        raise Misconfigured("LEADFLOW_SENDGRID_VERIFICATION_KEY is not a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise Misconfigured("LEADFLOW_SENDGRID_VERIFICATION_KEY is not an elliptic-curve key")
    return key


def check_sendgrid(key: str, body: bytes, headers: Mapping[str, str], now: datetime) -> None:
    public = sendgrid_key(key)
    signature, timestamp = headers.get(SENDGRID_SIGNATURE), headers.get(SENDGRID_TIMESTAMP)
    if not signature or not timestamp:
        raise _refuse("a signed SendGrid webhook needs the X-Twilio-Email-Event-Webhook-* headers")
    _fresh(timestamp, now, "SendGrid")
    try:
        public.verify(
            base64.b64decode(signature, validate=True), timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, binascii.Error):
        raise _refuse("the SendGrid signature does not match the payload") from None


def check_mailgun(key: str, payload: Any, now: datetime) -> Seal:
    """Verify the signature block; returns its token, to be remembered (Mailgun does not sign the
    ``event-data``, so the token is what ties the signature to one content)."""
    block = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(block, dict) or not all(isinstance(block.get(k), str) for k in ("timestamp", "token")):
        raise _refuse("a Mailgun webhook needs its signature block (timestamp, token, signature)")
    if not 0 < len(block["token"]) <= TOKEN_LIMIT:
        raise _refuse(f"the Mailgun signature token must be 1 to {TOKEN_LIMIT} characters")
    signed_at = _fresh(block["timestamp"], now, "Mailgun")
    expected = hmac.new(key.encode(), (block["timestamp"] + block["token"]).encode(), hashlib.sha256)
    if not hmac.compare_digest(expected.hexdigest(), str(block.get("signature") or "")):
        raise _refuse("the Mailgun signature does not match the signing key")
    return Seal("mailgun", block["token"], digest(payload), signed_at + TOLERANCE)


def check(
    provider: str, body: bytes, payload: Any, headers: Mapping[str, str], settings: Settings, now: datetime
) -> Seal | None:
    """Refuse a webhook whose provider signs and whose signature is missing, wrong or stale. Returns
    the :class:`Seal` to remember when the signature does not cover the content (Mailgun), else None."""
    if provider == "sendgrid" and settings.sendgrid_verification_key is not None:
        check_sendgrid(settings.sendgrid_verification_key.get_secret_value(), body, headers, now)
    elif provider == "mailgun" and settings.mailgun_signing_key is not None:
        return check_mailgun(settings.mailgun_signing_key.get_secret_value(), payload, now)
    return None
