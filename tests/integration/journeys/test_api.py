"""``/api/v1/journeys``: CRUD, status changes, runs, metrics and the simulator over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support import journeys as j

DEFINITION: dict[str, Any] = {
    "name": "Hello",
    "trigger": {"type": "event", "event": "Signed Up"},
    "steps": [
        {"id": "hello", "type": "send_email", "template": "hello", "next": "later"},
        {"id": "later", "type": "wait", "duration": "2d"},
    ],
}


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_bad_definitions_are_refused_with_the_place(client: TestClient, admin_key: str) -> None:
    broken = {
        **DEFINITION,
        "steps": [{"id": "hello", "type": "send_email", "template": "hello", "next": "nowhere"}],
    }
    answer = client.post("/api/v1/journeys", json={"definition": broken}, headers=auth(admin_key))
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_journey"
    assert "nowhere" in answer.json()["error"]["message"]
    assert client.get("/api/v1/journeys", headers=auth(admin_key)).json()["data"] == []


def test_publishing_needs_the_templates(client: TestClient, admin_key: str) -> None:
    created = client.post("/api/v1/journeys", json={"definition": DEFINITION}, headers=auth(admin_key)).json()
    answer = client.post(f"/api/v1/journeys/{created['id']}/publish", headers=auth(admin_key))
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "unknown_template"
    assert (
        client.get(f"/api/v1/journeys/{created['id']}", headers=auth(admin_key)).json()["status"] == "draft"
    )


def test_lifecycle_runs_and_metrics(
    client: TestClient, admin_key: str, ctx: AppContext, clock: VirtualClock
) -> None:
    j.template(ctx, "hello")
    headers = auth(admin_key)
    created = client.post(
        "/api/v1/journeys", json={"key": "hello", "definition": DEFINITION}, headers=headers
    ).json()
    assert created["status"] == "draft"
    published = client.post("/api/v1/journeys/hello/publish", headers=headers).json()
    assert (published["status"], published["version"]) == ("active", 1)
    j.identify(ctx, "u1", email="ann@example.com")
    j.track(ctx, "u1", "Signed Up")
    j.settle(ctx)
    paused = client.post("/api/v1/journeys/hello/pause", headers=headers).json()
    assert paused["status"] == "paused"
    assert client.post("/api/v1/journeys/hello/pause", headers=headers).status_code == 409
    runs = client.get("/api/v1/journeys/hello/runs?steps=true", headers=headers).json()["data"]
    (run,) = runs
    assert [(s["step_id"], s["status"]) for s in run["steps"]] == [("hello", "done"), ("later", "held")]
    assert client.post("/api/v1/journeys/hello/resume", headers=headers).json()["status"] == "active"
    contact_runs = client.get(f"/api/v1/contacts/{run['contact_id']}/journey-runs", headers=headers).json()[
        "data"
    ]
    assert [r["id"] for r in contact_runs] == [run["id"]]
    metrics = client.get("/api/v1/journeys/hello/metrics", headers=headers).json()
    assert metrics["entered"] == 1
    assert {s["step_id"]: (s["entered"], s["completed"], s["waiting"]) for s in metrics["steps"]} == {
        "hello": (1, 1, 0),
        "later": (1, 0, 1),
    }
    edited = {**DEFINITION, "name": "Hello again"}
    patched = client.patch("/api/v1/journeys/hello", json={"definition": edited}, headers=headers).json()
    assert (patched["version"], patched["name"]) == (2, "Hello again")
    assert client.delete("/api/v1/journeys/hello", headers=headers).status_code == 409
    assert client.post("/api/v1/journeys/hello/archive", headers=headers).json()["status"] == "archived"
    (ended,) = client.get("/api/v1/journeys/hello/runs", headers=headers).json()["data"]
    assert (ended["status"], ended["exit_reason"]) == ("exited", "journey archived")


def test_simulate_over_http(client: TestClient, admin_key: str, ctx: AppContext) -> None:
    j.template(ctx, "hello", subject="Hi {{ contact.first_name }}")
    created = client.post("/api/v1/journeys", json={"definition": DEFINITION}, headers=auth(admin_key)).json()
    body = {
        "contact": {"email": "bo@example.com", "first_name": "Bo"},
        "events": [{"event": "Signed Up"}],
        "horizon": "3d",
    }
    answer = client.post(f"/api/v1/journeys/{created['id']}/simulate", json=body, headers=auth(admin_key))
    assert answer.status_code == 200, answer.text
    timeline = answer.json()["timeline"]
    assert timeline[0]["email"]["subject"] == "Hi Bo"
    assert timeline[0]["email"]["to"] == "bo@example.com"
    assert j.sent(ctx) == []


def test_read_keys_cannot_change_journeys(client: TestClient, make_key: Any) -> None:
    reader = make_key("read")
    answer = client.post("/api/v1/journeys", json={"definition": DEFINITION}, headers=auth(reader))
    assert answer.status_code == 403


def test_template_preview_fails_loudly_on_a_missing_variable(
    client: TestClient, admin_key: str, ctx: AppContext
) -> None:
    j.template(ctx, "hello", subject="Hi {{ contact.first_name }}")
    answer = client.post(
        "/api/v1/email/templates/hello/preview", json={"contact": {}}, headers=auth(admin_key)
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "missing_variable"
    fine = client.post(
        "/api/v1/email/templates/hello/preview",
        json={"contact": {"first_name": "Ann"}},
        headers=auth(admin_key),
    )
    assert fine.json()["subject"] == "Hi Ann"
