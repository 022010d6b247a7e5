"""The segments domain's public shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from leadflow.contacts.service import Contact
from leadflow.segments import durations

DEFAULT_REFRESH = "5m"


def _interval(value: str | None) -> str | None:
    if value is not None:
        seconds = durations.parse(value).total_seconds()
        if seconds < 60:
            raise ValueError("refresh at most once a minute")
        if seconds > 366 * 86400:  # stored in a 32-bit column of seconds
            raise ValueError("refresh at least once a year")
    return value


class SegmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    kind: Literal["dynamic", "static"] = "dynamic"
    rules: dict[str, Any] | None = Field(default=None, description="the rule tree (dynamic segments)")
    refresh_interval: str | None = Field(
        default=None, description="how often a time-relative segment is recomputed, e.g. 5m (default), 1h"
    )

    _check_interval = field_validator("refresh_interval")(classmethod(lambda cls, v: _interval(v)))

    @model_validator(mode="after")
    def _rules_by_kind(self) -> SegmentCreate:
        if self.kind == "dynamic" and self.rules is None:
            raise ValueError("a dynamic segment needs rules")
        if self.kind == "static" and self.rules is not None:
            raise ValueError("a static list has members, not rules")
        return self


class SegmentPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    rules: dict[str, Any] | None = None
    refresh_interval: str | None = None

    _check_interval = field_validator("refresh_interval")(classmethod(lambda cls, v: _interval(v)))


class Segment(BaseModel):
    id: str
    key: str | None
    name: str
    description: str | None
    kind: str
    rules: dict[str, Any] | None
    time_relative: bool
    refresh_interval_seconds: int
    member_count: int
    last_refreshed_at: datetime | None
    next_refresh_at: datetime | None
    created_at: datetime
    updated_at: datetime


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: dict[str, Any]


class Preview(BaseModel):
    count: int
    contacts: list[Contact]


class Member(BaseModel):
    contact: Contact
    entered_at: datetime


class Refreshed(BaseModel):
    segment_id: str
    entered: int
    exited: int
    members: int


class ContactSegment(BaseModel):
    segment_id: str
    name: str
    kind: str
    entered_at: datetime


class MemberIds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contact_ids: list[str] = Field(min_length=1, max_length=1000)
