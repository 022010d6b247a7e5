"""What the journeys API takes and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class JourneyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_.\-]{0,99}$")
    definition: dict[str, Any] = Field(description="the journey definition (docs/journeys.md)")


class JourneyPatch(BaseModel):
    """A new working copy; on an active journey it is published at once as a new version."""

    model_config = ConfigDict(extra="forbid")
    definition: dict[str, Any]


class Journey(BaseModel):
    id: str
    key: str | None
    name: str
    description: str | None
    status: str
    version: int | None
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    published_at: datetime | None


class StepRecord(BaseModel):
    id: int
    step_id: str
    type: str
    status: str
    due_at: datetime
    created_at: datetime
    finished_at: datetime | None
    branch: str | None
    attempts: int
    error: str | None


class Run(BaseModel):
    id: str
    journey_id: str
    version: int
    contact_id: str
    status: str
    step_id: str | None
    variant: str | None
    entered_at: datetime
    ended_at: datetime | None
    exit_reason: str | None
    converted_at: datetime | None
    error: str | None
    trigger: dict[str, Any]
    steps: list[StepRecord] | None = None


class StepMetrics(BaseModel):
    step_id: str
    type: str
    entered: int
    completed: int
    waiting: int
    failed: int
    converted: int


class JourneyMetrics(BaseModel):
    journey_id: str
    entered: int
    active: int
    completed: int
    exited: int
    converted: int
    failed: int
    steps: list[StepMetrics]


class Version(BaseModel):
    """A published version: what contacts who entered it follow."""

    journey_id: str
    version: int
    published_at: datetime
    published_by: str
    definition: dict[str, Any] | None
