"""The shapes of analytics answers (API response models, CLI output, the console's pages)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, Field


class Period(BaseModel):
    start: date = Field(description="first UTC day, inclusive")
    end: date = Field(description="last UTC day, inclusive")


class Figure(BaseModel):
    """A number for the period and for the previous period of the same length."""

    current: float
    previous: float
    change: float | None = Field(description="(current - previous) / previous; null when previous is 0")


class Kpis(BaseModel):
    period: Period
    previous: Period
    figures: dict[str, Figure] = Field(
        description="visitors, leads, mql, sql, customers, advocates, emails_sent, emails_delivered, "
        "emails_opened, emails_clicked, emails_unsubscribed, emails_bounced, emails_complained, "
        "leads_qualified, leads_responded, sla_assignment_breaches, sla_response_breaches, sla_escalations, "
        "sla_met_rate (the CRM's lead response SLA for leads qualified in the period)"
    )


class FunnelStep(BaseModel):
    stage: str
    entered: Figure = Field(description="contacts entering the stage in the period (first entry)")
    conversion: Figure | None = Field(
        description="entered this stage / entered the previous stage, in the period; null for the first"
    )
    median_seconds: Figure | None = Field(
        description="median time in seconds from the previous stage, for contacts entering this stage in "
        "the period: an approximate median (±0.5 %) from the rollups' gap histograms, exact with exact=true"
    )


class Funnel(BaseModel):
    period: Period
    previous: Period
    stages: list[FunnelStep]
    exact_medians: bool = Field(
        False, description="false: median_seconds are approximate medians (±0.5 %); true: exact (exact=true)"
    )


class SourceRow(BaseModel):
    source: str
    medium: str
    campaign: str
    leads: Figure


class Sources(BaseModel):
    period: Period
    previous: Period
    rows: list[SourceRow]


class EmailRow(BaseModel):
    key: str = Field(description="template, journey or broadcast id, or journey_id:step_id")
    sent: int
    delivered: int = Field(description="sent - bounced")
    opened: int = Field(description="unique human opens")
    clicked: int = Field(description="unique human clicks")
    unsubscribed: int
    bounced: int
    complained: int
    machine_opened: int = Field(description="opens by scanners and privacy proxies, counted apart")
    machine_clicked: int
    open_rate: float | None
    click_rate: float | None
    unsubscribe_rate: float | None
    bounce_rate: float | None
    complaint_rate: float | None
    previous_sent: int
    previous_open_rate: float | None
    previous_click_rate: float | None


class LinkClicks(BaseModel):
    url: str
    clicked: int = Field(description="people's first clicks on this link (one per message)")
    machine_clicked: int = Field(description="scanners' first clicks on this link, apart")


class EmailReport(BaseModel):
    period: Period
    previous: Period
    by: str
    rows: list[EmailRow]


class JourneyStepCount(BaseModel):
    step_id: str
    reached: int


class JourneyFunnel(BaseModel):
    journey_id: str
    period: Period
    entered: int
    steps: list[JourneyStepCount]
    converted: int = Field(description="runs entered in the period that reached the goal")
    conversion_rate: float | None


class Health(BaseModel):
    window_hours: float
    connectors: list[dict[str, Any]] = Field(description="each connector's health (success rate, lag, queue)")
    webhooks: list[dict[str, Any]] = Field(
        description="each endpoint's deliveries over the window: counts, success rate, latency p50/p99"
    )
