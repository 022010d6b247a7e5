"""``/api/v1/contacts`` and ``/api/v1/companies``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support.contacts import all_contacts
from tests.support.events import send
from tests.support.http import bearer

CONTACT_KEYS = {
    "id",
    "user_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "traits",
    "lifecycle_stage",
    "company_id",
    "owner_id",
    "timezone",
    "created_at",
    "updated_at",
    "last_seen_at",
    "subscription_status",
    "consent",
    "preferences",
}
EVENT_KEYS = {
    "id",
    "message_id",
    "type",
    "event",
    "name",
    "properties",
    "context",
    "timestamp",
    "received_at",
}


@pytest.fixture
def api(client: TestClient, admin_key: str) -> TestClient:
    client.headers.update(bearer(admin_key))
    return client


def test_upsert_creates_then_updates_idempotently(
    api: TestClient, ctx: AppContext, clock: VirtualClock
) -> None:
    body = {
        "email": "Ann@Example.com",
        "first_name": "Ann",
        "phone": "+44 20 7946 0958",
        "traits": {"plan": "pro"},
    }
    created = api.post("/api/v1/contacts", json=body)
    assert created.status_code == 201, created.text
    contact = created.json()
    assert set(contact) == CONTACT_KEYS
    assert (contact["email"], contact["phone"], contact["lifecycle_stage"]) == (
        "ann@example.com",
        "+442079460958",
        "lead",
    )
    clock.advance(timedelta(minutes=5))
    again = api.post("/api/v1/contacts", json=body)
    assert again.status_code == 200
    assert again.json() == contact  # nothing changed, not even updated_at
    changed = api.post("/api/v1/contacts", json={"email": "ann@example.com", "traits": {"seats": 2}})
    assert changed.json()["traits"] == {"plan": "pro", "seats": 2}
    assert changed.json()["updated_at"] > contact["updated_at"]
    assert len(all_contacts(ctx)) == 1


def test_upsert_by_user_id_links_an_existing_email(api: TestClient) -> None:
    first = api.post("/api/v1/contacts", json={"email": "b@example.com"}).json()
    linked = api.post("/api/v1/contacts", json={"user_id": "u-9", "email": "b@example.com"})
    assert linked.status_code == 200
    assert linked.json()["id"] == first["id"]
    assert linked.json()["user_id"] == "u-9"
    by_user = api.post("/api/v1/contacts", json={"user_id": "u-9", "last_name": "Berg"})
    assert by_user.json()["id"] == first["id"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"first_name": "No Identifier"}, 422, "missing_identifier"),
        ({"email": "not-an-email"}, 422, "invalid_email"),
        ({"email": "p@example.com", "phone": "12"}, 422, "invalid_phone"),
        ({"email": "p@example.com", "timezone": "Mars/Olympus"}, 422, "invalid_timezone"),
        ({"email": "p@example.com", "lifecycle_stage": "king"}, 422, "invalid_stage"),
        ({"email": "p@example.com", "subscription_status": "maybe"}, 422, "invalid_subscription_status"),
        ({"email": "p@example.com", "company_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ"}, 422, "company_not_found"),
        ({"email": "p@example.com", "favourite_colour": "red"}, 422, "validation_error"),
        ({"email": 12}, 422, "validation_error"),
    ],
)
def test_bad_contact_input_is_refused_and_changes_nothing(
    api: TestClient, ctx: AppContext, body: dict[str, Any], status: int, code: str
) -> None:
    response = api.post("/api/v1/contacts", json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert all_contacts(ctx) == []


def test_conflicts_are_409(api: TestClient) -> None:
    api.post("/api/v1/contacts", json={"email": "x@example.com", "user_id": "ux"})
    other = api.post("/api/v1/contacts", json={"email": "y@example.com"}).json()
    taken = api.patch(f"/api/v1/contacts/{other['id']}", json={"email": "x@example.com"})
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "email_taken"
    clash = api.post("/api/v1/contacts", json={"email": "x@example.com", "user_id": "someone-else"})
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "user_id_conflict"
    user_taken = api.patch(f"/api/v1/contacts/{other['id']}", json={"user_id": "ux"})
    assert user_taken.json()["error"]["code"] == "user_id_taken"
    assert api.get(f"/api/v1/contacts/{other['id']}").json()["email"] == "y@example.com"


def test_patch_changes_fields_and_manual_stage_may_go_back_audited(api: TestClient) -> None:
    contact = api.post("/api/v1/contacts", json={"email": "c@example.com", "traits": {"a": 1, "b": 2}}).json()
    patched = api.patch(
        f"/api/v1/contacts/{contact['id']}",
        json={
            "traits": {"a": None, "c": 3},
            "lifecycle_stage": "customer",
            "owner_id": "rep-1",
            "timezone": "Asia/Tokyo",
        },
    ).json()
    assert patched["traits"] == {"b": 2, "c": 3}
    assert (patched["lifecycle_stage"], patched["owner_id"], patched["timezone"]) == (
        "customer",
        "rep-1",
        "Asia/Tokyo",
    )
    back = api.patch(f"/api/v1/contacts/{contact['id']}", json={"lifecycle_stage": "mql"}).json()
    assert back["lifecycle_stage"] == "mql"
    entries = api.get("/api/v1/audit", params={"entity_id": contact["id"]}).json()["data"]
    assert [e["action"] for e in entries] == ["contact.updated", "contact.updated", "contact.created"]
    assert entries[0]["data"]["lifecycle_stage"] == "mql"
    assert entries[0]["data"]["lifecycle_stage_from"] == "customer"
    assert entries[0]["actor"].startswith("key:")


def test_unknown_contact_is_404(api: TestClient) -> None:
    for method, suffix in (
        ("get", ""),
        ("patch", ""),
        ("delete", ""),
        ("get", "/events"),
        ("get", "/export"),
    ):
        kwargs: dict[str, Any] = {"json": {"first_name": "x"}} if method == "patch" else {}
        response = getattr(api, method)(f"/api/v1/contacts/nope{suffix}", **kwargs)
        assert response.status_code == 404, (method, suffix)
        assert response.json()["error"]["code"] == "contact_not_found"


def test_search_filters_and_cursor_pagination(api: TestClient, clock: VirtualClock) -> None:
    for i in range(7):
        api.post(
            "/api/v1/contacts",
            json={
                "email": f"p{i}@example.com",
                "first_name": f"Person{i}",
                "lifecycle_stage": "customer" if i % 2 else "lead",
            },
        )
        clock.advance(timedelta(minutes=1))
    seen: list[str] = []
    cursor = None
    while True:
        page = api.get(
            "/api/v1/contacts", params={"limit": 3, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [c["email"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}@example.com" for i in range(7)]
    assert [
        c["email"] for c in api.get("/api/v1/contacts", params={"email": "P3@EXAMPLE.COM"}).json()["data"]
    ] == ["p3@example.com"]
    customers = api.get("/api/v1/contacts", params={"lifecycle_stage": "customer"}).json()["data"]
    assert len(customers) == 3
    assert [c["first_name"] for c in api.get("/api/v1/contacts", params={"q": "person5"}).json()["data"]] == [
        "Person5"
    ]
    recent = api.get("/api/v1/contacts", params={"updated_since": "2026-03-02T09:05:00Z"}).json()["data"]
    assert [c["email"] for c in recent] == ["p5@example.com", "p6@example.com"]
    bad = api.get("/api/v1/contacts", params={"cursor": "garbage!"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_cursor")
    wrong_stage = api.get("/api/v1/contacts", params={"lifecycle_stage": "king"})
    assert wrong_stage.status_code == 422


def test_search_treats_like_wildcards_literally(api: TestClient) -> None:
    api.post("/api/v1/contacts", json={"email": "under_score@example.com"})
    api.post("/api/v1/contacts", json={"email": "underxscore@example.com"})
    found = api.get("/api/v1/contacts", params={"q": "under_"}).json()["data"]
    assert [c["email"] for c in found] == ["under_score@example.com"]


def test_contact_events_newest_first_filtered_and_paginated(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    send(
        ctx,
        *(
            {"type": "track", "userId": "u1", "event": f"E{i}", "timestamp": f"2026-03-01T10:0{i}:00Z"}
            for i in range(5)
        ),
        {"type": "page", "userId": "u1", "name": "Pricing", "timestamp": "2026-03-01T11:00:00Z"},
    )
    processor.drain()
    contact_id = all_contacts(ctx)[0]["id"]
    page = api.get(f"/api/v1/contacts/{contact_id}/events", params={"limit": 4}).json()
    assert [e["event"] or e["name"] for e in page["data"]] == ["Pricing", "E4", "E3", "E2"]
    assert set(page["data"][0]) == EVENT_KEYS
    rest = api.get(
        f"/api/v1/contacts/{contact_id}/events", params={"limit": 4, "cursor": page["next_cursor"]}
    ).json()
    assert [e["event"] for e in rest["data"]] == ["E1", "E0"]
    assert rest["next_cursor"] is None
    tracks = api.get(f"/api/v1/contacts/{contact_id}/events", params={"type": "track"}).json()["data"]
    assert len(tracks) == 5
    named = api.get(f"/api/v1/contacts/{contact_id}/events", params={"name": "Pricing"}).json()["data"]
    assert [e["type"] for e in named] == ["page"]


def test_merged_contact_id_still_resolves(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    send(ctx, {"type": "track", "anonymousId": "a1", "event": "Visit"})
    processor.drain()
    anonymous_id = all_contacts(ctx)[0]["id"]
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"email": "m@example.com"}})
    processor.drain()
    send(ctx, {"type": "identify", "userId": "u1", "anonymousId": "a1"})
    processor.drain()
    [survivor] = all_contacts(ctx)
    assert survivor["id"] != anonymous_id
    resolved = api.get(f"/api/v1/contacts/{anonymous_id}")
    assert resolved.status_code == 200
    assert resolved.json()["id"] == survivor["id"]
    events = api.get(f"/api/v1/contacts/{anonymous_id}/events").json()["data"]
    assert "Visit" in [e["event"] for e in events]


def test_companies_list_and_get(api: TestClient, ctx: AppContext, processor: EventProcessor) -> None:
    send(
        ctx,
        {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"name": "Acme Corp"}},
        {"type": "group", "userId": "u2", "groupId": "globex", "traits": {"name": "Globex"}},
    )
    processor.drain()
    listed = api.get("/api/v1/companies").json()
    assert sorted(c["name"] for c in listed["data"]) == ["Acme Corp", "Globex"]
    assert listed["next_cursor"] is None
    acme = next(c for c in listed["data"] if c["group_id"] == "acme")
    assert api.get(f"/api/v1/companies/{acme['id']}").json() == acme
    assert api.get("/api/v1/companies/acme").json()["id"] == acme["id"]
    for text in ("glob", "GLOBEX", "lObE"):  # any case
        found = api.get("/api/v1/companies", params={"q": text}).json()["data"]
        assert [c["name"] for c in found] == ["Globex"], text
    assert api.get("/api/v1/companies", params={"q": "%"}).json()["data"] == []  # a literal %
    assert api.get("/api/v1/companies/none").status_code == 404
    contact = api.post("/api/v1/contacts", json={"email": "e@example.com", "company_id": acme["id"]}).json()
    assert contact["company_id"] == acme["id"]
