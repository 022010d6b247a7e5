"""The Segment HTTP Tracking API over HTTP (in-process server): every rule of the contract."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from leadflow.api.app import create_app
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context
from tests.support.events import count, stored
from tests.support.http import basic, bearer

ENDPOINT_BODIES: dict[str, dict[str, Any]] = {
    "identify": {"userId": "u1", "traits": {"email": "ann@example.com"}},
    "track": {"userId": "u1", "event": "Course Previewed", "properties": {"course": "ai-101"}},
    "page": {"anonymousId": "a1", "name": "Pricing", "properties": {"url": "https://x.test/pricing"}},
    "screen": {"userId": "u1", "name": "Home"},
    "group": {"userId": "u1", "groupId": "g1", "traits": {"name": "Acme"}},
    "alias": {"previousId": "a1", "userId": "u1"},
}


@pytest.mark.parametrize("kind", sorted(ENDPOINT_BODIES))
def test_each_endpoint_stores_its_message(
    client: TestClient, write_key: str, ctx: AppContext, kind: str
) -> None:
    response = client.post(f"/v1/{kind}", json=ENDPOINT_BODIES[kind], headers=basic(write_key))
    assert response.status_code == 200
    assert response.json() == {"success": True}
    [row] = stored(ctx)
    assert row["type"] == kind
    assert row["processed_at"] is None  # processing is asynchronous
    assert row["received_at"] == ctx.clock.now()


def test_batch_applies_top_level_context_to_items_lacking_one(
    client: TestClient, write_key: str, ctx: AppContext
) -> None:
    body = {
        "batch": [
            {"type": "track", "userId": "u1", "event": "A"},
            {"type": "track", "userId": "u1", "event": "B", "context": {"ip": "10.0.0.2"}},
        ],
        "context": {"ip": "10.0.0.1"},
    }
    assert client.post("/v1/batch", json=body, headers=basic(write_key)).status_code == 200
    assert [r["context"] for r in stored(ctx)] == [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]


def test_write_key_in_body_is_accepted(client: TestClient, write_key: str, ctx: AppContext) -> None:
    body = {"writeKey": write_key, "userId": "u1", "event": "Signed Up"}
    assert client.post("/v1/track", json=body).status_code == 200
    assert count(ctx) == 1


def test_bearer_write_key_is_accepted(client: TestClient, write_key: str, ctx: AppContext) -> None:
    assert (
        client.post("/v1/track", json={"userId": "u1", "event": "X"}, headers=bearer(write_key)).status_code
        == 200
    )
    assert count(ctx) == 1


@pytest.mark.parametrize(
    ("headers", "body_key", "code"),
    [
        ({}, None, "missing_write_key"),
        (basic("lf_not-a-real-key"), None, "invalid_write_key"),
        ({}, "lf_not-a-real-key", "invalid_write_key"),
        ({"Authorization": "Digest abc"}, None, "invalid_write_key"),
    ],
)
def test_bad_or_missing_key_is_401_and_stores_nothing(
    client: TestClient, ctx: AppContext, headers: dict[str, str], body_key: str | None, code: str
) -> None:
    body: dict[str, Any] = {"userId": "u1", "event": "X"}
    if body_key:
        body["writeKey"] = body_key
    response = client.post("/v1/track", json=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == code
    assert response.json()["code"] == code  # where Segment clients read it
    assert count(ctx) == 0


def test_revoked_key_is_refused(client: TestClient, admin_key: str, write_key: str, ctx: AppContext) -> None:
    keys = client.get("/api/v1/keys", headers=bearer(admin_key)).json()["data"]
    write_id = next(k["id"] for k in keys if k["scopes"] == ["ingest"])
    assert client.delete(f"/api/v1/keys/{write_id}", headers=bearer(admin_key)).status_code == 200
    response = client.post("/v1/track", json={"userId": "u1", "event": "X"}, headers=basic(write_key))
    assert response.status_code == 401
    assert count(ctx) == 0


def test_key_without_ingest_scope_is_403(
    client: TestClient, make_key: Callable[..., str], ctx: AppContext
) -> None:
    response = client.post("/v1/track", json={"userId": "u1", "event": "X"}, headers=basic(make_key("read")))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert count(ctx) == 0


@pytest.mark.parametrize(
    ("kind", "body", "code"),
    [
        ("track", {"event": "X"}, "no_user_anon_id"),
        ("track", {"userId": "u1"}, "no_event"),
        ("track", {"userId": "u1", "event": ""}, "no_event"),
        ("group", {"userId": "u1"}, "no_group_id"),
        ("alias", {"userId": "u1"}, "no_previous_id"),
        ("alias", {"previousId": "a1"}, "no_user_id"),
        ("identify", {"userId": "u1", "traits": "not an object"}, "invalid_field"),
        ("track", {"userId": "u1", "event": "X", "timestamp": "yesterday"}, "invalid_timestamp"),
        ("track", {"userId": "u1", "event": "X", "messageId": "m" * 101}, "invalid_message_id"),
        ("track", ["not", "an", "object"], "invalid_message"),
    ],
)
def test_invalid_message_is_400_and_stores_nothing(
    client: TestClient, write_key: str, ctx: AppContext, kind: str, body: Any, code: str
) -> None:
    response = client.post(f"/v1/{kind}", json=body, headers=basic(write_key))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert count(ctx) == 0


def test_one_bad_message_refuses_the_whole_batch(client: TestClient, write_key: str, ctx: AppContext) -> None:
    body = {"batch": [{"type": "track", "userId": "u1", "event": "ok"}, {"type": "track", "event": "no ids"}]}
    response = client.post("/v1/batch", json=body, headers=basic(write_key))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_user_anon_id"
    assert "batch[1]" in response.json()["error"]["message"]
    assert count(ctx) == 0


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b'{"userId": "u1", "event": "X"'])
def test_invalid_json_is_400(client: TestClient, write_key: str, ctx: AppContext, body: bytes) -> None:
    response = client.post(
        "/v1/track", content=body, headers={**basic(write_key), "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert count(ctx) == 0


def test_message_over_32_kb_is_400(client: TestClient, write_key: str, ctx: AppContext) -> None:
    body = {"userId": "u1", "event": "X", "properties": {"blob": "x" * (32 * 1024)}}
    response = client.post("/v1/track", json=body, headers=basic(write_key))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "message_too_large"
    batch = {"batch": [{"type": "track", **body}]}
    response = client.post("/v1/batch", json=batch, headers=basic(write_key))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "message_too_large"
    assert count(ctx) == 0


def test_batch_over_500_kb_is_400(client: TestClient, write_key: str, ctx: AppContext) -> None:
    item = {"type": "track", "userId": "u1", "event": "X", "properties": {"blob": "x" * 20_000}}
    response = client.post("/v1/batch", json={"batch": [item] * 26}, headers=basic(write_key))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "request_too_large"
    assert count(ctx) == 0


def test_batch_over_2500_messages_is_400(client: TestClient, write_key: str, ctx: AppContext) -> None:
    items = [{"type": "track", "userId": "u", "event": "E"} for _ in range(2501)]
    response = client.post("/v1/batch", json={"batch": items}, headers=basic(write_key))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_messages"
    assert count(ctx) == 0


def test_batch_of_exactly_2500_messages_is_accepted(
    client: TestClient, write_key: str, ctx: AppContext
) -> None:
    items = [{"type": "track", "userId": f"u{i}", "event": "E"} for i in range(2500)]
    assert client.post("/v1/batch", json={"batch": items}, headers=basic(write_key)).status_code == 200
    assert count(ctx) == 2500


def test_gzip_body_is_accepted(client: TestClient, write_key: str, ctx: AppContext) -> None:
    body = gzip.compress(orjson.dumps({"batch": [{"type": "track", "userId": "u1", "event": "Zipped"}]}))
    headers = {**basic(write_key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert client.post("/v1/batch", content=body, headers=headers).status_code == 200
    assert [r["event"] for r in stored(ctx)] == ["Zipped"]


def test_corrupt_gzip_is_400(client: TestClient, write_key: str, ctx: AppContext) -> None:
    headers = {**basic(write_key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    response = client.post("/v1/batch", content=b"\x1f\x8b not gzip", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_gzip"
    assert count(ctx) == 0


def test_gzip_that_inflates_past_the_limit_is_400(
    client: TestClient, write_key: str, ctx: AppContext
) -> None:
    payload = orjson.dumps(
        {"batch": [{"type": "track", "userId": "u1", "event": "X", "properties": {"p": "0" * 600_000}}]}
    )
    headers = {**basic(write_key), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    response = client.post("/v1/batch", content=gzip.compress(payload), headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "request_too_large"
    assert count(ctx) == 0


def test_repeated_message_id_is_accepted_and_stored_once(
    client: TestClient, write_key: str, ctx: AppContext
) -> None:
    body = {"userId": "u1", "event": "Paid", "messageId": "m-1"}
    for _ in range(3):
        assert client.post("/v1/track", json=body, headers=basic(write_key)).status_code == 200
    batch = {
        "batch": [
            {"type": "track", **body},
            {"type": "track", **body, "messageId": "m-2"},
            {"type": "track", **body},
        ]
    }
    assert client.post("/v1/batch", json=batch, headers=basic(write_key)).status_code == 200
    assert sorted(r["message_id"] for r in stored(ctx)) == ["m-1", "m-2"]


def test_concurrent_copies_of_one_message_are_stored_once(
    client: TestClient, write_key: str, ctx: AppContext
) -> None:
    statuses: list[int] = []
    barrier = threading.Barrier(8)

    def send(index: int) -> None:
        body = {
            "batch": [
                {"type": "track", "userId": "u1", "event": "Paid", "messageId": f"dup-{n}"} for n in range(50)
            ]
        }
        barrier.wait()
        statuses.append(client.post("/v1/batch", json=body, headers=basic(write_key)).status_code)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert sorted(r["message_id"] for r in stored(ctx)) == sorted(f"dup-{n}" for n in range(50))


def test_rate_limited_key_gets_429_with_retry_after(database_url: str, make_key: Callable[..., str]) -> None:
    settings = Settings(database_url=database_url, secret_key="s", ingest_rate_limit=1)
    context = build_context(settings)
    key = make_key("ingest")
    try:
        with TestClient(create_app(context, run_worker=False)) as limited:
            answers = [
                limited.post("/v1/track", json={"userId": "u", "event": "E"}, headers=basic(key))
                for _ in range(4)
            ]
    finally:
        context.close()
    refused = [a for a in answers if a.status_code == 429]
    assert refused, [a.status_code for a in answers]
    assert int(refused[0].headers["Retry-After"]) >= 1
    assert refused[0].json()["error"]["code"] == "rate_limited"
    assert sum(a.status_code == 200 for a in answers) == 2  # the burst


def test_timestamps_follow_segment_rules(client: TestClient, write_key: str, ctx: AppContext) -> None:
    body = {
        "batch": [
            {"type": "track", "userId": "u", "event": "explicit", "timestamp": "2026-03-01T10:00:00Z"},
            {"type": "track", "userId": "u", "event": "skewed", "originalTimestamp": "2026-03-02T09:05:00Z"},
            {"type": "track", "userId": "u", "event": "none"},
        ],
        "sentAt": "2026-03-02T09:10:00Z",  # the sender's clock runs 10 minutes fast
    }
    assert client.post("/v1/batch", json=body, headers=basic(write_key)).status_code == 200
    stamps = {r["event"]: r["timestamp"].isoformat() for r in stored(ctx)}
    assert stamps == {
        "explicit": "2026-03-01T10:00:00+00:00",
        "skewed": "2026-03-02T08:55:00+00:00",  # received at 09:00, sent 5 minutes after it happened
        "none": "2026-03-02T09:00:00+00:00",
    }
