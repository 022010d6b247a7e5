"""The contacts domain's public shapes (API bodies and answers)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Contact(BaseModel):
    """A person: one profile across devices and ids."""

    id: str
    user_id: str | None
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    traits: dict[str, Any]
    lifecycle_stage: str
    company_id: str | None
    owner_id: str | None
    timezone: str | None
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None
    subscription_status: str = Field(description="subscribed or unsubscribed (marketing email as a whole)")
    consent: dict[str, Any] = Field(description="consent records by purpose")
    preferences: dict[str, bool] = Field(
        default_factory=dict, description="email topic -> subscribed (the contact's choice, else the default)"
    )


class ContactFields(BaseModel):
    """Fields a caller may set. Omitted fields are left alone; ``null`` clears a field or a trait."""

    model_config = ConfigDict(extra="forbid")

    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64, description="any format; stored as E.164")
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    traits: dict[str, Any] | None = Field(default=None, description="merged into the existing traits")
    lifecycle_stage: str | None = Field(
        default=None, description="visitor, lead, mql, sql, customer, advocate"
    )
    company_id: str | None = Field(default=None, max_length=26)
    owner_id: str | None = Field(default=None, max_length=64)
    timezone: str | None = Field(default=None, max_length=64, description="IANA name, e.g. Europe/Berlin")
    subscription_status: str | None = Field(default=None, description="subscribed or unsubscribed")
    consent: dict[str, Any] | None = Field(default=None, description="consent records by purpose")


class ContactUpsert(ContactFields):
    """Create or update by ``user_id`` or ``email`` (at least one): sending it twice changes nothing."""

    user_id: str | None = Field(default=None, max_length=255)


class ContactPatch(ContactFields):
    user_id: str | None = Field(default=None, max_length=255)


class Company(BaseModel):
    id: str
    group_id: str
    name: str | None
    domain: str | None
    industry: str | None
    size: int | None
    traits: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class Event(BaseModel):
    id: str
    message_id: str
    type: str
    event: str | None
    name: str | None
    properties: dict[str, Any] | None
    context: dict[str, Any] | None
    timestamp: datetime
    received_at: datetime


class Erasure(BaseModel):
    id: str
    contact_id: str
    erased_at: datetime
    summary: dict[str, int]


class Touchpoint(BaseModel):
    """A marketing touch that reached the contact: a UTM-tagged or referred page view, a tracked event
    carrying its source (a form's campaign, a captured lead's source) or the person's email click."""

    id: str
    event_id: str
    occurred_at: datetime
    kind: Literal["page", "track", "click"] = Field(
        description="page: a page view; track: a tracked event with its source; click: an email click"
    )
    source: str | None
    medium: str | None
    campaign: str | None
    term: str | None
    content: str | None
    referrer: str | None
    url: str | None
    journey: str | None = Field(description="the journey an email click came from")
