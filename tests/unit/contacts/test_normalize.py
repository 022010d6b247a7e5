"""Canonical forms of email addresses, phone numbers and time zones."""

from __future__ import annotations

import pytest

from leadflow.contacts import normalize
from leadflow.kernel.errors import Invalid


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("ann@example.com", "ann@example.com"),
        ("Ann@Example.COM", "ann@example.com"),
        ("  ANN.SMITH+news@Example.com \n", "ann.smith+news@example.com"),
        ("USER@BÜCHER.DE", "user@bücher.de"),
    ],
)
def test_email_is_trimmed_and_lower_cased(given: str, expected: str) -> None:
    assert normalize.email(given) == expected


def test_email_domain_spellings_share_one_canonical_form() -> None:
    unicode_form = normalize.email("user@Bücher.de")
    assert normalize.email("user@xn--bcher-kva.de") == unicode_form
    assert normalize.email("USER@XN--BCHER-KVA.DE") == unicode_form


@pytest.mark.parametrize(
    "given",
    ["", "   ", "ann", "ann@", "@example.com", "ann@@example.com", "ann example@x.com", "ann@exa mple.com"],
)
def test_invalid_email_is_refused(given: str) -> None:
    with pytest.raises(Invalid, match="invalid email address") as info:
        normalize.email(given)
    assert info.value.code == "invalid_email"


def test_invalid_email_message_truncates_long_input() -> None:
    with pytest.raises(Invalid) as info:
        normalize.email("x" * 500)
    assert "x" * 81 not in info.value.message


@pytest.mark.parametrize(
    ("given", "region", "expected"),
    [
        ("+14155550123", None, "+14155550123"),
        ("+1 (202) 456-1111", None, "+12024561111"),
        ("+44 20 7183 8750", None, "+442071838750"),
        ("+44 20 7183 8750", "US", "+442071838750"),
        ("(415) 555-0123", "US", "+14155550123"),
        ("020 7183 8750", "GB", "+442071838750"),
    ],
)
def test_phone_is_formatted_as_e164(given: str, region: str | None, expected: str) -> None:
    assert normalize.phone(given, region) == expected


@pytest.mark.parametrize(
    ("given", "region"),
    [
        ("(415) 555-0123", None),  # no country code and no region
        ("abc", None),
        ("", "US"),
        ("+1 555", None),  # too short
        ("+1 000 000 0000", None),  # parses but is not a valid number
    ],
)
def test_invalid_phone_is_refused(given: str, region: str | None) -> None:
    with pytest.raises(Invalid, match="invalid phone number") as info:
        normalize.phone(given, region)
    assert info.value.code == "invalid_phone"


@pytest.mark.parametrize("name", ["Europe/Berlin", "America/New_York", "UTC", "Asia/Kolkata"])
def test_known_time_zones(name: str) -> None:
    assert normalize.is_timezone(name)
    assert normalize.timezone(name) == name


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "Europe", "../etc/passwd", "/etc/localtime", "a\x00b"])
def test_unknown_time_zones(name: str) -> None:
    assert not normalize.is_timezone(name)
    with pytest.raises(Invalid, match="unknown time zone") as info:
        normalize.timezone(name)
    assert info.value.code == "invalid_timezone"
