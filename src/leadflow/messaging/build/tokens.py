"""Signed, URL-safe tokens for tracking links, open pixels and one-click actions.

A token is an itsdangerous ``URLSafeTimedSerializer`` token: base64url(compact JSON payload) ``.`` timestamp
``.`` HMAC-SHA1 signature (itsdangerous' default; 27 characters). Rules:

* The *purpose* is part of the salt, so a token signed for one purpose (say an open pixel) never loads as
  another (say an unsubscribe): the signature simply does not match.
* The timestamp comes from the injected :class:`~leadflow.kernel.clock.Clock`, never from the wall clock,
  both when signing and when checking ``max_age``.
* Tokens go into URLs, so they are kept short: the payload is compact JSON (callers should pass lists rather
  than dicts), and zlib is only tried on payloads long enough for it to pay off.
* Signers are cached per purpose: signing is on the hot path of :func:`leadflow.messaging.build.links.track`.
"""

from __future__ import annotations

import binascii
import hashlib
import zlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import orjson
from itsdangerous import BadData, BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import int_to_bytes, want_bytes
from itsdangerous.signer import Signer

from leadflow.kernel.clock import Clock
from leadflow.kernel.errors import BadRequest

__all__ = ["BadToken", "Tokens"]

# Payloads shorter than this are not worth a zlib attempt (zlib adds 6 bytes of framing).
_COMPRESS_FROM = 160


class BadToken(BadRequest):
    """A token that cannot be trusted. ``reason`` is one of:

    * ``"invalid"``: the signature does not match (tampered, signed for another purpose, or with another
      secret; these cannot be told apart, by design);
    * ``"expired"``: older than ``max_age`` (or dated in the future of the clock);
    * ``"malformed"``: signed correctly but the payload does not decode (or has the wrong shape for the
      caller, see :mod:`leadflow.messaging.build.links`).
    """

    code = "bad_token"

    def __init__(self, reason: str) -> None:
        super().__init__(f"bad token: {reason}")
        self.reason = reason


class _Json:
    """Compact JSON through orjson (itsdangerous' own one goes through the slower stdlib encoder)."""

    @staticmethod
    def dumps(obj: Any, /) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(payload: str, /) -> Any:
        return orjson.loads(payload)


class _ClockSigner(TimestampSigner):
    """A timestamp signer that asks the injected clock for the time.

    Verifying is itsdangerous' own code. Signing produces the very same bytes (same key derivation,
    HMAC-SHA1, layout) but quicker, as it sits on the hot path of link tracking: the HMAC's inner and outer
    hash states are keyed once (RFC 2104, as the stdlib ``hmac`` module does when OpenSSL's HMAC is not
    used: a fresh OpenSSL HMAC context per call costs more than the hashing) and the encoded timestamp is
    reused within a second.
    """

    def __init__(self, secret_key: Any, salt: str | bytes | None = None, *, clock: Clock) -> None:
        super().__init__(secret_key, salt=salt, digest_method=hashlib.sha1)
        self._clock = clock
        key = self.derive_key().ljust(64, b"\0")  # SHA-1 block size; a derived key is 20 bytes
        self.inner = hashlib.sha1(key.translate(_IPAD))  # keyed hash states: copy, never update
        self.outer = hashlib.sha1(key.translate(_OPAD))
        self._stamp = (-1, b"")

    def get_timestamp(self) -> int:
        return int(self._clock.now().timestamp())

    def stamp(self) -> bytes:
        """The separator and encoded timestamp that follow the payload."""
        now = self.get_timestamp()
        cached = self._stamp  # read once: another thread may replace it
        if cached[0] != now:
            cached = self._stamp = (now, b"." + _b64(int_to_bytes(now)))
        return cached[1]

    def mac(self, value: bytes) -> bytes:
        """The encoded HMAC of ``value`` (payload and stamp)."""
        inner = self.inner.copy()
        inner.update(value)
        outer = self.outer.copy()
        outer.update(inner.digest())
        return _b64(outer.digest())

    def sign(self, value: str | bytes) -> bytes:
        value = want_bytes(value) + self.stamp()
        return value + b"." + self.mac(value)


def _b64(data: bytes) -> bytes:
    """itsdangerous' ``base64_encode`` (URL-safe alphabet, no padding), without its indirections."""
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=")


_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
_URLSAFE = bytes.maketrans(b"+/", b"-_")


class _Serializer(URLSafeTimedSerializer):
    """One purpose's serializer: a cached signer, and zlib only where it can help."""

    def __init__(self, secret: str, salt: str, clock: Clock) -> None:
        signer_kwargs = {"clock": clock}  # for itsdangerous' own make_signer (other salts)
        super().__init__(
            secret, salt=salt, serializer=_Json, signer=_ClockSigner, signer_kwargs=signer_kwargs
        )
        self._signer = _ClockSigner(self.secret_keys, salt=salt, clock=clock)
        self._stamped: tuple[bytes | None, Callable[[Any], str]] = (None, str)

    def stamped(self) -> Callable[[Any], str]:
        """``dumps`` without its indirections, every token stamped with the time of this call.

        The function is kept for as long as the stamp (a second) stays the same: the messages of a
        broadcast, stamped with their common creation time, all share one.
        """
        stamp = self._signer.stamp()
        cached_stamp, cached = self._stamped
        if cached_stamp is stamp:
            return cached
        dump, inner, outer = self.dump_payload, self._signer.inner, self._signer.outer
        encode, dumps = binascii.b2a_base64, orjson.dumps

        def sign(obj: Any) -> str:  # dump_payload and mac, inlined for short payloads (nearly all)
            data = dumps(obj)
            if len(data) < _COMPRESS_FROM:
                value = encode(data, newline=False).translate(_URLSAFE).rstrip(b"=") + stamp
            else:
                value = dump(obj) + stamp
            digest = inner.copy()
            digest.update(value)
            final = outer.copy()
            final.update(digest.digest())
            return (
                value + b"." + encode(final.digest(), newline=False).translate(_URLSAFE).rstrip(b"=")
            ).decode()

        self._stamped = (stamp, sign)
        return sign

    def make_signer(self, salt: str | bytes | None = None) -> Signer:
        if salt is None or salt == self.salt:
            return self._signer
        return super().make_signer(salt)

    def dump_payload(self, obj: Any) -> bytes:
        data = orjson.dumps(obj)
        if len(data) >= _COMPRESS_FROM:
            compressed = zlib.compress(data, 9)
            if len(compressed) < len(data) - 1:
                return b"." + _b64(compressed)
        return _b64(data)


class Tokens:
    """Signs and loads tokens for named purposes (``"click"``, ``"open"``, ``"unsubscribe"``...)."""

    def __init__(self, secret: str, clock: Clock) -> None:
        if not secret:
            raise ValueError("Tokens needs a non-empty secret")
        self._secret = secret
        self._clock = clock
        self._serializers: dict[str, _Serializer] = {}

    def _for(self, purpose: str) -> _Serializer:
        serializer = self._serializers.get(purpose)
        if serializer is None:
            if not purpose:
                raise ValueError("a token needs a purpose")
            serializer = _Serializer(self._secret, f"leadflow.token.{purpose}", self._clock)
            self._serializers[purpose] = serializer
        return serializer

    def sign(self, purpose: str, payload: Any) -> str:
        """A URL-safe token carrying ``payload`` (JSON-serialisable), valid only for ``purpose``."""
        return self._for(purpose).stamped()(payload)

    def signer(self, purpose: str) -> Callable[[Any], str]:
        """A function signing payloads for ``purpose``, all stamped with the clock's time now.

        For the many tokens of one message (:func:`leadflow.messaging.build.links.track`): it reads the clock
        once, not once per token.
        """
        return self._for(purpose).stamped()

    def load(self, purpose: str, token: str, *, max_age: timedelta | None = None) -> Any:
        """The payload of a token signed for ``purpose``; :class:`BadToken` if it cannot be trusted.

        ``max_age`` is checked against the injected clock, to the second.
        """
        seconds = None if max_age is None else int(max_age.total_seconds())
        try:
            return self._for(purpose).loads(token, max_age=seconds)
        except SignatureExpired:
            raise BadToken("expired") from None
        except BadSignature:
            raise BadToken("invalid") from None
        except (BadData, UnicodeError):
            raise BadToken("malformed") from None
