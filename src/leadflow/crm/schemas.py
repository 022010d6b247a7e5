"""What the CRM's API and commands take and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Strict = ConfigDict(extra="forbid")
Role = Literal["admin", "marketer", "sales", "viewer"]
Status = Literal["new", "contacted", "qualified", "unqualified", "customer", "lost"]
Kind = Literal["call", "meeting", "note", "task", "email"]
Hours = dict[str, list[list[str]]]


class TeamFields(BaseModel):
    model_config = Strict
    name: str | None = Field(default=None, min_length=1, max_length=200)
    lead_user_id: str | None = Field(
        default=None, max_length=26, description="the user SLA breaches escalate to"
    )


class TeamCreate(TeamFields):
    name: str = Field(min_length=1, max_length=200)


class Team(BaseModel):
    id: str
    name: str
    lead_user_id: str | None
    created_at: datetime
    updated_at: datetime


class UserFields(BaseModel):
    """Omitted fields are left alone (on create: their defaults)."""

    model_config = Strict
    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    role: Role | None = None
    team_id: str | None = Field(default=None, max_length=26)
    timezone: str | None = Field(default=None, max_length=64, description="IANA name, e.g. Europe/Berlin")
    working_hours: Hours | None = Field(
        default=None,
        description='per weekday, intervals in the user\'s time zone: {"mon": [["09:00", "17:00"]]}',
    )
    capacity: int | None = Field(default=None, ge=0, le=1_000_000, description="routing weight; 0 takes none")
    active: bool | None = None


class UserCreate(UserFields):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=320)
    role: Role = "sales"


class User(BaseModel):
    id: str
    name: str
    email: str
    role: str
    team_id: str | None
    timezone: str
    working_hours: Hours
    capacity: int
    active: bool
    created_at: datetime
    updated_at: datetime


class StatusChange(BaseModel):
    model_config = Strict
    status: Status
    reason: str | None = Field(default=None, max_length=2000, description="required for unqualified and lost")


class OwnerChange(BaseModel):
    model_config = Strict
    owner_id: str | None = Field(max_length=26, description="a CRM user id; null unassigns")


class Lead(BaseModel):
    """A contact with a sales record."""

    contact_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    lifecycle_stage: str
    company_id: str | None
    status: str
    reason: str | None
    owner_id: str | None
    source: str | None
    score: float
    score_band: str
    status_changed_at: datetime
    first_response_at: datetime | None
    open_tasks: int = Field(description="tasks not done yet")
    created_at: datetime
    updated_at: datetime


class ActivityFields(BaseModel):
    model_config = Strict
    subject: str | None = Field(default=None, max_length=500)
    body: str | None = Field(default=None, max_length=100_000)
    due_at: datetime | None = Field(default=None, description="tasks")
    done: bool | None = Field(default=None, description="tasks: true marks it done now, false reopens it")
    owner_id: str | None = Field(default=None, max_length=26)
    occurred_at: datetime | None = Field(default=None, description="default: now")


class ActivityCreate(ActivityFields):
    email: str = Field(max_length=320, description="the lead's address")
    kind: Kind


class Activity(BaseModel):
    id: int
    contact_id: str
    kind: str
    subject: str | None
    body: str | None
    due_at: datetime | None
    done_at: datetime | None
    owner_id: str | None
    created_by: str
    occurred_at: datetime
    created_at: datetime


class TimelineEntry(BaseModel):
    """One line of a lead's timeline: a logged activity, or an event from the event log."""

    source: Literal["activity", "event"]
    id: int
    at: datetime
    kind: str = Field(
        description="an activity's kind, or email_sent, email_opened, email_clicked, page, "
        "form_submitted, stage_changed, score_band_changed, status_changed, owner_assigned"
    )
    subject: str | None = None
    body: str | None = None
    due_at: datetime | None = None
    done_at: datetime | None = None
    owner_id: str | None = None
    details: dict[str, Any] | None = None


class LeadFilter(BaseModel):
    status: list[str] | None = None
    owner_id: str | None = None
    unassigned: bool = False
    stage: list[str] | None = None
    score_min: float | None = None
    score_max: float | None = None
    source: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    q: str | None = None
