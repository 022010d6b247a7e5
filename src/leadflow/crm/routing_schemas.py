"""What the routing and SLA API and commands take and answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Strict = ConfigDict(extra="forbid")
SlaState = Literal["awaiting_assignment", "awaiting_response", "breached", "escalated", "responded"]


class RuleFields(BaseModel):
    """Omitted fields are left alone (on create: their defaults)."""

    model_config = Strict
    name: str | None = Field(default=None, min_length=1, max_length=200)
    position: int | None = Field(
        default=None, ge=0, le=1_000_000, description="rules run by ascending position"
    )
    condition: dict[str, Any] | None = Field(
        default=None, description="a rule of the segment language on the contact, its company, score, source"
    )
    team_id: str | None = Field(default=None, max_length=26, description="round-robin in this team …")
    user_id: str | None = Field(default=None, max_length=26, description="… or this user (exactly one)")
    respect_working_hours: bool | None = Field(
        default=None, description="skip users outside their working hours at that moment"
    )
    active: bool | None = None


class RuleCreate(RuleFields):
    name: str = Field(min_length=1, max_length=200)


class Rule(BaseModel):
    id: str
    position: int
    name: str
    condition: dict[str, Any] | None
    team_id: str | None
    user_id: str | None
    respect_working_hours: bool
    active: bool
    created_at: datetime
    updated_at: datetime


class RoutingConfigFields(BaseModel):
    model_config = Strict
    fallback_owner_id: str | None = Field(
        default=None, max_length=26, description="owner when no rule picks one"
    )
    assign_within_seconds: int | None = Field(default=None, ge=1, le=30 * 86400)
    first_response_within_seconds: int | None = Field(
        default=None, ge=1, le=30 * 86400, description="counted in the owner's working hours"
    )
    escalate_after_seconds: int | None = Field(
        default=None, ge=1, le=30 * 86400, description="after the alert, in the owner's working hours"
    )


class RoutingConfig(BaseModel):
    fallback_owner_id: str | None
    assign_within_seconds: int
    first_response_within_seconds: int
    escalate_after_seconds: int


class Routed(BaseModel):
    contact_id: str
    owner_id: str | None
    rule_id: str | None = Field(description="the rule that picked the owner; null for the fallback")


class Sla(BaseModel):
    contact_id: str
    owner_id: str | None = Field(description="the lead's current owner")
    state: SlaState
    qualified_at: datetime
    assigned_at: datetime | None
    assign_breached_at: datetime | None
    first_response_due_at: datetime | None
    first_response_at: datetime | None
    breached_at: datetime | None
    alerted_at: datetime | None
    escalate_due_at: datetime | None
    escalated_at: datetime | None


class SlaOwnerSummary(BaseModel):
    owner_id: str | None
    qualified: int
    responded: int
    assignment_breaches: int
    response_breaches: int
    escalations: int
