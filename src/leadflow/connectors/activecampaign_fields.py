"""The parts of the ActiveCampaign connector (:mod:`leadflow.connectors.activecampaign`) that are not
calls: the contact's own fields, tags and lists among the mapping's remote fields, the deal statuses,
the shipped mapping presets (the badge business's event-registration profile among them), and
ActiveCampaign's times, counts, error bodies and personalisation tags read."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

STANDARD = {"email": "email", "firstName": "first_name", "lastName": "last_name", "phone": "phone"}
TAGS, LIST = "tags", "list:"
SUBSCRIBED, UNSUBSCRIBED = 1, 2
DEAL_STATUS = {"open": 0, "won": 1, "lost": 2}

DEFAULT_MAPPING: list[dict[str, Any]] = [
    {"from": "email", "to": "email"},
    {"from": "first_name", "to": "firstName"},
    {"from": "last_name", "to": "lastName"},
    {"from": "phone", "to": "phone", "transform": "e164"},
]

#: The event-registration profile of the badge business, every field of it (the custom fields by the
#: titles the account gives them).
EVENT_REGISTRATION: list[dict[str, Any]] = [
    *DEFAULT_MAPPING,
    {"from": "traits.date_of_birth", "to": "Date of Birth", "transform": {"date": "%Y-%m-%d"}},
    {"from": "traits.event_participation", "to": "Event Participation"},
    {"from": "traits.dietary_preferences", "to": "Dietary Preferences"},
    {"from": "traits.volunteering_interests", "to": "Volunteering Interests"},
    {"from": "traits.social_media_handles", "to": "Social Media Handles"},
    {"from": "traits.badge_name", "to": "Badge Name"},
    {"from": "traits.profile_image_url", "to": "Profile Image URL"},
    {"from": "traits.emergency_contact_name", "to": "Emergency Contact Name"},
    {"from": "traits.emergency_contact_phone", "to": "Emergency Contact Phone", "transform": "e164"},
]
PRESETS: dict[str, list[dict[str, Any]]] = {
    "default": DEFAULT_MAPPING,
    "event_registration": EVENT_REGISTRATION,
}


def time_of(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    with contextlib.suppress(ValueError):
        found = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (found if found.tzinfo else found.replace(tzinfo=UTC)).astimezone(UTC)
    return None


def int_of(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def message_of(body: Any) -> str:
    if not isinstance(body, Mapping):
        return ""
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        return str(errors[0].get("title") or errors[0].get("detail") or "")
    reasons = body.get("failureReasons")
    if isinstance(reasons, list) and reasons:
        return str(reasons[0])
    return str(body.get("message") or "")


def field_key(name: str) -> str:
    return re.sub(r"[^A-Z0-9]+", "_", name.upper().strip("%")).strip("_")
