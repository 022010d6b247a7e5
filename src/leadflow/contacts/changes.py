"""One shape for every change to a profile, whether it comes from ``identify``, the API or a CSV row."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from leadflow.contacts import normalize
from leadflow.kernel.errors import Invalid

# Segment reserved traits that live in columns rather than in ``traits``.
EMAIL_KEYS = ("email",)
PHONE_KEYS = ("phone",)
FIRST_NAME_KEYS = ("firstName", "first_name")
LAST_NAME_KEYS = ("lastName", "last_name")
COLUMN_TRAITS = frozenset(
    {*EMAIL_KEYS, *PHONE_KEYS, *FIRST_NAME_KEYS, *LAST_NAME_KEYS, "name", "timezone", "unsubscribed"}
)


class Unset:
    """Marks a field the change does not touch (``None`` means "clear it")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = Unset()


@dataclass
class ProfileChanges:
    email: Any = UNSET
    phone: Any = UNSET
    first_name: Any = UNSET
    last_name: Any = UNSET
    timezone: Any = UNSET
    owner_id: Any = UNSET
    company_id: Any = UNSET
    lifecycle_stage: Any = UNSET
    subscription_status: Any = UNSET
    consent: Any = UNSET
    traits: dict[str, Any] = field(default_factory=dict)
    # Values that failed validation, kept as traits so nothing the sender said is lost.
    rejected: dict[str, Any] = field(default_factory=dict)

    def set_fields(self) -> dict[str, Any]:
        names = (
            "email",
            "phone",
            "first_name",
            "last_name",
            "timezone",
            "owner_id",
            "company_id",
            "lifecycle_stage",
            "subscription_status",
            "consent",
        )
        return {name: getattr(self, name) for name in names if getattr(self, name) is not UNSET}


def _first(traits: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in traits:
            return traits[key]
    return UNSET


def _string(value: Any) -> Any:
    if value is UNSET or value is None:
        return value
    return str(value)


def _split_name(name: Any) -> tuple[Any, Any]:
    """``name`` → (first, last); ``null`` clears both."""
    if name is None:
        return None, None
    if not isinstance(name, str) or not name.strip():
        return UNSET, UNSET
    first, _, last = name.strip().partition(" ")
    return first, (last.strip() or UNSET)


def from_traits(
    traits: dict[str, Any] | None, context: dict[str, Any] | None = None, *, phone_region: str | None = None
) -> ProfileChanges:
    """Changes for an ``identify`` call: reserved traits go to columns, the rest to ``traits``.

    A ``null`` trait removes it. ``name`` fills first/last name when those are not given. A reserved
    trait whose value fails validation (an email that is not one, a phone that is not a number, an
    unknown time zone, an ``unsubscribed`` that is not a boolean) leaves the column alone and is kept as
    a trait, so nothing the sender said is lost. ``context.timezone`` is used when no trait gives one.
    """
    traits = traits or {}
    changes = ProfileChanges(traits={k: v for k, v in traits.items() if k not in COLUMN_TRAITS})
    _assign_email(changes, _first(traits, EMAIL_KEYS))
    _assign_phone(changes, _first(traits, PHONE_KEYS), phone_region)
    changes.first_name = _string(_first(traits, FIRST_NAME_KEYS))
    changes.last_name = _string(_first(traits, LAST_NAME_KEYS))
    if changes.first_name is UNSET and changes.last_name is UNSET and "name" in traits:
        changes.first_name, changes.last_name = _split_name(traits["name"])
    if "timezone" in traits:
        _assign_timezone(changes, traits["timezone"])
    elif context and isinstance(context.get("timezone"), str) and normalize.is_timezone(context["timezone"]):
        changes.timezone = context["timezone"]
    _assign_subscription(changes, traits.get("unsubscribed", UNSET))
    changes.traits.update(changes.rejected)
    return changes


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _assign_email(changes: ProfileChanges, value: Any) -> None:
    if value is UNSET or value is None:
        changes.email = value
    elif _blank(value):
        return
    elif not isinstance(value, str):
        changes.rejected["email"] = value
    else:
        try:
            changes.email = normalize.email(value)
        except Invalid:
            changes.rejected["email"] = value


def _assign_phone(changes: ProfileChanges, value: Any, region: str | None) -> None:
    if value is UNSET or value is None:
        changes.phone = value
    elif _blank(value):
        return
    elif isinstance(value, bool) or not isinstance(value, str | int):
        changes.rejected["phone"] = value
    else:
        try:
            changes.phone = normalize.phone(str(value), region)
        except Invalid:
            changes.rejected["phone"] = value


def _assign_timezone(changes: ProfileChanges, value: Any) -> None:
    if value is None or (isinstance(value, str) and normalize.is_timezone(value)):
        changes.timezone = value
    else:
        changes.rejected["timezone"] = value


def _assign_subscription(changes: ProfileChanges, value: Any) -> None:
    if isinstance(value, bool):
        changes.subscription_status = "unsubscribed" if value else "subscribed"
    elif value is not UNSET and value is not None:
        changes.rejected["unsubscribed"] = value
