"""API keys, scopes on every route, error shapes, health, metrics and the OpenAPI document."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support.events import send
from tests.support.http import basic, bearer

OPEN_ROUTES = {"/healthz", "/metrics"}
# Public by design, each authenticated otherwise: hosted forms (/f/), senders' signed webhooks (/hooks/),
# and the signed reschedule/cancel/invitation links of a booking (/calendar/).
PUBLIC_PREFIXES = ("/f/", "/hooks/", "/calendar/")
INGEST_PREFIX = "/v1/"


def _scopes(requirement: dict[str, list[str]]) -> list[str]:
    return next(iter(requirement.values()))


def _protected_routes(client: TestClient) -> list[tuple[str, str, str]]:
    """(method, path with placeholders filled, required scope) for every protected operation, read from
    the OpenAPI document, which names each operation's scope in its security requirement."""
    routes: list[tuple[str, str, str]] = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        for method, operation in operations.items():
            if path in OPEN_ROUTES or path.startswith(PUBLIC_PREFIXES):
                assert not operation.get("security"), path
                continue
            # one requirement, or alternatives (a Bearer key, or the key as Basic credentials) of one scope
            [scope] = {scope for requirement in operation["security"] for scope in _scopes(requirement)}
            routes.append((method.upper(), re.sub(r"\{[^}]+\}", "some-id", path), scope))
    return routes


def _call(client: TestClient, method: str, path: str, headers: dict[str, str]) -> Any:
    body: Any = {"userId": "u", "event": "E", "batch": []} if path.startswith(INGEST_PREFIX) else {}
    return client.request(
        method, path, json=body if method in ("POST", "PATCH", "PUT") else None, headers=headers
    )


WEAKER = {
    "ingest": ("read", "write"),
    "read": ("ingest",),
    "write": ("ingest", "read"),
    "admin": ("ingest", "read", "write"),
}


def test_every_protected_route_refuses_keys_without_its_scope(
    client: TestClient, make_key: Callable[..., str]
) -> None:
    routes = _protected_routes(client)
    assert len(routes) >= 15, routes
    keys = {scope: make_key(scope) for scope in ("ingest", "read", "write")}
    for method, path, scope in routes:
        for weaker in WEAKER[scope]:
            headers = basic(keys[weaker]) if path.startswith(INGEST_PREFIX) else bearer(keys[weaker])
            response = _call(client, method, path, headers)
            assert response.status_code == 403, (method, path, weaker, response.text)
            assert response.json()["error"]["code"] == "insufficient_scope"


def test_every_protected_route_refuses_missing_and_unknown_keys(client: TestClient) -> None:
    for method, path, _ in _protected_routes(client):
        for headers in ({}, bearer("lf_unknown"), basic("lf_unknown")):
            if not path.startswith(INGEST_PREFIX) and headers.get("Authorization", "").startswith("Basic"):
                continue
            response = _call(client, method, path, headers)
            assert response.status_code == 401, (method, path, headers, response.text)


def test_admin_key_passes_every_scope_check(client: TestClient, admin_key: str) -> None:
    for method, path, _ in _protected_routes(client):
        headers = basic(admin_key) if path.startswith(INGEST_PREFIX) else bearer(admin_key)
        assert _call(client, method, path, headers).status_code not in (401, 403), (method, path)


def test_keys_are_created_shown_once_listed_and_revoked(client: TestClient, admin_key: str) -> None:
    created = client.post(
        "/api/v1/keys", json={"name": "crm sync", "scopes": ["read", "write"]}, headers=bearer(admin_key)
    )
    assert created.status_code == 201
    secret = created.json()["key"]
    assert secret.startswith("lf_")
    assert client.get("/api/v1/contacts", headers=bearer(secret)).status_code == 200
    listed = client.get("/api/v1/keys", headers=bearer(admin_key)).json()["data"]
    assert all("key" not in k and secret not in str(k) for k in listed)
    mine = next(k for k in listed if k["name"] == "crm sync")
    assert mine["scopes"] == ["read", "write"]
    assert mine["prefix"] == secret[:10]
    revoked = client.delete(f"/api/v1/keys/{mine['id']}", headers=bearer(admin_key))
    assert revoked.json()["revoked_at"] is not None
    assert client.get("/api/v1/contacts", headers=bearer(secret)).status_code == 401
    assert client.delete("/api/v1/keys/nope", headers=bearer(admin_key)).status_code == 404


def test_a_keys_last_use_is_recorded_to_within_a_minute(
    client: TestClient, admin_key: str, clock: VirtualClock
) -> None:
    created = client.post(
        "/api/v1/keys", json={"name": "sync", "scopes": ["read"]}, headers=bearer(admin_key)
    )
    secret, key_id = created.json()["key"], created.json()["id"]

    def last_used() -> str | None:
        listed = client.get("/api/v1/keys", headers=bearer(admin_key)).json()["data"]
        return next(k["last_used_at"] for k in listed if k["id"] == key_id)

    assert created.json()["last_used_at"] is None
    assert last_used() is None
    assert client.get("/api/v1/contacts", headers=bearer(secret)).status_code == 200
    first = last_used()
    assert first is not None
    assert first.startswith("2026-03-02T09:00")
    clock.advance(timedelta(minutes=5))
    client.app.state.api.keys.invalidate()  # as after the cache's few seconds
    assert client.get("/api/v1/contacts", headers=bearer(secret)).status_code == 200
    assert last_used().startswith("2026-03-02T09:05")  # type: ignore[union-attr]
    clock.advance(timedelta(seconds=20))  # within the minute: nothing written
    client.app.state.api.keys.invalidate()
    assert client.get("/api/v1/contacts", headers=bearer(secret)).status_code == 200
    assert last_used().startswith("2026-03-02T09:05:00")  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"name": "x", "scopes": ["root"]}, "invalid_scope"),
        ({"name": "x", "scopes": []}, "validation_error"),
        ({"scopes": ["read"]}, "validation_error"),
    ],
)
def test_bad_key_requests_are_422(
    client: TestClient, admin_key: str, body: dict[str, Any], code: str
) -> None:
    response = client.post("/api/v1/keys", json=body, headers=bearer(admin_key))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


def test_unknown_route_and_wrong_method_have_the_error_shape(client: TestClient) -> None:
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    wrong = client.put("/v1/track")
    assert wrong.status_code == 405
    assert wrong.json()["error"]["code"] == "method_not_allowed"


def test_malformed_json_on_the_rest_api_is_400(client: TestClient, admin_key: str) -> None:
    response = client.post(
        "/api/v1/contacts",
        content=b"{nope",
        headers={**bearer(admin_key), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_healthz_reports_backlog_and_lag(
    client: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    from datetime import timedelta

    send(ctx, {"type": "track", "userId": "u", "event": "E"})
    ctx.clock.advance(timedelta(seconds=30))  # type: ignore[attr-defined]
    health = client.get("/healthz").json()
    assert health == {"status": "ok", "database": "ok", "pending_events": 1, "processing_lag_seconds": 30.0}
    processor.drain()
    assert client.get("/healthz").json()["pending_events"] == 0


def test_metrics_count_ingested_processed_and_errors(
    client: TestClient, write_key: str, ctx: AppContext, processor: EventProcessor
) -> None:
    client.post(
        "/v1/batch",
        json={"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": "m1"}] * 2},
        headers=basic(write_key),
    )
    client.post("/v1/track", json={"event": "no id"}, headers=basic(write_key))
    processor.drain()
    text = client.get("/metrics").text
    assert 'leadflow_events_ingested_total{type="track"} 1.0' in text
    assert "leadflow_events_duplicate_total 1.0" in text
    assert "leadflow_events_processed_total 1.0" in text
    assert 'leadflow_http_errors_total{code="no_user_anon_id"} 1.0' in text
    assert "leadflow_events_pending 0.0" in text
    assert "leadflow_processing_lag_seconds 0.0" in text


def test_openapi_describes_every_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), (method, path)
            assert {"200", "201", "202", "204"} & set(operation["responses"]), (method, path)
    assert "requestBody" in spec["paths"]["/v1/batch"]["post"]
    assert client.get("/docs").status_code == 200


def test_oversized_rest_body_is_413_and_changes_nothing(
    client: TestClient, admin_key: str, ctx: AppContext
) -> None:
    from tests.support.contacts import all_contacts

    body = {"email": "big@example.com", "traits": {"blob": "x" * (1024 * 1024 + 10)}}
    response = client.post("/api/v1/contacts", json=body, headers=bearer(admin_key))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Any:
        yield b'{"email": "big@example.com", "traits": {"blob": "'
        for _ in range(1100):
            yield b"x" * 1024
        yield b'"}}'

    streamed = client.post(
        "/api/v1/contacts",
        content=chunks(),
        headers={**bearer(admin_key), "Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"
    assert all_contacts(ctx) == []
