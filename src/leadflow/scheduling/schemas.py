"""The scheduling API's shapes: consultant profiles, slots, consultation requests and bookings."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, field_validator, model_validator

from leadflow.scheduling.slots import DAYS

CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


def zone_of(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


class Service(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    duration: int = Field(ge=5, le=24 * 60, description="minutes")


class ProfileFields(BaseModel):
    services: list[Service] = Field(min_length=1, max_length=50)
    availability: dict[str, list[list[str]]] = Field(
        description='weekly hours in the consultant\'s own zone: {"mon": [["09:00", "12:00"]], ...}'
    )
    slot_minutes: int = Field(default=30, ge=5, le=24 * 60)
    buffer_before: int = Field(default=0, ge=0, le=24 * 60, description="minutes")
    buffer_after: int = Field(default=0, ge=0, le=24 * 60, description="minutes")
    min_notice: int = Field(default=120, ge=0, le=60 * 24 * 60, description="minutes")
    horizon_days: int = Field(default=60, ge=1, le=730)
    ics_url: str | None = Field(default=None, max_length=2000, description="an http(s) URL or a file path")

    @field_validator("availability")
    @classmethod
    def _hours(cls, value: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
        for day, windows in value.items():
            if day not in DAYS:
                raise ValueError(f"unknown day {day!r} (one of {', '.join(DAYS)})")
            for window in windows:
                if len(window) != 2 or not all(CLOCK.match(t) for t in window) or window[0] >= window[1]:
                    raise ValueError(f"{day}: a window is two times HH:MM, the first earlier ({window!r})")
        return value

    @model_validator(mode="after")
    def _unique(self) -> ProfileFields:
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        return self


class ProfileCreate(ProfileFields):
    user_id: str = Field(max_length=26)


class Profile(ProfileFields):
    user_id: str
    timezone: str
    ics_refreshed_at: datetime | None
    ics_error: str | None
    created_at: datetime
    updated_at: datetime


class Slot(BaseModel):
    start: datetime
    end: datetime
    consultant_ids: list[str]


class Slots(BaseModel):
    service: str
    tz: str
    data: list[Slot]


class ConsultationRequest(BaseModel):
    email: str = Field(max_length=320)
    name: str | None = Field(default=None, max_length=200)
    service: str = Field(max_length=200)
    preferred_times: list[datetime] = Field(min_length=1, max_length=20)
    tz: str = Field(default="UTC", max_length=64)
    notes: str | None = Field(default=None, max_length=4000)

    @field_validator("tz")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone_of(value)
        return value


class Booking(BaseModel):
    id: str
    consultant_id: str
    contact_id: str | None
    email: str
    name: str | None
    service: str
    start: datetime
    end: datetime
    tz: str
    status: str
    sequence: int
    source: str


class RequestView(BaseModel):
    """A consultation request: ``pending`` for a person, or ``booked`` (its booking's id)."""

    id: str
    contact_id: str | None
    email: str
    name: str | None
    service: str
    preferred: list[str]
    tz: str
    notes: str | None
    status: str
    booking_id: str | None
    created_at: datetime


class RequestOutcome(BaseModel):
    status: Literal["booked", "pending"]
    request_id: str
    booking: Booking | None
    cancel_url: str | None = None
    reschedule_url: str | None = None
    ics_url: str | None = None
