"""Amazon SNS as a test can be it: a real RSA key and self-signed certificate, messages signed the way SNS
signs them (``SignatureVersion`` 1: SHA1withRSA, 2: SHA256withRSA), and the certificate served by a real
HTTP server on 127.0.0.1.

leadflow fetches certificates only from addresses matching ``LEADFLOW_SNS_CERT_URL_PATTERN`` (Amazon's
by default) through the network guard: a test admits this peer with :data:`LOCAL_CERTS`
(``@pytest.mark.settings(**LOCAL_CERTS)``, or ``configured(**LOCAL_CERTS)``).
"""

from __future__ import annotations

import base64
import functools
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from leadflow.kernel.clock import Clock
from leadflow.messaging.feedback import sns
from tests.peers.http_receiver import HttpReceiver, Reply

LOCAL_CERTS: dict[str, Any] = {
    "sns_cert_url_pattern": r"^http://127\.0\.0\.1:\d+/[^/?#]+\.pem$",
    "network_allow": "127.0.0.1",
}
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
CERT_PATH = "/SimpleNotificationService-0123456789abcdef.pem"
HASHES = {"1": hashes.SHA1(), "2": hashes.SHA256()}


@functools.cache
def rsa_key(number: int = 0) -> rsa.RSAPrivateKey:
    """A 2048-bit RSA key, made once per test run (``number`` tells keys apart)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate(key: rsa.RSAPrivateKey, not_before: datetime, not_after: datetime) -> bytes:
    """A self-signed PEM certificate of ``key``, valid from ``not_before`` to ``not_after``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    made = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return made.public_bytes(serialization.Encoding.PEM)


def sns_time(moment: datetime) -> str:
    """``2026-03-02T09:00:00.000Z``, as SNS writes its ``Timestamp``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class SnsPeer:
    """``with SnsPeer(clock) as sns:`` serves a certificate valid around ``clock.now()`` (``expired``: one
    that ended yesterday) at :attr:`cert_url`; :meth:`notification` and :meth:`confirmation` make signed
    messages, :meth:`sign` signs any."""

    def __init__(self, clock: Clock, *, expired: bool = False) -> None:
        self.clock = clock
        now = clock.now()
        if expired:
            start, end = now - timedelta(days=30), now - timedelta(days=1)
        else:
            start, end = now - timedelta(days=1), now + timedelta(days=365)
        pem = certificate(rsa_key(), start, end)
        self.receiver = HttpReceiver(default=Reply(200, pem, {"Content-Type": "application/x-pem-file"}))

    def __enter__(self) -> SnsPeer:
        self.receiver.__enter__()
        return self

    def __exit__(self, *_: object) -> None:
        self.receiver.__exit__()

    @property
    def cert_url(self) -> str:
        return self.receiver.url + CERT_PATH

    @property
    def fetches(self) -> int:
        """How many times the certificate was requested."""
        return len(self.receiver.requests)

    def sign(
        self,
        message: dict[str, Any],
        *,
        version: str = "1",
        key: rsa.RSAPrivateKey | None = None,
        cert_url: str | None = None,
    ) -> dict[str, Any]:
        """``message`` with ``SignatureVersion``, ``Signature`` and ``SigningCertURL`` added, signed with
        this peer's key (or ``key``) over the string leadflow rebuilds (:func:`sns.string_to_sign`)."""
        signer = key or rsa_key()
        algorithm = HASHES.get(version, hashes.SHA256())
        signature = signer.sign(sns.string_to_sign(message), padding.PKCS1v15(), algorithm)
        return {
            **message,
            "SignatureVersion": version,
            "Signature": base64.b64encode(signature).decode(),
            "SigningCertURL": cert_url or self.cert_url,
        }

    def envelope(self, kind: str, **fields: Any) -> dict[str, Any]:
        """An unsigned message of ``kind`` sent now, with SNS's usual fields."""
        return {
            "Type": kind,
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC,
            "Timestamp": sns_time(self.clock.now()),
            "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
            **fields,
        }

    def notification(self, inner: dict[str, Any], *, version: str = "1", **fields: Any) -> dict[str, Any]:
        """A signed ``Notification`` carrying the SES notification ``inner``."""
        message = self.envelope("Notification", Message=json.dumps(inner), **fields)
        return self.sign(message, version=version)

    def confirmation(
        self, subscribe_url: str, *, version: str = "1", cert_url: str | None = None
    ) -> dict[str, Any]:
        """A signed ``SubscriptionConfirmation`` whose ``SubscribeURL`` is ``subscribe_url``."""
        message = self.envelope(
            "SubscriptionConfirmation",
            Token="2336412f37f",
            Message=f"You have chosen to subscribe to the topic {TOPIC}.",
            SubscribeURL=subscribe_url,
        )
        return self.sign(message, version=version, cert_url=cert_url)
