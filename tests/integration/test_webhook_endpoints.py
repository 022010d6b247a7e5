"""Outgoing webhooks as a product: endpoints registered by API, each signed with its own secret (both
during a rotation), the fan-out of pipeline events, 410, redirects, rate limits, the delivery log,
statistics and replays — against real HTTP receivers, verified by the ``standardwebhooks`` library.

The VirtualClock is set to the wall clock where a receiver runs the library's ``verify`` (its timestamp
check compares with the real time).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks.webhooks import Webhook
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.contacts.service import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.facts import ContactsMerged
from leadflow.webhooks import catalogue, endpoints
from leadflow.webhooks.deliverer import BACKOFF, WebhookDeliverer
from leadflow.webhooks.service import enqueue_many, export
from tests.peers.http_receiver import HttpReceiver, Received, Reply

pytestmark = pytest.mark.settings(network_allow="127.0.0.1,localhost")
BASE = "/api/v1/webhooks"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def admin(admin_key: str) -> dict[str, str]:
    return auth(admin_key)


@pytest.fixture
def wall(clock: VirtualClock) -> VirtualClock:
    clock.set(datetime.now(UTC).replace(microsecond=0))
    return clock


def register(client: TestClient, admin: dict[str, str], url: str, **fields: Any) -> dict[str, Any]:
    body = {"url": url, "event_types": ["*"]} | fields
    answer = client.post(f"{BASE}/endpoints", json=body, headers=admin)
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def test_send(client: TestClient, admin: dict[str, str], endpoint_id: str) -> str:
    answer = client.post(f"{BASE}/endpoints/{endpoint_id}/test", headers=admin)
    assert answer.status_code == 202, answer.text
    delivery_id: str = answer.json()["delivery_id"]
    return delivery_id


test_send.__test__ = False  # type: ignore[attr-defined]


def verifier(secret: str) -> Callable[[Received], None]:
    return lambda request: Webhook(secret).verify(request.body, request.headers)


def delivery(client: TestClient, admin: dict[str, str], delivery_id: str) -> dict[str, Any]:
    answer = client.get(f"{BASE}/deliveries/{delivery_id}", headers=admin)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_endpoints_crud_catalogue_and_bad_input(client: TestClient, admin: dict[str, str]) -> None:
    types = client.get(f"{BASE}/event-types", headers=admin).json()["data"]
    names = {entry["type"] for entry in types}
    assert {
        "contact.created",
        "lead.captured",
        "email.bounced",
        "deal.stage_changed",
        "form.submitted",
    } <= names
    assert all(entry["version"] == 1 and entry["schema"]["type"] == "object" for entry in types)

    created = register(
        client, admin, "https://hooks.example.com/in", event_types=["segment.entered"], rate_limit=5
    )
    assert created["secret"].startswith("whsec_")
    assert created["active"] is True
    endpoint_id = created["id"]
    shown = client.get(f"{BASE}/endpoints/{endpoint_id}", headers=admin).json()
    assert "secret" not in shown
    assert shown["event_types"] == ["segment.entered"]
    listed = client.get(f"{BASE}/endpoints", headers=admin).json()["data"]
    assert [e["id"] for e in listed] == [endpoint_id]
    patched = client.patch(
        f"{BASE}/endpoints/{endpoint_id}", json={"description": "CRM", "rate_limit": None}, headers=admin
    ).json()
    assert (patched["description"], patched["rate_limit"]) == ("CRM", None)

    bad = [
        ({"url": "http://127.0.0.2/x", "event_types": ["*"]}, 422, "url_refused"),
        ({"url": "http://169.254.169.254/latest", "event_types": ["*"]}, 422, "url_refused"),
        ({"url": "ftp://hooks.example.com", "event_types": ["*"]}, 422, "invalid_url"),
        ({"url": "https://hooks.example.com", "event_types": ["nope.never"]}, 422, "unknown_event_type"),
        ({"url": "https://hooks.example.com", "event_types": []}, 422, None),
        ({"url": "https://hooks.example.com", "event_types": ["*"], "rate_limit": 0}, 422, None),
        ({"url": "https://hooks.example.com", "event_types": ["*"], "secret": "mine"}, 422, None),
    ]
    for body, status, code in bad:
        answer = client.post(f"{BASE}/endpoints", json=body, headers=admin)
        assert answer.status_code == status, (body, answer.text)
        if code is not None:
            assert answer.json()["error"]["code"] == code
    assert client.get(f"{BASE}/endpoints/nope", headers=admin).status_code == 404
    assert client.get(f"{BASE}/deliveries/nope", headers=admin).status_code == 404
    assert client.get(f"{BASE}/stats/nope", headers=admin).status_code == 404
    filtered = client.get(f"{BASE}/endpoints/{endpoint_id}/deliveries?status=weird", headers=admin)
    assert (filtered.status_code, filtered.json()["error"]["code"]) == (422, "invalid_status")
    assert client.post(f"{BASE}/endpoints/{endpoint_id}/replay", json={}, headers=admin).status_code == 422
    naive = client.post(
        f"{BASE}/endpoints/{endpoint_id}/replay", json={"since": "2026-01-01T00:00"}, headers=admin
    )
    assert naive.status_code == 422
    assert client.post(f"{BASE}/endpoints", json={"url": "https://x.example"}).status_code == 401

    bare = client.post(f"{BASE}/endpoints/{endpoint_id}/rotate-secret", headers=admin)  # no body: the default
    assert bare.status_code == 200, bare.text
    assert bare.json()["rotation_ends_at"] is not None
    assert client.delete(f"{BASE}/endpoints/{endpoint_id}", headers=admin).status_code == 204
    assert client.get(f"{BASE}/endpoints/{endpoint_id}", headers=admin).status_code == 404
    audited = client.get("/api/v1/audit?entity_type=webhook_endpoint", headers=admin)
    actions = [entry["action"] for entry in audited.json()["data"]]
    assert actions == [f"webhook_endpoint.{a}" for a in ("deleted", "secret_rotated", "updated", "created")]
    assert created["secret"] not in audited.text
    assert bare.json()["secret"] not in audited.text


def test_a_receiver_down_for_a_while_gets_every_delivery_once(
    ctx: AppContext, client: TestClient, admin: dict[str, str], clock: VirtualClock
) -> None:
    wall = clock  # reaches the wall clock when the receiver is back, for the library's verify()
    clock.set(datetime.now(UTC).replace(microsecond=0) - BACKOFF[0] - BACKOFF[1])
    with socket.socket() as sock:  # a port nothing listens on yet: the receiver is down
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    created = register(client, admin, f"http://127.0.0.1:{port}/hooks")
    sent = [test_send(client, admin, created["id"]) for _ in range(5)]
    with WebhookDeliverer(ctx) as deliverer:
        assert deliverer.deliver_due() == 5
        assert {delivery(client, admin, d)["status"] for d in sent} == {"queued"}
        wall.advance(BACKOFF[0])
        assert deliverer.deliver_due() == 5  # still down
        with HttpReceiver(verifier(created["secret"]), port=port) as receiver:
            wall.advance(BACKOFF[1])
            assert deliverer.deliver_due() == 5
            wall.advance(timedelta(days=2))
            assert deliverer.deliver_due() == 0
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(sent)
    assert all(r.check_error is None for r in receiver.requests)
    logged = delivery(client, admin, sent[0])
    assert (logged["status"], logged["attempts"], logged["response"]["status"]) == ("delivered", 3, 200)
    assert logged["request"]["headers"]["webhook-id"] == sent[0]
    assert logged["request"]["body"]["type"] == catalogue.TEST
    assert logged["response"]["duration_ms"] is not None


def test_410_disables_the_endpoint_and_stops_its_queued_deliveries(
    ctx: AppContext, client: TestClient, admin: dict[str, str]
) -> None:
    with HttpReceiver(default=Reply(410, b"gone")) as receiver:
        created = register(client, admin, receiver.url)
        first, *rest = [test_send(client, admin, created["id"]) for _ in range(3)]
        with WebhookDeliverer(ctx) as deliverer:
            assert deliverer.deliver_due(limit=1) == 1
            assert deliverer.deliver_due() == 0
    assert len(receiver.requests) == 1
    endpoint = client.get(f"{BASE}/endpoints/{created['id']}", headers=admin).json()
    assert (endpoint["active"], endpoint["disabled_reason"]) == (False, "endpoint gone (410)")
    gone = delivery(client, admin, first)
    assert (gone["status"], gone["response"]["status"], gone["response"]["body"]) == ("failed", 410, "gone")
    assert {(delivery(client, admin, d)["status"], delivery(client, admin, d)["error"]) for d in rest} == {
        ("cancelled", "endpoint gone (410)")
    }
    refused = client.post(f"{BASE}/endpoints/{created['id']}/test", headers=admin)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "endpoint_inactive")
    audited = client.get("/api/v1/audit?entity_type=webhook_endpoint", headers=admin).json()["data"]
    assert (audited[0]["action"], audited[0]["data"]) == (
        "webhook_endpoint.disabled",
        {"reason": "endpoint gone (410)"},
    )


@pytest.mark.settings(network_allow="localhost")
def test_a_redirect_to_loopback_is_not_followed(
    ctx: AppContext, client: TestClient, admin: dict[str, str]
) -> None:
    with HttpReceiver() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        receiver.reply(Reply(302, headers={"Location": f"http://127.0.0.1:{port}/inside"}))
        refused = client.post(
            f"{BASE}/endpoints",
            json={"url": f"http://127.0.0.1:{port}/", "event_types": ["*"]},
            headers=admin,
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (422, "url_refused")
        created = register(client, admin, f"http://localhost:{port}/hook")
        sent = test_send(client, admin, created["id"])
        with WebhookDeliverer(ctx) as deliverer:
            deliverer.deliver_due()
    assert [r.path for r in receiver.requests] == ["/hook"]  # the redirect was not followed
    logged = delivery(client, admin, sent)
    assert logged["status"] == "queued"
    assert logged["response"]["status"] == 302
    assert "not followed" in logged["error"]
    assert logged["response"]["headers"]["location"].startswith("http://127.0.0.1")


def test_during_a_rotation_both_secrets_verify(
    ctx: AppContext, client: TestClient, admin: dict[str, str], wall: VirtualClock
) -> None:
    with HttpReceiver() as receiver:
        created = register(client, admin, receiver.url)
        old = created["secret"]
        rotated = client.post(
            f"{BASE}/endpoints/{created['id']}/rotate-secret", json={"grace_seconds": 3600}, headers=admin
        )
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new != old
        assert rotated.json()["rotation_ends_at"] is not None
        test_send(client, admin, created["id"])
        with WebhookDeliverer(ctx) as deliverer:
            deliverer.deliver_due()
            wall.advance(timedelta(hours=2))
            test_send(client, admin, created["id"])
            deliverer.deliver_due()
    during, after = receiver.requests
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(during.body, during.headers)
    Webhook(new).verify(during.body, during.headers)
    assert len(after.headers["webhook-signature"].split(" ")) == 1  # the grace period is over
    at = datetime.fromtimestamp(int(after.headers["webhook-timestamp"]), UTC)
    expected = Webhook(new).sign(after.headers["webhook-id"], at, after.body.decode())
    assert after.headers["webhook-signature"] == expected
    assert client.post(f"{BASE}/endpoints/nope/rotate-secret", headers=admin).status_code == 404
    negative = client.post(
        f"{BASE}/endpoints/{created['id']}/rotate-secret", json={"grace_seconds": -1}, headers=admin
    )
    assert negative.status_code == 422


def test_a_tracked_event_fans_out_to_each_subscribed_endpoint_once(
    ctx: AppContext,
    client: TestClient,
    admin: dict[str, str],
    write_key: str,
    processor: EventProcessor,
    wall: VirtualClock,
) -> None:
    with HttpReceiver() as forms, HttpReceiver() as everything, HttpReceiver() as deals:
        form_hook = register(client, admin, forms.url, event_types=["form.submitted"])
        all_hook = register(client, admin, everything.url, event_types=["*"])
        register(client, admin, deals.url, event_types=["deal.created"])
        forms.check = verifier(form_hook["secret"])
        everything.check = verifier(all_hook["secret"])
        track = {
            "userId": "u-ada",
            "event": "form.submitted",
            "messageId": "m-1",
            "properties": {"form_id": "f1", "source": "landing"},
            "context": {"traits": {"email": "ada@example.com"}},
        }
        for _ in range(2):  # the same message twice: one event
            assert client.post("/v1/track", json=track, headers=auth(write_key)).status_code == 200
        processor.drain()
        processor.drain()
        with WebhookDeliverer(ctx) as deliverer:
            deliverer.deliver_due()
            assert deliverer.deliver_due() == 0
    [submitted] = forms.requests
    assert submitted.check_error is None
    body = submitted.json()
    assert body["type"] == "form.submitted"
    assert (body["data"]["form_id"], body["data"]["source"]) == ("f1", "landing")
    assert body["data"]["contact"]["user_id"] == "u-ada"
    assert sorted(r.json()["type"] for r in everything.requests) == ["contact.created", "form.submitted"]
    assert all(r.check_error is None for r in everything.requests)
    assert deals.requests == []
    log = client.get(f"{BASE}/endpoints/{form_hook['id']}/deliveries", headers=admin).json()["data"]
    assert [(d["event"], d["status"]) for d in log] == [("form.submitted", "delivered")]


def test_internal_events_and_profile_changes_fan_out(
    ctx: AppContext, client: TestClient, admin: dict[str, str], processor: EventProcessor
) -> None:
    with HttpReceiver() as receiver:
        register(client, admin, receiver.url, event_types=["stage.changed", "contact.updated"])
        contact = {"user_id": "c1", "email": "c@example.com", "lifecycle_stage": "customer"}
        made = client.post("/api/v1/contacts", json=contact, headers=admin)
        assert made.status_code == 201, made.text
        contact_id = made.json()["id"]
        patched = client.patch(f"/api/v1/contacts/{contact_id}", json={"first_name": "Ada"}, headers=admin)
        assert patched.status_code == 200, patched.text
        processor.drain()  # the stage change is an internal event in the pipeline
        with WebhookDeliverer(ctx) as deliverer:
            deliverer.deliver_due()
    bodies = sorted((r.json() for r in receiver.requests), key=lambda body: str(body["type"]))
    assert [body["type"] for body in bodies] == ["contact.updated", "stage.changed"]
    updated, stage = bodies
    assert updated["data"]["changed"] == ["first_name"]
    assert updated["data"]["contact"]["first_name"] == "Ada"
    assert (stage["data"]["from"], stage["data"]["to"]) == ("visitor", "customer")
    assert stage["data"]["contact"] == {
        "id": contact_id,
        "email": "c@example.com",
        "user_id": "c1",
        "first_name": "Ada",
        "last_name": None,
        "lifecycle_stage": "customer",
    }


def test_rate_limit_stats_and_replays(
    ctx: AppContext, client: TestClient, admin: dict[str, str], clock: VirtualClock
) -> None:
    with HttpReceiver() as receiver:
        created = register(client, admin, receiver.url, rate_limit=1)
        endpoint_id = created["id"]
        sent = [test_send(client, admin, endpoint_id) for _ in range(3)]
        receiver.reply(400)
        with WebhookDeliverer(ctx) as deliverer:
            assert deliverer.deliver_due() == 3
            assert len(receiver.requests) == 1  # one token: the others wait, their attempt uncounted
            waiting = [delivery(client, admin, d) for d in sent[1:]]
            assert {(d["status"], d["attempts"]) for d in waiting} == {("queued", 0)}
            clock.advance(timedelta(seconds=1))
            deliverer.deliver_due()
            clock.advance(timedelta(seconds=1))
            deliverer.deliver_due()
            assert len(receiver.requests) == 3
            failed = delivery(client, admin, sent[0])
            assert (failed["status"], failed["response"]["status"]) == ("failed", 400)

            stats = client.get(f"{BASE}/stats/{endpoint_id}?window_hours=1", headers=admin).json()
            assert (stats["counts"]["delivered"], stats["counts"]["failed"], stats["total"]) == (2, 1, 3)
            assert stats["success_rate"] == pytest.approx(2 / 3)
            assert stats["latency_ms"]["measured"] == 3
            assert stats["latency_ms"]["p99"] is not None

            again = client.post(f"{BASE}/deliveries/{sent[0]}/replay", headers=admin)
            assert again.status_code == 202, again.text
            replay_id = again.json()["delivery_id"]
            since = (clock.now() - timedelta(hours=1)).isoformat()
            bulk = client.post(f"{BASE}/endpoints/{endpoint_id}/replay", json={"since": since}, headers=admin)
            assert bulk.status_code == 202
            assert len(bulk.json()["delivery_ids"]) == 1
            clock.advance(timedelta(seconds=5))
            deliverer.deliver_due()
            clock.advance(timedelta(seconds=5))
            deliverer.deliver_due()
    replayed = delivery(client, admin, replay_id)
    assert (replayed["replay_of"], replayed["status"]) == (sent[0], "delivered")
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 5
    assert len(set(ids)) == 5
    assert delivery(client, admin, sent[0])["status"] == "failed"  # the original stays as it was
    queued = client.post(f"{BASE}/deliveries/{sent[1]}/replay", headers=admin)
    assert queued.status_code == 202
    assert (
        client.post(f"{BASE}/deliveries/{queued.json()['delivery_id']}/replay", headers=admin).status_code
        == 409
    )


def test_the_endpoints_commands(database_url: str, ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    cli = CliRunner()
    added = cli.invoke(
        app, ["webhooks", "endpoints", "add", "https://hooks.example.com/in", "--events", "deal.created"]
    )
    assert added.exit_code == 0, added.output
    secret = added.stdout.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    [endpoint] = endpoints.listing(ctx, after=None, limit=10)
    assert endpoint["event_types"] == ["deal.created"]
    listed = cli.invoke(app, ["webhooks", "endpoints", "list"], terminal_width=200)
    assert endpoint["id"] in listed.stdout
    assert secret not in listed.stdout
    rotated = cli.invoke(app, ["webhooks", "endpoints", "rotate", endpoint["id"], "--grace", "60"])
    assert rotated.exit_code == 0, rotated.output
    assert rotated.stdout.strip().splitlines()[-1] not in (secret, "")
    refused = cli.invoke(app, ["webhooks", "endpoints", "add", "http://10.0.0.1/", "--events", "*"])
    assert refused.exit_code != 0
    assert "url refused" in refused.output
    assert cli.invoke(app, ["webhooks", "endpoints", "remove", endpoint["id"]]).exit_code == 0
    assert endpoints.listing(ctx, after=None, limit=10) == []
    assert cli.invoke(app, ["webhooks", "endpoints", "remove", "nope"]).exit_code != 0


def test_a_merge_moves_deliveries_to_the_survivor(ctx: AppContext) -> None:
    item = {"key": "k", "url": "https://hooks.example.com", "event": "contact.created", "payload": {}}
    with ctx.db.write() as conn:
        enqueue_many(conn, ctx, [item | {"at": ctx.clock.now(), "contact_id": "c-merged"}])
        ctx.bus.publish(conn, ContactsMerged((("c-merged", "c-survivor"),), ctx.clock.now()))
    with ctx.db.read() as conn:
        assert [row["contact_id"] for row in export(conn, ["c-survivor"])] == ["c-survivor"]
