"""The event catalogue and the fan-out's reading of a pipeline batch (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from leadflow.kernel.facts import ContactsTouched, TouchedEvent
from leadflow.scheduling import notify as scheduling_notify
from leadflow.webhooks import catalogue
from leadflow.webhooks.fanout import deliveries, occurrences

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ISSUE_TYPES = {
    "contact.created",
    "contact.updated",
    "lead.captured",
    "lead.status_updated",
    "assessment.completed",
    "consultation.requested",
    "consultation.scheduled",
    "email.sent",
    "email.opened",
    "email.clicked",
    "email.bounced",
    "email.unsubscribed",
    "segment.entered",
    "segment.exited",
    "stage.changed",
    "score.band_changed",
    "deal.created",
    "deal.stage_changed",
    "form.submitted",
    # the SLA section: an unanswered lead alerts its owner "by email and webhook", then escalates
    "lead.sla_breached",
    "lead.sla_escalated",
    # issue 15, threshold alerts: leadflow's own notices, about no contact
    "alert.opened",
    "alert.resolved",
}


def event(event_id: int, name: str, contact_id: str = "c1", kind: str = "track") -> TouchedEvent:
    return TouchedEvent(event_id, contact_id, kind, name, None, "api", AT, {"segment_id": "s1"})


def test_the_catalogue_holds_every_type_of_the_issue_with_a_schema() -> None:
    assert catalogue.SUBSCRIBABLE == ISSUE_TYPES
    for entry in catalogue.listing():
        assert entry["version"] == 1
        assert entry["schema"]["required"][0] == "contact"
        assert entry["schema"]["$id"].endswith(f"{entry['type']}:v1")
    assert catalogue.unknown(["*", "deal.created", "deal.deleted"]) == ["deal.deleted"]


def test_internal_events_and_names_per_the_catalogue_map_to_types() -> None:
    assert catalogue.type_of("leadflow.segment_entered") == "segment.entered"
    assert catalogue.type_of("leadflow.score_band_changed") == "score.band_changed"
    assert catalogue.type_of("leadflow.email_bounced") == "email.bounced"
    assert catalogue.type_of("deal.created") == "deal.created"
    assert catalogue.type_of("lead.status_changed") == "lead.status_updated"
    assert catalogue.type_of("Order Completed") is None
    assert catalogue.type_of("leadflow.email_suppressed") is None
    assert catalogue.type_of(catalogue.TEST) is None  # sent only on demand
    assert catalogue.type_of("alert.opened") is None  # a notice, never a contact's track event


def test_a_batch_becomes_one_delivery_per_occurrence_and_subscribed_endpoint() -> None:
    fact = ContactsTouched(
        {
            "c1": frozenset({"*"}),
            "c2": frozenset({"traits.plan", "last_seen_at"}),
            "c3": frozenset({"last_seen_at"}),
        },
        (event(7, "leadflow.segment_entered"), event(8, "Page Viewed"), event(9, "x", kind="identify")),
        AT,
    )
    found = occurrences(fact)
    assert sorted((o.type, o.contact_id) for o in found) == [
        ("contact.created", "c1"),
        ("contact.updated", "c2"),
        ("segment.entered", "c1"),
    ]
    endpoints = [
        ("e1", "https://a.example", frozenset({"*"})),
        ("e2", "https://b.example", frozenset({"segment.entered"})),
    ]
    rows = deliveries(found, endpoints, {"c1": {"id": "c1", "email": "ada@example.com"}}, AT)
    assert sorted((row["event"], row["endpoint_id"]) for row in rows) == [
        ("contact.created", "e1"),
        ("contact.updated", "e1"),
        ("segment.entered", "e1"),
        ("segment.entered", "e2"),
    ]
    keys = [row["key"] for row in rows]
    assert len(set(keys)) == len(keys)
    assert "evt:7:e2" in keys
    entered = next(row for row in rows if row["key"] == "evt:7:e1")
    assert entered["payload"] == {"segment_id": "s1", "contact": {"id": "c1", "email": "ada@example.com"}}
    updated = next(row for row in rows if row["event"] == "contact.updated")
    assert updated["payload"]["changed"] == ["traits.plan"]


def test_a_merge_survivor_is_not_a_new_contact() -> None:
    fact = ContactsTouched({"c1": frozenset({"*"})}, (), AT, merged=(("c9", "c1"),))
    assert [(o.type, o.data) for o in occurrences(fact)] == [("contact.updated", {"changed": ["*"]})]


def test_the_scheduling_events_carry_the_fields_their_schema_documents() -> None:
    booking = SimpleNamespace(
        id="b1", user_id="u1", service="Intro", starts_at=AT, ends_at=AT, email="ann@example.com"
    )
    sent = scheduling_notify.properties(booking, source="api", rescheduled=True)
    scheduled = catalogue.BY_NAME["consultation.scheduled"]
    assert set(sent) <= set(scheduled.fields), set(sent) - set(scheduled.fields)
    assert set(scheduled.required) <= set(sent)
    requested = catalogue.BY_NAME["consultation.requested"]
    assert {"request_id", "service", "preferred_times", "topic", "message", "preferred_contact"} <= set(
        requested.fields
    )
