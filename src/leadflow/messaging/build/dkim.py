"""DKIM signing as dkimpy signs: ``rsa-sha256`` or ``ed25519-sha256`` (RFC 8463), chosen by the type of
the configured key.

An Ed25519 signature costs a tenth of an RSA-2048 one (0.03 ms against 0.27 ms here), which matters at
thousands of messages a second; but not every receiver verifies Ed25519 yet (RFC 8463 suggests signing
with both while they catch up), so RSA stays the default advice in ``docs/journeys.md``.

Messages that are plain CRLF text (all of ours) are signed by :mod:`leadflow.messaging.build.dkim_header` with
the key loaded into OpenSSL: the same bytes as ``dkim.sign``, with far less work (dkimpy computes RSA in
pure Python, ~150 signatures/s). ``dkim.sign`` itself signs anything else.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from email.utils import parseaddr
from pathlib import Path

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from leadflow.kernel.clock import Clock, SystemClock
from leadflow.kernel.settings import Settings
from leadflow.messaging.build import dkim_header

DEFAULT_HEADERS: tuple[bytes, ...] = (
    b"From",
    b"To",
    b"Subject",
    b"Date",
    b"Message-ID",
    b"MIME-Version",
    b"Content-Type",
    b"List-Unsubscribe",
    b"List-Unsubscribe-Post",
    b"Reply-To",
)
MIN_KEY_BITS = 1024
CANONICALIZATIONS = ("relaxed/simple", "relaxed/relaxed", "simple/simple", "simple/relaxed")


class DkimSigner:
    """Signs complete RFC 5322 messages for one selector/domain.

    Every header in ``headers`` is listed in ``h=``, present or not: an absent header is signed as empty
    (RFC 6376 §5.4), which verifies fine and stops anyone adding it later (e.g. a second List-Unsubscribe).
    """

    def __init__(
        self,
        *,
        selector: str,
        domain: str,
        private_key_pem: bytes,
        headers: Sequence[bytes] = DEFAULT_HEADERS,
        canonicalization: str = "relaxed/simple",
        clock: Clock | None = None,
    ) -> None:
        if canonicalization not in CANONICALIZATIONS:
            raise ValueError(f"DKIM canonicalization must be one of {', '.join(CANONICALIZATIONS)}")
        header_canon, body_canon = canonicalization.split("/")
        self._canonicalize = (header_canon.encode("ascii"), body_canon.encode("ascii"))
        if not selector.isascii() or not domain.isascii() or not selector or not domain:
            raise ValueError("DKIM selector and domain must be non-empty ASCII (use IDNA for domains)")
        if b"from" not in {header.lower() for header in headers}:
            raise ValueError("the From header must be signed")
        self._selector = selector.encode("ascii")
        self._domain = domain.encode("ascii")
        key = _load_key(private_key_pem)
        if isinstance(key, ed25519.Ed25519PrivateKey):
            self.algorithm = b"ed25519-sha256"
            raw = key.private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
            )
            self._key = base64.b64encode(raw)  # the form dkimpy (PyNaCl) reads
        else:
            self.algorithm = b"rsa-sha256"
            self._key = _serialised(key)
        self._headers = list(headers)
        self._clock = clock or SystemClock()
        self._fast = dkim_header.HeaderSigner(
            selector=self._selector,
            domain=self._domain,
            algorithm=self.algorithm,
            canonicalization=self._canonicalize,
            include=self._headers,
            sign=_signature_of(key),
        )

    def sign(self, message: bytes) -> bytes:
        """``message`` with a ``DKIM-Signature`` header prepended (``t=`` from the clock)."""
        parts = dkim_header.split(message)
        if parts is not None:
            return self._fast.header(*parts, timestamp=int(self._clock.now().timestamp())) + message
        header: bytes = dkim.sign(  # not plain CRLF text: dkimpy parses (and normalises) it
            message,
            self._selector,
            self._domain,
            self._key,
            signature_algorithm=self.algorithm,
            canonicalize=self._canonicalize,
            include_headers=self._headers,
        )
        return header + message


def _signature_of(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> Callable[[bytes], bytes]:
    """The signature of a SHA-256 digest: RSASSA-PKCS1-v1_5 (``rsa-sha256``) or Ed25519 over the digest
    (``ed25519-sha256``, RFC 8463 §3), as dkimpy computes them."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign
    return lambda digest: key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))


def configured(settings: Settings) -> list[tuple[str, str, bytes]]:
    """``(selector, domain, private key PEM)`` for each signature ``LEADFLOW_DKIM_*`` asks for: none (signing
    off), one, or two (``LEADFLOW_DKIM_SECOND_*``: e.g. Ed25519 beside RSA). The domain defaults to the one
    of ``LEADFLOW_EMAIL_FROM``."""
    domain = settings.dkim_domain or parseaddr(settings.email_from)[1].rpartition("@")[2]
    found = []
    for selector, inline, path in (
        (settings.dkim_selector, settings.dkim_private_key, settings.dkim_private_key_file),
        (
            settings.dkim_second_selector,
            settings.dkim_second_private_key,
            settings.dkim_second_private_key_file,
        ),
    ):
        key = inline.get_secret_value().encode() if inline else Path(path).read_bytes() if path else None
        if selector and key:
            found.append((selector, domain, key))
    return found


def dns_strings(record: str) -> str:
    """A TXT value as DNS zone files and most DNS hosts take a long one: quoted strings of at most 255."""
    return " ".join(f'"{record[at : at + 255]}"' for at in range(0, len(record), 255))


def load_private_key(pem_or_path: str) -> bytes:
    """A PEM private key (RSA or Ed25519) given inline (``\\n`` escapes allowed, as in env vars) or as a
    file path; returned in the form the signer keeps (RSA: PKCS#1, Ed25519: PKCS#8)."""
    if "-----BEGIN" in pem_or_path:
        text = pem_or_path if "\n" in pem_or_path else pem_or_path.replace("\\n", "\n")
        return _normalised_pem(text.encode("ascii"))
    return _normalised_pem(Path(pem_or_path).read_bytes())


def dns_record(private_key_pem: bytes) -> str:
    """The TXT value to publish at ``<selector>._domainkey.<domain>`` (in 255-byte strings in DNS)."""
    key = _load_key(private_key_pem)
    if isinstance(key, ed25519.Ed25519PrivateKey):  # RFC 8463: the raw 32-byte public key
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"


def _load_key(pem: bytes) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.replace(b"\r\n", b"\n"), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as err:
        raise ValueError(f"not an unencrypted PEM private key: {err}") from err
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("DKIM signing needs an RSA or Ed25519 private key")
    if key.key_size < MIN_KEY_BITS:
        raise ValueError(f"RSA key of {key.key_size} bits is too small for DKIM (minimum {MIN_KEY_BITS})")
    return key


def _normalised_pem(pem: bytes) -> bytes:
    return _serialised(_load_key(pem))


def _serialised(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    """RSA keys as PKCS#1 PEM with LF line endings (the form dkimpy's parser always reads); Ed25519 keys
    as PKCS#8 PEM."""
    private_format = (
        serialization.PrivateFormat.PKCS8
        if isinstance(key, ed25519.Ed25519PrivateKey)
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption())
