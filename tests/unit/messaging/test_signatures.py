"""What a verified signature leaves to remember: Mailgun's token (its signature does not cover the
content), with the content's digest and the end of the signature's window."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow.kernel.errors import Unauthorized
from leadflow.kernel.settings import Settings
from leadflow.messaging.feedback import signatures
from leadflow.webhooks.replay import Seal, digest

KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _signed(token: str, at: datetime, event: dict[str, Any]) -> dict[str, Any]:
    stamp = str(int(at.timestamp()))
    mac = hmac.new(KEY.encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return {"signature": {"timestamp": stamp, "token": token, "signature": mac}, "event-data": event}


def test_a_mailgun_signature_yields_its_token_until_the_window_ends() -> None:
    payload = _signed("t" * 50, NOW - timedelta(minutes=1), {"event": "failed", "recipient": "a@example.com"})
    seal = signatures.check_mailgun(KEY, payload, NOW)
    assert seal == Seal("mailgun", "t" * 50, digest(payload), NOW + timedelta(minutes=4))


def test_the_digest_is_of_the_content_not_its_spelling() -> None:
    one = {"a": 1, "b": {"c": [1, 2], "d": "x"}}
    assert digest(one) == digest({"b": {"d": "x", "c": [1, 2]}, "a": 1})
    assert digest(one) != digest({"a": 1, "b": {"c": [2, 1], "d": "x"}})


def test_an_oversized_token_is_refused() -> None:
    payload = _signed("t" * 201, NOW, {"event": "failed"})
    with pytest.raises(Unauthorized, match="token"):
        signatures.check_mailgun(KEY, payload, NOW)


def test_without_a_provider_key_nothing_is_checked_or_remembered() -> None:
    for provider in ("sendgrid", "postmark", "ses", "mailgun"):
        assert signatures.check(provider, b"[]", [], {}, Settings(), NOW) is None
