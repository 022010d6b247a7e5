"""Prometheus metrics, one registry per running application."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_ingested = Counter(
            "leadflow_events_ingested", "Events accepted and stored durably", ["type"], registry=self.registry
        )
        self.events_duplicate = Counter(
            "leadflow_events_duplicate",
            "Events refused as repeats of a known messageId",
            registry=self.registry,
        )
        self.events_processed = Counter(
            "leadflow_events_processed", "Events applied to profiles by the processor", registry=self.registry
        )
        self.processing_errors = Counter(
            "leadflow_processing_errors",
            "Events the processor could not apply (kept, with the reason)",
            registry=self.registry,
        )
        self.http_errors = Counter(
            "leadflow_http_errors", "Requests answered with an error", ["code"], registry=self.registry
        )
        self.journey_entries = Counter(
            "leadflow_journey_entries", "Contacts that entered a journey", registry=self.registry
        )
        self.journey_steps = Counter(
            "leadflow_journey_steps", "Journey steps executed", ["type"], registry=self.registry
        )
        self.journey_step_failures = Counter(
            "leadflow_journey_step_failures",
            "Journey step attempts that failed (final: the run failed with the reason)",
            ["final"],
            registry=self.registry,
        )
        self.emails = Counter(
            "leadflow_emails",
            "Email outcomes (sent, deferred, bounced, failed, suppressed)",
            ["status"],
            registry=self.registry,
        )
