"""Activities (tasks, first response) and a lead's timeline: logged activities merged with the event log."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.crm.conftest import user
from tests.support.events import send


def _timeline(api: TestClient, email: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every entry, page by page, and how many pages it took."""
    entries, cursor, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        answer = api.get(f"/api/v1/crm/leads/{email}/activities", params=params)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        entries += page["data"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return entries, pages


def test_the_timeline_merges_activities_and_events_newest_first_across_pages(
    api: TestClient,
    ctx: AppContext,
    clock: VirtualClock,
    processor: EventProcessor,
    identify: Callable[..., None],
) -> None:
    identify({"u1": {"email": "ann@example.com"}})
    start = clock.now()
    send(
        ctx,
        {
            "type": "page",
            "userId": "u1",
            "name": "Pricing",
            "timestamp": (start + timedelta(minutes=1)).isoformat(),
        },
        {
            "type": "track",
            "userId": "u1",
            "event": "form.submitted",
            "properties": {"form": "f1"},
            "timestamp": (start + timedelta(minutes=3)).isoformat(),
        },
        {
            "type": "track",
            "userId": "u1",
            "event": "Unrelated",
            "timestamp": (start + timedelta(minutes=2)).isoformat(),
        },
    )
    processor.drain()
    at = (start + timedelta(minutes=2)).isoformat()
    for kind, subject in (("note", "first note"), ("call", "intro call")):  # both at minute 2: a tie
        logged = api.post(
            "/api/v1/crm/activities",
            json={"email": "ann@example.com", "kind": kind, "subject": subject, "occurred_at": at},
        )
        assert logged.status_code == 201, logged.text
    clock.advance(timedelta(minutes=5))
    api.put("/api/v1/crm/leads/ann@example.com/status", json={"status": "contacted"})
    entries, pages = _timeline(api, "ann@example.com", limit=2)
    kinds = [(entry["source"], entry["kind"]) for entry in entries]
    assert kinds == [
        ("event", "status_changed"),
        ("event", "form_submitted"),
        ("activity", "call"),
        ("activity", "note"),
        ("event", "page"),
        ("event", "stage_changed"),
    ]
    assert pages == 3
    assert [entry["at"] for entry in entries] == sorted((entry["at"] for entry in entries), reverse=True)
    assert entries[0]["details"]["properties"] == {"from": "new", "to": "contacted", "reason": None}
    assert entries[4]["subject"] == "Pricing"
    whole, _ = _timeline(api, "ann@example.com", limit=50)
    assert whole == entries
    bad = api.get("/api/v1/crm/leads/ann@example.com/activities", params={"cursor": "eyJ0IjoxfQ"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "invalid_cursor")
    assert api.get("/api/v1/crm/leads/nobody@example.com/activities").status_code == 404


def test_tasks_have_a_due_date_and_are_done_and_a_call_is_the_first_response(
    api: TestClient, clock: VirtualClock, identify: Callable[..., None]
) -> None:
    identify({"u1": {"email": "ann@example.com"}})
    sam = user(api, "Sam", "sam@biz.example")
    due = (clock.now() + timedelta(days=1)).isoformat()
    task = api.post(
        "/api/v1/crm/activities",
        json={
            "email": "ann@example.com",
            "kind": "task",
            "subject": "send the syllabus",
            "due_at": due,
            "owner_id": sam["id"],
        },
    ).json()
    assert task["done_at"] is None
    lead = api.get("/api/v1/crm/leads/ann@example.com").json()
    assert (lead["open_tasks"], lead["first_response_at"]) == (1, None)  # a task answers nobody
    open_tasks = api.get("/api/v1/crm/activities", params={"open_tasks": True, "owner_id": sam["id"]}).json()
    assert [a["id"] for a in open_tasks["data"]] == [task["id"]]
    clock.advance(timedelta(hours=1))
    done = api.patch(f"/api/v1/crm/activities/{task['id']}", json={"done": True}).json()
    assert done["done_at"] is not None
    assert api.get("/api/v1/crm/activities", params={"open_tasks": True}).json()["data"] == []
    assert api.get("/api/v1/crm/leads/ann@example.com").json()["open_tasks"] == 0
    call = api.post(
        "/api/v1/crm/activities", json={"email": "ann@example.com", "kind": "call", "body": "left a message"}
    )
    assert call.status_code == 201
    assert (
        api.get("/api/v1/crm/leads/ann@example.com").json()["first_response_at"] == call.json()["created_at"]
    )
    for body, code in (
        ({"email": "ann@example.com", "kind": "call", "due_at": due}, "task_only"),
        ({"email": "ann@example.com", "kind": "sms"}, None),
        ({"email": "nobody@example.com", "kind": "note"}, "contact_not_found"),
        ({"email": "ann@example.com", "kind": "note", "owner_id": "nope"}, "user_not_found"),
    ):
        refused = api.post("/api/v1/crm/activities", json=body)
        assert 400 <= refused.status_code < 500, body
        if code:
            assert refused.json()["error"]["code"] == code
    assert api.patch(f"/api/v1/crm/activities/{call.json()['id']}", json={"done": True}).status_code == 422
    listed = api.get("/api/v1/crm/activities", params={"email": "ann@example.com", "limit": 1}).json()
    assert listed["data"][0]["kind"] == "call"
    second = api.get(
        "/api/v1/crm/activities", params={"email": "ann@example.com", "cursor": listed["next_cursor"]}
    )
    assert [a["kind"] for a in second.json()["data"]] == ["task"]
    assert api.delete(f"/api/v1/crm/activities/{task['id']}").status_code == 204
    assert api.get(f"/api/v1/crm/activities/{task['id']}").status_code == 404
    assert api.get("/api/v1/crm/activities/99999999999999999999").status_code == 422
