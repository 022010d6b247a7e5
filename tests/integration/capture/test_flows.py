"""The business's capture flows over HTTP on both databases: each call creates or updates the contact,
logs the CRM activity and stores the flow's event with its source; a repeated key changes nothing; bad
input is a 4xx with a code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.contacts import service as contacts
from leadflow.contacts.models import touchpoints
from leadflow.crm.models import crm_activities
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.webhooks.models import webhook_deliveries
from tests.support import journeys as j

ASSESSMENT = {
    "email": "Ann.Lee@Example.com",
    "name": "Ann Lee",
    "assessment_type": "career-readiness",
    "persona": "career_changer",
    "readiness_score": 82,
    "recommended_service": "Data Analyst Bootcamp",
}
CONSULTATION = {
    "email": "bob@example.com",
    "name": "Bob",
    "topic": "Switching to data",
    "message": "Can we talk next week?",
    "preferred_contact": "phone",
    "phone": "+49 30 1234567",
}
INVALID = "validation_error"
LEAD = {
    "email": "cat@example.com",
    "name": "Cat Vega",
    "source": "social_lead_ad",
    "source_detail": "LinkedIn spring ad",
    "campaign": {"name": "spring", "source": "linkedin", "medium": "paid_social"},
    "consent": True,
}


@pytest.fixture
def auth(make_key: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key('read', 'write')}"}


def _contact(ctx: AppContext, contact_id: str) -> Any:
    with ctx.db.read() as conn:
        return contacts.get(conn, contact_id)


def _rows(ctx: AppContext, query: Any) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def _event(ctx: AppContext, name: str) -> dict[str, Any]:
    (found,) = _rows(ctx, sa.select(events).where(events.c.event == name))
    return found


def _activities(ctx: AppContext, contact_id: str) -> list[dict[str, Any]]:
    return _rows(ctx, sa.select(crm_activities).where(crm_activities.c.contact_id == contact_id))


def test_an_assessment_updates_the_contact_logs_a_note_and_emits_the_event(
    ctx: AppContext, client: TestClient, auth: dict[str, str]
) -> None:
    answer = client.post("/api/v1/capture/assessments", json=ASSESSMENT, headers=auth)
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["event"], body["replayed"]) == ("assessment.completed", False)
    j.settle(ctx)
    contact = _contact(ctx, body["contact_id"])
    assert (contact.email, contact.first_name, contact.last_name) == ("ann.lee@example.com", "Ann", "Lee")
    assert contact.traits["persona"] == "career_changer"
    assert contact.traits["readiness_score"] == 82
    event = _event(ctx, "assessment.completed")
    assert event["contact_id"] == body["contact_id"]
    assert event["message_id"] == body["message_id"]
    assert event["properties"] == {k: ASSESSMENT[k] for k in ASSESSMENT if k not in ("email", "name")}
    (note,) = _activities(ctx, body["contact_id"])
    assert (note["kind"], note["subject"]) == ("note", "Assessment completed: career-readiness")
    assert "readiness score: 82" in note["body"]


def test_an_assessment_enters_the_persona_journey(
    ctx: AppContext, client: TestClient, auth: dict[str, str]
) -> None:
    j.template(ctx, "assessment-results", kind="transactional")
    journey = {
        "name": "Career changers",
        "trigger": {
            "type": "event",
            "event": "assessment.completed",
            "where": [{"field": "persona", "op": "eq", "value": "career_changer"}],
        },
        "settings": {"kind": "transactional"},
        "steps": [{"id": "results", "type": "send_email", "template": "assessment-results"}],
    }
    j.publish(ctx, journey)
    client.post("/api/v1/capture/assessments", json=ASSESSMENT, headers=auth)
    client.post(
        "/api/v1/capture/assessments",
        json={**ASSESSMENT, "email": "x@example.com", "persona": "student"},
        headers=auth,
    )
    j.settle(ctx)
    (message,) = j.sent(ctx)
    assert _contact(ctx, message["contact_id"]).email == "ann.lee@example.com"


def test_a_consultation_request_is_a_task_for_the_owner_due_in_two_hours(
    ctx: AppContext, clock: VirtualClock, client: TestClient, auth: dict[str, str]
) -> None:
    answer = client.post("/api/v1/capture/consultations", json=CONSULTATION, headers=auth)
    assert answer.status_code == 202, answer.text
    contact_id = answer.json()["contact_id"]
    j.settle(ctx)
    assert _contact(ctx, contact_id).phone == "+49301234567"
    assert _event(ctx, "consultation.requested")["properties"] == {
        "topic": "Switching to data",
        "message": "Can we talk next week?",
        "preferred_contact": "phone",
    }
    (task,) = _activities(ctx, contact_id)
    assert (task["kind"], task["subject"]) == ("task", "Consultation requested: Switching to data")
    assert task["due_at"] == clock.now() + timedelta(hours=2)
    assert task["done_at"] is None


def test_a_captured_lead_records_its_source_and_campaign(
    ctx: AppContext, client: TestClient, auth: dict[str, str]
) -> None:
    answer = client.post("/api/v1/capture/leads", json=LEAD, headers=auth)
    assert answer.status_code == 202, answer.text
    contact_id = answer.json()["contact_id"]
    j.settle(ctx)
    event = _event(ctx, "lead.captured")
    assert event["properties"]["source"] == "social_lead_ad"
    assert event["properties"]["source_detail"] == "LinkedIn spring ad"
    assert event["properties"]["utm"] == {
        "utm_campaign": "spring",
        "utm_source": "linkedin",
        "utm_medium": "paid_social",
    }
    assert event["context"]["campaign"] == LEAD["campaign"]
    assert _contact(ctx, contact_id).traits["marketing_consent"] is True
    touches = _rows(ctx, sa.select(touchpoints).where(touchpoints.c.contact_id == contact_id))
    # the visit carrying the campaign and the lead.captured itself (one touch to attribution: equal
    # touches at one moment count once)
    assert sorted((t["kind"], t["source"], t["medium"], t["campaign"]) for t in touches) == [
        ("page", "linkedin", "paid_social", "spring"),
        ("track", "linkedin", "paid_social", "spring"),
    ]
    (note,) = _activities(ctx, contact_id)
    assert note["subject"] == "Lead captured from social lead ad (LinkedIn spring ad)"


@pytest.mark.parametrize("how", ["header", "messageId"])
def test_the_same_key_changes_nothing_the_second_time(
    ctx: AppContext, client: TestClient, auth: dict[str, str], how: str
) -> None:
    body, headers = dict(LEAD), dict(auth)
    if how == "header":
        headers["Idempotency-Key"] = "lead-42"
    else:
        body["messageId"] = "lead-42"
    first = client.post("/api/v1/capture/leads", json=body, headers=headers).json()
    other = {**body, "name": "Other Name", "email": "someone.else@example.com"}
    again = client.post("/api/v1/capture/leads", json=other, headers=headers).json()
    j.settle(ctx)
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert again["contact_id"] == first["contact_id"]
    assert again["message_id"] == first["message_id"]
    assert len(_rows(ctx, sa.select(events).where(events.c.event == "lead.captured"))) == 1
    assert len(_activities(ctx, first["contact_id"])) == 1
    assert _contact(ctx, first["contact_id"]).first_name == "Cat"
    with ctx.db.read() as conn:
        assert contacts.contact_id_for_email(conn, "someone.else@example.com") is None
    without = client.post("/api/v1/capture/leads", json=LEAD, headers=auth).json()
    assert without["replayed"] is False  # no key: a new capture
    assert len(_activities(ctx, first["contact_id"])) == 2


BAD: list[tuple[str, dict[str, Any], str | None]] = [
    ("assessments", {**ASSESSMENT, "readiness_score": 101}, INVALID),
    ("assessments", {k: v for k, v in ASSESSMENT.items() if k != "email"}, INVALID),
    ("leads", {**LEAD, "source": "fax"}, INVALID),
    ("leads", {**LEAD, "email": "not an email"}, None),
    ("consultations", {**CONSULTATION, "preferred_contact": "pig"}, INVALID),
    ("consultations", {**CONSULTATION, "phone": "call me"}, None),
    ("consultations", {**CONSULTATION, "extra": 1}, INVALID),
]


def test_bad_input_is_a_422_with_a_code(ctx: AppContext, client: TestClient, auth: dict[str, str]) -> None:
    for path, body, code in BAD:
        answer = client.post(f"/api/v1/capture/{path}", json=body, headers=auth)
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == (code or error["code"]), answer.text
        assert error["code"]
    assert _rows(ctx, sa.select(events)) == []
    assert _rows(ctx, sa.select(crm_activities)) == []


def test_the_flows_need_the_write_scope(client: TestClient, make_key: Callable[..., str]) -> None:
    reader = {"Authorization": f"Bearer {make_key('read')}"}
    assert client.post("/api/v1/capture/leads", json=LEAD, headers=reader).status_code == 403
    assert client.post("/api/v1/capture/leads", json=LEAD).status_code == 401


def test_each_flow_reaches_the_subscribed_webhook_endpoints(
    ctx: AppContext, client: TestClient, admin_key: str
) -> None:
    admin = {"Authorization": f"Bearer {admin_key}"}
    types = ["assessment.completed", "consultation.requested", "lead.captured"]
    endpoint = {"url": "https://hooks.example.com/leads", "event_types": types}
    assert client.post("/api/v1/webhooks/endpoints", json=endpoint, headers=admin).status_code == 201
    for path, body in (("assessments", ASSESSMENT), ("consultations", CONSULTATION), ("leads", LEAD)):
        assert client.post(f"/api/v1/capture/{path}", json=body, headers=admin).status_code == 202
    j.settle(ctx)
    deliveries = {d["event"]: d for d in _rows(ctx, sa.select(webhook_deliveries))}
    assert sorted(deliveries) == types
    lead = deliveries["lead.captured"]["payload"]  # the event's data: its properties beside the contact
    assert (lead["source"], lead["contact"]["email"]) == ("social_lead_ad", "cat@example.com")
    assert deliveries["assessment.completed"]["payload"]["persona"] == "career_changer"
