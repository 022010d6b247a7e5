"""What a rule's ``field`` may name, and what kind of value it holds.

A field path is checked against a strict grammar before anything else: letters, digits, ``_`` and
``-`` in dot-separated keys. Keys never reach SQL text; they are bound parameters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,63}$")
MAX_DEPTH = 8

Kind = Literal["text", "number", "datetime", "json", "stage", "tags"]
Table = Literal["contacts", "companies", "scores", "events"]

CONTACT_COLUMNS: dict[str, Kind] = {
    "id": "text",
    "user_id": "text",
    "email": "text",
    "phone": "text",
    "first_name": "text",
    "last_name": "text",
    "owner_id": "text",
    "timezone": "text",
    "subscription_status": "text",
    "company_id": "text",
    "lifecycle_stage": "stage",
    "created_at": "datetime",
    "updated_at": "datetime",
    "last_seen_at": "datetime",
    "sessions": "number",
}
COMPANY_COLUMNS: dict[str, Kind] = {
    "name": "text",
    "domain": "text",
    "industry": "text",
    "group_id": "text",
    "size": "number",
    "created_at": "datetime",
    "updated_at": "datetime",
}
SCORE_COLUMNS: dict[str, str] = {
    "score": "total",
    "score.total": "total",
    "score.behavioral": "behavioral",
    "score.demographic": "demographic",
    "score.firmographic": "firmographic",
    "score.engagement": "engagement",
}


@dataclass(frozen=True)
class FieldRef:
    """A resolved field: where it lives and what kind of value it holds (``json``: decided per value)."""

    path: str
    table: Table
    column: str
    kind: Kind
    keys: tuple[str, ...] = ()

    @property
    def dependency(self) -> str:
        """What a change must touch for a rule on this field to need re-evaluation."""
        if self.table == "companies":
            return "company"
        if self.table == "scores":
            return "score"
        if self.column in ("traits", "consent") and self.keys:
            return f"{self.column}.{self.keys[0]}"
        return self.column


class FieldError(ValueError):
    """An unknown or malformed field path."""


def _keys(path: str, parts: list[str]) -> tuple[str, ...]:
    if not parts:
        raise FieldError(f"{path!r} needs a key after the dot, e.g. traits.plan")
    if len(parts) > MAX_DEPTH:
        raise FieldError(f"{path!r} is nested deeper than {MAX_DEPTH} keys")
    for part in parts:
        if not KEY.match(part):
            raise FieldError(f"{part!r} in {path!r} is not a key (letters, digits, _ and -)")
    return tuple(parts)


def resolve(path: str) -> FieldRef:
    """Resolve a contact-level field path, or raise :class:`FieldError` saying what is allowed."""
    if not isinstance(path, str) or not path or len(path) > 300:
        raise FieldError("a field is a non-empty path such as email, traits.plan or company.size")
    if path in CONTACT_COLUMNS:
        return FieldRef(path, "contacts", path, CONTACT_COLUMNS[path])
    if path in SCORE_COLUMNS:
        return FieldRef(path, "scores", SCORE_COLUMNS[path], "number")
    if path == "score_band":
        return FieldRef(path, "scores", "band", "text")
    if path == "tags":
        return FieldRef(path, "contacts", "tags", "tags")
    root, _, rest = path.partition(".")
    parts = rest.split(".") if rest else []
    if root in ("traits", "consent"):
        return FieldRef(path, "contacts", root, "json", _keys(path, parts))
    if root == "company" and parts:
        if parts[0] in COMPANY_COLUMNS and len(parts) == 1:
            return FieldRef(path, "companies", parts[0], COMPANY_COLUMNS[parts[0]])
        if parts[0] == "traits":
            return FieldRef(path, "companies", "traits", "json", _keys(path, parts[1:]))
    allowed = ", ".join(
        [*CONTACT_COLUMNS, "traits.*", "consent.*", "company.*", "score", "score_band", "tags"]
    )
    raise FieldError(f"unknown field {path!r}; use one of {allowed}")


def resolve_property(path: str) -> FieldRef:
    """An event property path (``course``, ``price.amount``; a leading ``properties.`` is optional)."""
    if not isinstance(path, str) or not path or len(path) > 300:
        raise FieldError("a property is a non-empty path such as course or price.amount")
    parts = path.split(".")
    if parts[0] == "properties" and len(parts) > 1:
        parts = parts[1:]
    return FieldRef(path, "events", "properties", "json", _keys(path, parts))
