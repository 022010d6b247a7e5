"""Normalising what identifies and reaches a person: email, phone, time zone."""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from leadflow.kernel.errors import Invalid


def email(value: str) -> str:
    """The canonical form used for matching: syntax-checked, IDNA domain, and lower-cased throughout.

    Mailbox local parts are case-sensitive in theory and case-insensitive at every real provider;
    two contacts for ``Ann@x.com`` and ``ann@x.com`` would be the duplicate our users complain about.
    """
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise Invalid(f"invalid email address {value[:80]!r}: {exc}", code="invalid_email") from None
    return result.normalized.lower()


def phone(value: str, region: str | None = None) -> str:
    """E.164 (``+14155550123``). Numbers without a country code need ``region`` (e.g. ``"US"``)."""
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise Invalid(f"invalid phone number {value[:40]!r}: {exc}", code="invalid_phone") from None
    if not phonenumbers.is_valid_number(parsed):
        raise Invalid(f"invalid phone number {value[:40]!r}", code="invalid_phone")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=1024)
def is_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


def timezone(value: str) -> str:
    if not is_timezone(value):
        raise Invalid(
            f"unknown time zone {value[:64]!r}; use an IANA name such as Europe/Berlin",
            code="invalid_timezone",
        )
    return value
