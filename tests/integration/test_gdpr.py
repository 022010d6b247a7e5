"""GDPR export and erasure: after an erasure the person's email, name and phone appear nowhere."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.context import AppContext
from leadflow.tables import metadata
from tests.support.contacts import all_contacts
from tests.support.events import send, stored
from tests.support.http import bearer

PII = ("erin.private@example.com", "Erin", "Vasquez-Private", "+14155550199")


@pytest.fixture
def api(client: TestClient, admin_key: str) -> TestClient:
    client.headers.update(bearer(admin_key))
    return client


def _history(ctx: AppContext, processor: EventProcessor, api: TestClient) -> str:
    send(
        ctx,
        {
            "type": "page",
            "anonymousId": "erin-device",
            "properties": {"url": "https://x.test/?utm_source=ads&email=erin.private@example.com"},
        },
        {
            "type": "identify",
            "userId": "erin-1",
            "anonymousId": "erin-device",
            "traits": {"email": PII[0], "firstName": PII[1], "lastName": PII[2], "phone": PII[3]},
        },
        {
            "type": "track",
            "userId": "erin-1",
            "event": "Order Completed",
            "properties": {"billing_name": "Erin Vasquez-Private"},
        },
        {"type": "track", "anonymousId": "other-device", "event": "Visit"},
    )
    processor.drain()  # the second device's profile exists on its own before the merge
    send(
        ctx,
        {"type": "identify", "userId": "erin-1", "anonymousId": "other-device"},
        {"type": "identify", "userId": "bob", "traits": {"email": "bob@example.com", "firstName": "Bob"}},
    )
    processor.drain()
    erin = next(c for c in all_contacts(ctx) if c["user_id"] == "erin-1")
    api.patch(f"/api/v1/contacts/{erin['id']}", json={"traits": {"nickname": "Erin"}})
    return str(erin["id"])


def _text_everywhere(ctx: AppContext) -> str:
    """Every text and JSON value in every table, as one string."""
    chunks: list[str] = []
    with ctx.db.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                chunks.extend(str(value) for value in row if value is not None)
    return "\n".join(chunks)


def test_export_holds_everything_about_the_person(
    ctx: AppContext, processor: EventProcessor, api: TestClient
) -> None:
    contact_id = _history(ctx, processor, api)
    export = api.get(f"/api/v1/contacts/{contact_id}/export")
    assert export.status_code == 200
    data: dict[str, Any] = export.json()
    assert data["contact"]["email"] == PII[0]
    assert data["contact"]["subscription_status"] == "subscribed"
    assert {(i["kind"], i["value"]) for i in data["identities"]} == {
        ("user", "erin-1"),
        ("anon", "erin-device"),
        ("anon", "other-device"),
    }
    assert len(data["merged_contact_ids"]) == 1
    sent = [e for e in data["events"] if not (e["event"] or "").startswith("leadflow.")]
    assert sorted(e["event"] or e["type"] for e in sent) == [
        "Order Completed",
        "Visit",
        "deal.created",  # the course-sales pipeline's rule: a paid order is a won deal
        "identify",
        "identify",
        "page",
    ]
    assert "leadflow.stage_changed" in [e["event"] for e in data["events"]]
    assert [(d["status"], d["reason"]) for d in data["crm_deals"]] == [("won", "paid")]
    assert data["touchpoints"][0]["source"] == "ads"
    assert [a["action"] for a in data["audit"]] == ["contact.updated"]


def test_erasure_leaves_no_trace_of_the_person(
    ctx: AppContext, processor: EventProcessor, api: TestClient
) -> None:
    contact_id = _history(ctx, processor, api)
    before = _text_everywhere(ctx)
    assert all(value in before for value in PII)
    erased = api.delete(f"/api/v1/contacts/{contact_id}")
    assert erased.status_code == 200
    record = erased.json()
    assert record["contact_id"] == contact_id
    assert record["summary"]["events"] >= 5  # what was sent, and leadflow's own events about the person
    after = _text_everywhere(ctx)
    for value in (*PII, "erin-1", "erin-device", "other-device"):
        assert value not in after, value
    assert "bob@example.com" in after  # everyone else is untouched
    assert api.get(f"/api/v1/contacts/{contact_id}").status_code == 404
    erasures = api.get("/api/v1/audit", params={"entity_type": "erasure"}).json()["data"]
    assert erasures[0]["data"]["contact_id"] == contact_id


def test_events_in_flight_after_erasure_do_not_rebuild_the_profile(
    ctx: AppContext, processor: EventProcessor, api: TestClient
) -> None:
    contact_id = _history(ctx, processor, api)
    send(ctx, {"type": "track", "userId": "erin-1", "event": "Queued Before Erasure"})
    api.delete(f"/api/v1/contacts/{contact_id}")
    send(
        ctx,
        {"type": "track", "anonymousId": "erin-device", "event": "Late Retry"},
        {"type": "identify", "userId": "erin-1", "traits": {"email": PII[0]}},
    )
    processor.drain()
    assert [c["user_id"] for c in all_contacts(ctx)] == ["bob"]
    assert all(row["contact_id"] is not None for row in stored(ctx))
    assert PII[0] not in _text_everywhere(ctx)
    send(ctx, {"type": "identify", "userId": "new-person", "traits": {"email": PII[0]}})
    processor.drain()
    assert sorted(c["user_id"] for c in all_contacts(ctx)) == [
        "bob",
        "new-person",
    ]  # a new sign-up is a new person


def test_erasing_twice_is_404(ctx: AppContext, processor: EventProcessor, api: TestClient) -> None:
    contact_id = _history(ctx, processor, api)
    assert api.delete(f"/api/v1/contacts/{contact_id}").status_code == 200
    assert api.delete(f"/api/v1/contacts/{contact_id}").status_code == 404
