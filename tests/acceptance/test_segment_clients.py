"""Real Segment client libraries against a live leadflow, by setting only ``host``.

The tests that only add people share one server per database (:func:`shared`), each with user ids and
emails of its own, and each checks exactly the contacts it created (:func:`_created`); those that stop or
kill the server have one of their own (``live``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from segment.analytics import Client

from tests.acceptance.conftest import migrated_database
from tests.support import databases
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


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One migrated, freshly started server per database, for the tests of this module that only add
    people (none stops it)."""
    workdir = tmp_path_factory.mktemp(f"shared-{request.param}")
    url, to_drop = migrated_database(request.param, workdir)
    server = LiveServer(database_url=url, workdir=workdir)
    server.start()
    yield server
    server.stop()
    if to_drop:
        databases.drop_postgres_database(str(to_drop))


def _created(live: LiveServer, before: list[dict[str, object]]) -> list[dict[str, object]]:
    """The contacts there now that were not in ``before``: what the test made."""
    known = {c["id"] for c in before}
    return [c for c in _contacts(live) if c["id"] not in known]


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
def test_python_client_in_sync_mode_delivers_1000_events(shared: LiveServer, gzip: bool) -> None:
    live, tag = shared, "gz" if gzip else "plain"
    before = _contacts(live)
    client = Client(live.write_key, host=live.url, sync_mode=True, gzip=gzip)
    for i in range(10):
        traits = {"email": f"student{i}.{tag}@school.example", "firstName": f"S{i}", "course": "ai-101"}
        client.identify(f"student-{tag}-{i}", traits)
    for n in range(990):
        client.track(f"student-{tag}-{n % 10}", "Lesson Viewed", {"lesson": n})
    live.wait_processed()
    contacts = {c["user_id"]: c for c in _created(live, before)}
    assert set(contacts) == {f"student-{tag}-{i}" for i in range(10)}
    assert contacts[f"student-{tag}-3"]["email"] == f"student3.{tag}@school.example"
    assert contacts[f"student-{tag}-3"]["traits"] == {"course": "ai-101"}
    assert sum(_event_count(live, c["id"]) for c in contacts.values()) == 1000


def test_python_client_batches_with_anonymous_merge(shared: LiveServer) -> None:
    live, before = shared, _contacts(shared)
    client = Client(live.write_key, host=live.url, gzip=True, upload_size=100)
    for n in range(300):
        client.page(anonymous_id="visitor-1", name="Course Page", properties={"n": n})
    client.identify("learner-1", {"email": "learner@school.example"}, anonymous_id="visitor-1")
    client.flush()
    client.join()
    live.wait_processed()
    [contact] = _created(live, before)  # the visitor became the learner: one contact
    assert contact["user_id"] == "learner-1"
    assert _event_count(live, contact["id"]) == 301


def test_first_start_banner_curl_line_sends_a_track_call(shared: LiveServer) -> None:
    live, before = shared, _contacts(shared)
    assert live.admin_key
    assert live.write_key
    lines = live.banner.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl") and "/v1/track" in line)
    command = "\n".join(lines[start : start + 2])
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True)
    assert json.loads(result.stdout) == {"success": True}
    live.wait_processed()
    assert [c["user_id"] for c in _created(live, before)] == ["user-1"]


def test_restart_does_not_create_new_keys(live: LiveServer) -> None:
    live.stop()
    live.start()
    assert live.log().count("first start") == 1
    with live.api() as api:
        assert len(api.get("/api/v1/keys").json()["data"]) == 2


def test_concurrent_duplicate_message_ids_over_http(shared: LiveServer) -> None:
    live, before = shared, _contacts(shared)
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
    [contact] = _created(live, before)
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
def test_node_client_delivers_events(shared: LiveServer) -> None:
    live, before = shared, _contacts(shared)
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
    [contact] = _created(live, before)
    assert contact["email"] == "node@school.example"
    assert _event_count(live, contact["id"]) == 51
