"""Scopes and what each one grants.

``admin`` grants everything; ``write`` grants ``read``; ``ingest`` (a Segment write key) grants only the
tracking API, so a key embedded in a web page can send events but never read a profile.
"""

from __future__ import annotations

from collections.abc import Iterable

from leadflow.kernel.errors import Invalid

SCOPES = ("ingest", "read", "write", "admin")

GRANTS: dict[str, frozenset[str]] = {
    "ingest": frozenset({"ingest"}),
    "read": frozenset({"read"}),
    "write": frozenset({"write", "read"}),
    "admin": frozenset(SCOPES),
}


def parse_scopes(values: Iterable[str]) -> list[str]:
    scopes = {value.strip() for value in values if value.strip()}
    unknown = [scope for scope in scopes if scope not in GRANTS]
    if unknown:
        raise Invalid(f"unknown scope(s) {', '.join(unknown)}; use {', '.join(SCOPES)}", code="invalid_scope")
    if not scopes:
        raise Invalid("a key needs at least one scope", code="invalid_scope")
    return [scope for scope in SCOPES if scope in scopes]


def granted(scopes: Iterable[str]) -> frozenset[str]:
    result: set[str] = set()
    for scope in scopes:
        result |= GRANTS.get(scope, frozenset())
    return frozenset(result)
