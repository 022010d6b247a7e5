"""Normalising what identifies and reaches a person (email, phone, time zone) and a company (domain)."""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import idna
import phonenumbers
from email_validator import EmailNotValidError, validate_email

from leadflow.kernel.errors import Invalid


def email(value: str) -> str:
    """The canonical form used for matching: syntax-checked, IDNA domain, and lower-cased throughout.

    Mailbox local parts are case-sensitive in theory and case-insensitive at every real provider;
    two contacts for ``Ann@x.com`` and ``ann@x.com`` would be the duplicate our users complain about.

    email-validator takes ~60 µs an address; the answers for addresses of a plausible length are kept
    (:func:`_canonical`): ingest and the API's look-up by email see the same addresses again and again.
    """
    try:
        if len(value) <= MAX_EMAIL:
            return _canonical(value)
        return _validated(value)
    except EmailNotValidError as exc:
        raise Invalid(f"invalid email address {value[:80]!r}: {exc}", code="invalid_email") from None


MAX_EMAIL = 320
"""The longest address (RFC 5321's 64 + 1 + 255): a longer one is invalid, checked but not kept."""


def _validated(value: str) -> str:
    return validate_email(value.strip(), check_deliverability=False).normalized.lower()


@lru_cache(maxsize=8192)
def _canonical(value: str) -> str:
    return _validated(value)  # an invalid address raises, and is not kept


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


_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def domain(value: object) -> str | None:
    """A company's domain from what a ``group`` call sent as ``domain`` or ``website``, or None when it
    names no domain.

    ``https://www.Acme.example:8443/about?x`` → ``acme.example``: the scheme, user, port, path, query,
    a trailing dot and a leading ``www.`` (before at least two labels) go, the rest is lower-cased.
    Internationalised names are mapped as IDNA 2008 (UTS 46) does and kept in their Unicode form, as
    contact email domains are (``MÜNCHEN.example`` → ``münchen.example``). IP addresses, single labels
    (``localhost``) and anything IDNA refuses are not domains.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text or len(text) > 2000 or any(ch.isspace() for ch in text):
        return None
    try:
        host = urlsplit(text if "://" in text else f"//{text}").hostname
    except ValueError:
        return None
    host = (host or "").rstrip(".")
    if host.startswith("www.") and "." in host[4:]:
        host = host[4:]
    try:
        ascii_host = idna.encode(host, uts46=True).decode("ascii")
        unicode_host: str = idna.decode(ascii_host)
    except (idna.IDNAError, UnicodeError):
        return None
    labels = ascii_host.split(".")
    if len(labels) < 2 or len(ascii_host) > 253 or labels[-1].isdigit():
        return None
    if not all(_LABEL.fullmatch(label) for label in labels):
        return None
    return unicode_host
