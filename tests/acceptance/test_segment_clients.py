"""Real Segment client libraries against a live leadflow, by setting only ``host``."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from segment.analytics import Client

from tests.support.http import basic
from tests.support.server import LiveServer

NODE_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "node-segment"


def _contacts(live: LiveServer) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    cursor = None
    with live.api() as api:
        while True:
            page = api.get(
                "/api/v1/contacts", params={"limit": 500, **({"cursor": cursor} if cursor else {})}
            ).json()
            found += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                return found


def _event_count(live: LiveServer, contact_id: object) -> int:
    """Events the client sent (leadflow's own internal events, such as stage changes, are not counted)."""
    total, cursor = 0, None
    with live.api() as api:
        while True:
            params: dict[str, str | int] = {
                "limit": 500,
                "source": "segment",
                **({"cursor": cursor} if cursor else {}),
            }
            page = api.get(f"/api/v1/contacts/{contact_id}/events", params=params).json()
            total += len(page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                return total


@pytest.mark.parametrize("gzip", [True, False], ids=["gzip", "plain"])
def test_python_client_in_sync_mode_delivers_1000_events(live: LiveServer, gzip: bool) -> None:
    client = Client(live.write_key, host=live.url, sync_mode=True, gzip=gzip)
    for i in range(10):
        client.identify(
            f"student-{i}", {"email": f"student{i}@school.example", "firstName": f"S{i}", "course": "ai-101"}
        )
    for n in range(990):
        client.track(f"student-{n % 10}", "Lesson Viewed", {"lesson": n})
    live.wait_processed()
    contacts = {c["user_id"]: c for c in _contacts(live)}
    assert set(contacts) == {f"student-{i}" for i in range(10)}
    assert contacts["student-3"]["email"] == "student3@school.example"
    assert contacts["student-3"]["traits"] == {"course": "ai-101"}
    assert sum(_event_count(live, c["id"]) for c in contacts.values()) == 1000


def test_python_client_batches_with_anonymous_merge(live: LiveServer) -> None:
    client = Client(live.write_key, host=live.url, gzip=True, upload_size=100)
    for n in range(300):
        client.page(anonymous_id="visitor-1", name="Course Page", properties={"n": n})
    client.identify("learner-1", {"email": "learner@school.example"}, anonymous_id="visitor-1")
    client.flush()
    client.join()
    live.wait_processed()
    [contact] = _contacts(live)
    assert contact["user_id"] == "learner-1"
    assert _event_count(live, contact["id"]) == 301


def test_first_start_banner_curl_line_sends_a_track_call(live: LiveServer) -> None:
    assert live.admin_key
    assert live.write_key
    lines = live.banner.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl") and "/v1/track" in line)
    command = "\n".join(lines[start : start + 2])
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(result.stdout) == {"success": True}
    live.wait_processed()
    assert [c["user_id"] for c in _contacts(live)] == ["user-1"]


def test_restart_does_not_create_new_keys(live: LiveServer) -> None:
    live.stop()
    live.start()
    assert live.log().count("first start") == 1
    with live.api() as api:
        assert len(api.get("/api/v1/keys").json()["data"]) == 2


def test_concurrent_duplicate_message_ids_over_http(live: LiveServer) -> None:
    ids = [str(uuid.uuid4()) for _ in range(200)]
    body = {"batch": [{"type": "track", "userId": "dup-user", "event": "Paid", "messageId": m} for m in ids]}
    barrier = threading.Barrier(6)
    statuses: list[int] = []

    def send() -> None:
        with httpx.Client(timeout=30) as http:
            barrier.wait()
            statuses.append(
                http.post(f"{live.url}/v1/batch", json=body, headers=basic(live.write_key)).status_code
            )

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 6
    live.wait_processed()
    [contact] = _contacts(live)
    assert _event_count(live, contact["id"]) == 200


def test_a_killed_server_loses_nothing_and_duplicates_nothing(live: LiveServer) -> None:
    with httpx.Client(timeout=30) as http:
        for chunk in range(20):
            batch = [
                {
                    "type": "identify" if n % 50 == 0 else "track",
                    "userId": f"k-{n % 40}",
                    "event": "Tick",
                    "messageId": f"kill-{chunk}-{n}",
                    "traits": {"chunk": chunk},
                }
                for n in range(250)
            ]
            assert (
                http.post(
                    f"{live.url}/v1/batch", json={"batch": batch}, headers=basic(live.write_key)
                ).status_code
                == 200
            )
    live.kill()  # mid-processing: the worker has 5,000 events to apply
    live.start()
    live.wait_processed()
    contacts = _contacts(live)
    assert len(contacts) == 40
    assert sum(_event_count(live, c["id"]) for c in contacts) == 5000


@pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None, reason="Node.js is not installed"
)
def test_node_client_delivers_events(live: LiveServer) -> None:
    if not (NODE_CACHE / "node_modules" / "@segment" / "analytics-node").exists():
        NODE_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(NODE_CACHE),
                "@segment/analytics-node@2",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    script = """
const { Analytics } = require('@segment/analytics-node');
const analytics = new Analytics({ writeKey: process.argv[1], host: process.argv[2], flushAt: 20 });
for (let i = 0; i < 50; i++) analytics.track({ userId: 'node-user', event: 'Node Event', properties: { i } });
analytics.identify({ userId: 'node-user', traits: { email: 'node@school.example' } });
analytics.closeAndFlush().then(() => console.log('flushed'));
"""
    result = subprocess.run(
        ["node", "-e", script, live.write_key, live.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={"NODE_PATH": str(NODE_CACHE / "node_modules"), "PATH": "/usr/bin:/bin"},
        check=True,
    )
    assert "flushed" in result.stdout
    live.wait_processed()
    [contact] = _contacts(live)
    assert contact["email"] == "node@school.example"
    assert _event_count(live, contact["id"]) == 51
