"""Signed tokens: round trips, purposes, tampering, expiry on the injected clock, compactness."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from itsdangerous import URLSafeTimedSerializer

from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.errors import BadRequest
from leadflow.messaging.build.tokens import BadToken, Tokens

SECRET = "test-secret-0123456789abcdef"
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
URL_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")
MESSAGE_ID = "01JQ8Z6M4T3V7W9X2Y5A000001"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def tokens(clock: VirtualClock) -> Tokens:
    return Tokens(SECRET, clock)


@pytest.mark.parametrize(
    "payload",
    [
        [MESSAGE_ID, "https://example.com/a?b=1&c=2"],
        {"contact": "c_1", "topics": ["news", "offers"]},
        "just text",
        42,
        ["ünïcödé ✓", None, True, 1.5],
    ],
)
def test_round_trip(tokens: Tokens, payload: object) -> None:
    token = tokens.sign("unsubscribe", payload)
    assert URL_SAFE.match(token), token
    assert tokens.load("unsubscribe", token) == payload


def test_a_token_only_loads_for_its_purpose(tokens: Tokens) -> None:
    token = tokens.sign("open", [MESSAGE_ID])
    with pytest.raises(BadToken) as caught:
        tokens.load("unsubscribe", token)
    assert caught.value.reason == "invalid"
    assert tokens.load("open", token) == [MESSAGE_ID]


def test_another_secret_does_not_verify(clock: VirtualClock, tokens: Tokens) -> None:
    token = tokens.sign("click", [MESSAGE_ID, "https://example.com/"])
    with pytest.raises(BadToken) as caught:
        Tokens("another-secret", clock).load("click", token)
    assert caught.value.reason == "invalid"


@pytest.mark.parametrize("where", [0, 5, -3])
def test_tampering_is_detected(tokens: Tokens, where: int) -> None:
    token = tokens.sign("click", [MESSAGE_ID, "https://example.com/pricing"])
    index = where % len(token)
    tampered = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]
    with pytest.raises(BadToken) as caught:
        tokens.load("click", tampered)
    assert caught.value.reason == "invalid"


def test_a_swapped_payload_does_not_verify(tokens: Tokens) -> None:
    """The payload of one token with the signature of another is refused (no open redirect by splicing)."""
    good = tokens.sign("click", [MESSAGE_ID, "https://example.com/"])
    evil = tokens.sign("click", [MESSAGE_ID, "https://evil.example/"])
    spliced = evil.split(".")[0] + "." + ".".join(good.split(".")[1:])
    with pytest.raises(BadToken):
        tokens.load("click", spliced)


@pytest.mark.parametrize("garbage", ["", "abc", "....", "not a token at all", "é.é.é"])
def test_garbage_is_refused(tokens: Tokens, garbage: str) -> None:
    with pytest.raises(BadToken) as caught:
        tokens.load("click", garbage)
    assert caught.value.reason in {"invalid", "malformed"}


def test_max_age_uses_the_injected_clock(clock: VirtualClock, tokens: Tokens) -> None:
    """START is far from the wall clock: were it read, the token would look years old or from the future."""
    token = tokens.sign("confirm", ["c_1"])
    clock.advance(timedelta(hours=23))
    assert tokens.load("confirm", token, max_age=timedelta(days=1)) == ["c_1"]
    clock.advance(timedelta(hours=1))
    assert tokens.load("confirm", token, max_age=timedelta(days=1)) == ["c_1"]  # exactly a day old: fine
    clock.advance(timedelta(seconds=1))
    with pytest.raises(BadToken) as caught:
        tokens.load("confirm", token, max_age=timedelta(days=1))
    assert caught.value.reason == "expired"
    assert tokens.load("confirm", token) == ["c_1"]  # no max_age, no expiry


def test_signing_time_comes_from_the_clock(clock: VirtualClock, tokens: Tokens) -> None:
    first = tokens.sign("open", [MESSAGE_ID])
    assert tokens.sign("open", [MESSAGE_ID]) == first  # same clock time, same token
    clock.advance(timedelta(seconds=1))
    assert tokens.sign("open", [MESSAGE_ID]) != first


def test_signer_stamps_every_token_with_its_creation_time(clock: VirtualClock, tokens: Tokens) -> None:
    sign = tokens.signer("click")
    clock.advance(timedelta(days=2))
    token = sign([MESSAGE_ID, "https://example.com/"])
    with pytest.raises(BadToken) as caught:
        tokens.load("click", token, max_age=timedelta(days=1))
    assert caught.value.reason == "expired"
    assert tokens.load("click", tokens.sign("click", [1]), max_age=timedelta(days=1)) == [1]


def test_tokens_are_standard_itsdangerous_tokens(tokens: Tokens) -> None:
    """The fast signing path writes exactly what itsdangerous reads."""
    token = tokens.sign("click", [MESSAGE_ID, "https://example.com/x"])
    stock = URLSafeTimedSerializer(SECRET, salt="leadflow.token.click")
    assert stock.loads(token) == [MESSAGE_ID, "https://example.com/x"]
    assert stock.loads(token, return_timestamp=True)[1] == START


def test_tokens_are_compact(tokens: Tokens) -> None:
    url = "https://www.example.com/pricing?utm_source=newsletter&utm_medium=email"
    token = tokens.sign("click", [MESSAGE_ID, url])
    # base64 of the compact JSON, a 6-character timestamp and a 27-character signature, two dots
    compact_json = len(f'["{MESSAGE_ID}","{url}"]')
    assert len(token) <= (compact_json * 4 + 2) // 3 + 35
    assert len(tokens.sign("open", [MESSAGE_ID])) < 80


def test_long_payloads_are_compressed(tokens: Tokens) -> None:
    url = "https://www.example.com/" + "section/" * 40
    token = tokens.sign("click", [MESSAGE_ID, url])
    assert token.startswith(".")
    assert len(token) < len(url)
    assert tokens.load("click", token) == [MESSAGE_ID, url]


def test_bad_token_is_a_bad_request() -> None:
    error = BadToken("expired")
    assert isinstance(error, BadRequest)
    assert error.code == "bad_token"
    assert error.reason == "expired"


def test_secret_and_purpose_are_required(clock: VirtualClock, tokens: Tokens) -> None:
    with pytest.raises(ValueError, match="secret"):
        Tokens("", clock)
    with pytest.raises(ValueError, match="purpose"):
        tokens.sign("", [1])


def test_a_signer_is_reused_while_the_stamp_stays_the_same(clock: VirtualClock, tokens: Tokens) -> None:
    """The messages of a broadcast share their creation time: one signing function serves them all."""
    sign = tokens.signer("click")
    assert tokens.signer("click") is sign
    clock.advance(timedelta(milliseconds=200))
    assert tokens.signer("click") is sign  # the stamp has a resolution of a second
    clock.advance(timedelta(seconds=1))
    later = tokens.signer("click")
    assert later is not sign
    assert later([MESSAGE_ID]) != sign([MESSAGE_ID])
    assert tokens.load("click", later([MESSAGE_ID])) == [MESSAGE_ID]
