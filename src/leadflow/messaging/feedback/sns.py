"""Amazon SNS messages (SES bounce and complaint notifications): signatures verified, subscriptions confirmed.

The API key in the address SNS calls says the request may write; SNS's own signature says Amazon wrote
this very message, recently. Every message posted to ``/api/v1/email/feedback/ses`` — ``Notification``,
``SubscriptionConfirmation``, ``UnsubscribeConfirmation`` — is verified before anything is done with it,
as AWS documents ("Verifying the signatures of Amazon SNS messages"):

* **The string SNS signed** is rebuilt from the message: ``Key\\nvalue\\n`` for each signed key in a fixed
  order (:data:`SIGNED_KEYS`; a notification's ``Subject`` only when it has one). Every other key is
  unsigned and ignored.
* **The algorithm**: ``SignatureVersion`` ``1`` is SHA1withRSA, ``2`` SHA256withRSA (PKCS #1 v1.5); the
  ``Signature`` is base64. Any other version is refused.
* **The certificate** is fetched from ``SigningCertURL`` only when the address matches
  ``LEADFLOW_SNS_CERT_URL_PATTERN`` (by default ``https`` on an ``sns.<region>.amazonaws.com`` or
  ``.amazonaws.com.cn`` host, one path segment ending ``.pem``), carries no credentials, query or
  fragment, and reads as the same host to both URL parsers leadflow has; ``sns.x.amazonaws.com.evil.com``
  or ``http://`` never is. The fetch goes over TLS through the network guard
  (:mod:`leadflow.kernel.netguard`), the certificate is kept per URL (:class:`Certificates`: at most
  :data:`CERT_CACHE_SIZE` of them, each for :data:`CERT_TTL`), and it must be an RSA certificate valid
  now (the injected clock).
* **Freshness**: a ``Timestamp`` older than :data:`MAX_AGE` (SNS's longest HTTP retry policy) or more than
  :data:`AHEAD` in the future is refused as a replay. Within that hour SNS may deliver a notification
  again: its ``MessageId`` is remembered with the signed content (:mod:`leadflow.webhooks.replay`, source
  ``sns``) in the transaction that applies it, so a repeat applies nothing.

A message that fails any check is ``403 invalid_sns_signature`` with the reason, changes nothing, is
logged, and counted as ``leadflow_http_errors_total{code="invalid_sns_signature"}``. A certificate that
cannot be fetched right now (network error, SNS answering 5xx) is ``502 sns_certificate_unavailable``, so
SNS retries. A notification without its signed envelope (SNS *raw message delivery*) cannot be verified
and is refused: raw delivery must be off for this subscription.

Confirmations: SNS delivers nothing to an HTTPS endpoint until the endpoint confirms the subscription by
fetching the ``SubscribeURL`` of the (verified) ``SubscriptionConfirmation``; it is fetched only when it
matches ``LEADFLOW_SNS_SUBSCRIBE_URL_PATTERN`` (by default an ``https`` address of an
``sns.<region>.amazonaws.com`` host), through the network guard.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from leadflow.kernel import netguard
from leadflow.kernel.context import AppContext, Slot
from leadflow.kernel.errors import BadRequest, Forbidden, Upstream
from leadflow.kernel.settings import Settings
from leadflow.webhooks.service import Seal, digest

__all__ = [
    "Certificates",
    "Refused",
    "certificates",
    "check_cert_url",
    "confirm",
    "confirmation",
    "string_to_sign",
    "verify",
]

log = logging.getLogger(__name__)

TIMEOUT = 10.0
NOTIFICATION = "Notification"
_CONFIRMATION_KEYS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
SIGNED_KEYS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _CONFIRMATION_KEYS,
    "UnsubscribeConfirmation": _CONFIRMATION_KEYS,
}
OPTIONAL_KEYS = frozenset({"Subject"})
ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}
MAX_AGE = timedelta(hours=1)
AHEAD = timedelta(minutes=5)
CERT_TTL = timedelta(hours=24)
CERT_CACHE_SIZE = 32
CERT_LIMIT = 64 * 1024  # bytes: a PEM certificate is about 2 KiB
MESSAGE_ID_LIMIT = 200  # characters the replay table keeps (SNS's are 36)


class Refused(Forbidden):
    """An SNS message whose signature does not prove Amazon sent it, now: ``403 invalid_sns_signature``."""

    code = "invalid_sns_signature"


def _text(message: Mapping[str, Any], key: str) -> str:
    value = message.get(key)
    if not isinstance(value, str):
        raise Refused(f"the SNS message has no {key} string")
    return value


def string_to_sign(message: Mapping[str, Any]) -> bytes:
    """The bytes SNS signed: ``Key\\nvalue\\n`` for each signed key of the message's ``Type``, in order."""
    kind = message.get("Type")
    keys = SIGNED_KEYS.get(kind) if isinstance(kind, str) else None
    if keys is None:
        raise Refused(f"not an SNS message (Type {kind!r}); is raw message delivery on?")
    parts = [
        f"{key}\n{_text(message, key)}\n"
        for key in keys
        if key not in OPTIONAL_KEYS or message.get(key) is not None
    ]
    return "".join(parts).encode()


def _timestamp(message: Mapping[str, Any], now: datetime) -> datetime:
    """The message's ``Timestamp``, refused when older than :data:`MAX_AGE` or ahead by :data:`AHEAD`."""
    try:
        moment = datetime.fromisoformat(_text(message, "Timestamp"))
    except ValueError:
        raise Refused("the SNS Timestamp is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise Refused("the SNS Timestamp has no time zone")
    if now - moment > MAX_AGE:
        raise Refused("the SNS message is more than an hour old (a replay?)")
    if moment - now > AHEAD:
        raise Refused("the SNS message is dated more than 5 minutes ahead")
    return moment


def check_cert_url(url: str, settings: Settings) -> None:
    """Refuse a ``SigningCertURL`` that is not where Amazon keeps SNS certificates (see the module doc)."""
    if not re.match(settings.sns_cert_url_pattern, url):
        raise Refused("the SigningCertURL is not an Amazon SNS address (LEADFLOW_SNS_CERT_URL_PATTERN)")
    try:
        parts, parsed = urlsplit(url), httpx.URL(url)
    except (ValueError, httpx.InvalidURL):
        raise Refused("the SigningCertURL is not a URL") from None
    if (
        parts.username is not None
        or parsed.userinfo
        or parts.query
        or parts.fragment
        or not parts.path.endswith(".pem")
        or (parts.hostname or "") != parsed.host
    ):
        raise Refused("the SigningCertURL is not the address of an SNS certificate (.pem)")


@dataclass(frozen=True)
class _Held:
    certificate: x509.Certificate
    fetched_at: datetime


class Certificates:
    """SNS signing certificates by URL, in memory: the most recently used :data:`CERT_CACHE_SIZE`, each
    fetched again after :data:`CERT_TTL`. A failed fetch is not kept (SNS retries; so may we)."""

    def __init__(self) -> None:
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, url: str, settings: Settings, now: datetime) -> x509.Certificate:
        with self._lock:
            held = self._held.get(url)
            if held is not None and now - held.fetched_at < CERT_TTL:
                self._held.move_to_end(url)
                return held.certificate
        certificate = _fetch(url, settings)  # outside the lock: a slow fetch holds up no other
        with self._lock:
            self._held[url] = _Held(certificate, now)
            self._held.move_to_end(url)
            while len(self._held) > CERT_CACHE_SIZE:
                self._held.popitem(last=False)
        return certificate


def _download(url: str, settings: Settings) -> bytes:
    try:
        with (
            netguard.client(settings, timeout=TIMEOUT) as client,
            client.stream("GET", url) as answer,
        ):
            if 400 <= answer.status_code < 500:
                raise Refused(f"SNS has no certificate at the SigningCertURL (HTTP {answer.status_code})")
            if answer.status_code != 200:
                raise Upstream(
                    f"SNS answered HTTP {answer.status_code} for its signing certificate",
                    code="sns_certificate_unavailable",
                )
            body = b""
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > CERT_LIMIT:
                    raise Refused("the SigningCertURL holds more than a certificate")
            return body
    except netguard.Blocked as exc:
        raise Refused(f"the SigningCertURL is refused: {exc}") from None
    except httpx.HTTPError as exc:
        raise Upstream(
            f"the SNS signing certificate could not be fetched: {exc}", code="sns_certificate_unavailable"
        ) from None


def _fetch(url: str, settings: Settings) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_download(url, settings))
    except ValueError:
        raise Refused("the SigningCertURL does not hold a PEM certificate") from None


_CERTIFICATES: Slot[Certificates] = Slot("messaging.sns.certificates", lambda _ctx: Certificates())


def certificates(ctx: AppContext) -> Certificates:
    """The certificate cache of ``ctx`` (one per process)."""
    return ctx.get(_CERTIFICATES)


def _public_key(certificate: x509.Certificate, now: datetime) -> rsa.RSAPublicKey:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise Refused("the SNS signing certificate is not valid now (expired, or not yet valid)")
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise Refused("the SNS signing certificate does not hold an RSA key")
    return key


def _check(ctx: AppContext, message: Mapping[str, Any], now: datetime) -> datetime:
    """Every check of the module doc but the replay of a message id; returns the message's time."""
    signed = string_to_sign(message)
    version = message.get("SignatureVersion")
    algorithm = ALGORITHMS.get(version) if isinstance(version, str) else None
    if algorithm is None:
        raise Refused(f"unknown SNS SignatureVersion {version!r} (1 or 2)")
    try:
        signature = base64.b64decode(_text(message, "Signature"), validate=True)
    except binascii.Error:
        raise Refused("the SNS Signature is not base64") from None
    moment = _timestamp(message, now)
    url = _text(message, "SigningCertURL")
    check_cert_url(url, ctx.settings)
    key = _public_key(certificates(ctx).get(url, ctx.settings, now), now)
    try:
        key.verify(signature, signed, padding.PKCS1v15(), algorithm())
    except InvalidSignature:
        raise Refused("the SNS signature does not match the message") from None
    return moment


def _seal(message: Mapping[str, Any], moment: datetime) -> Seal | None:
    """A notification's ``MessageId`` with a digest of what was signed, remembered until the message
    would be refused as stale anyway; confirmations need none (confirming twice is harmless)."""
    if message["Type"] != NOTIFICATION:
        return None
    message_id = _text(message, "MessageId")
    if not 0 < len(message_id) <= MESSAGE_ID_LIMIT:
        raise Refused(f"the SNS MessageId must be 1 to {MESSAGE_ID_LIMIT} characters")
    signed = {key: message[key] for key in SIGNED_KEYS[NOTIFICATION] if message.get(key) is not None}
    return Seal("sns", message_id, digest(signed), moment + MAX_AGE)


def verify(ctx: AppContext, payload: Any) -> Seal | None:
    """Refuse ``payload`` unless it is an SNS message Amazon signed within the hour (``403
    invalid_sns_signature``, logged). For a notification, returns its ``MessageId`` as the
    :class:`~leadflow.webhooks.replay.Seal` to remember when applying it."""
    try:
        if not isinstance(payload, dict):
            raise Refused("not an SNS message (a JSON object)")
        return _seal(payload, _check(ctx, payload, ctx.clock.now()))
    except Refused as exc:
        topic = payload.get("TopicArn") if isinstance(payload, dict) else None
        log.warning("SNS message refused (topic %r): %s", topic, exc.message)
        raise


def confirmation(payload: Any) -> str | None:
    """The ``SubscribeURL`` when ``payload`` is an SNS subscription confirmation, else ``None``."""
    if not isinstance(payload, dict) or payload.get("Type") != "SubscriptionConfirmation":
        return None
    url = payload.get("SubscribeURL")
    if not isinstance(url, str) or not url:
        raise BadRequest("an SNS SubscriptionConfirmation without a SubscribeURL", code="invalid_feedback")
    return url


def confirm(url: str, settings: Settings) -> None:
    """Fetch ``url`` (a ``SubscribeURL``) if it matches ``LEADFLOW_SNS_SUBSCRIBE_URL_PATTERN`` and the
    network guard lets it through; SNS answers 200 when confirmed."""
    if not re.match(settings.sns_subscribe_url_pattern, url):
        raise BadRequest(
            "the SubscribeURL is not an Amazon SNS address (LEADFLOW_SNS_SUBSCRIBE_URL_PATTERN)",
            code="untrusted_subscribe_url",
        )
    try:
        with netguard.client(settings, timeout=TIMEOUT) as client:
            answer = client.get(url)
    except netguard.Blocked as exc:
        raise BadRequest(f"the SubscribeURL is refused: {exc}", code="untrusted_subscribe_url") from None
    except httpx.HTTPError as exc:
        raise Upstream(f"SNS could not be reached: {exc}", code="sns_confirmation_failed") from None
    if answer.status_code != 200:
        raise Upstream(
            f"SNS refused the confirmation: HTTP {answer.status_code} {answer.text[:200]}",
            code="sns_confirmation_failed",
        )
    log.info("SNS subscription confirmed: %s", url.split("?", 1)[0])
