"""``/api/v1/connectors`` and ``leadflow connectors``, on both databases: credentials never come back,
bad input is a 4xx with a code, and nothing in a request waits for HubSpot (except "test")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.connectors.worker import ConnectorWorker
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.segments import service as segments
from tests.integration.connectors.conftest import drain, identify
from tests.peers.hubspot import TOKEN, HubSpotPeer
from tests.support.contacts import by_user
from tests.support.http import bearer

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")
BASE = "/api/v1/connectors"


def _create(client: TestClient, key: str, peer: HubSpotPeer, **extra: object) -> dict[str, object]:
    body = {"vendor": "hubspot", "name": "HubSpot", "credentials": {"access_token": TOKEN}, "host": peer.url}
    answer = client.post(BASE, json={**body, **extra}, headers=bearer(key))
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_crud_never_returns_credentials_and_sync_is_queued_not_awaited(
    client: TestClient,
    admin_key: str,
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
) -> None:
    made = _create(client, admin_key, peer, objects=["contact", "deal"])
    assert made["has_credentials"] is True
    assert "credentials" not in made
    connector = f"{BASE}/{made['id']}"
    for answer in (
        client.get(BASE, headers=bearer(admin_key)),
        client.get(connector, headers=bearer(admin_key)),
    ):
        assert answer.status_code == 200
        assert TOKEN not in answer.text
    assert client.post(f"{connector}/test", headers=bearer(admin_key)).json()["ok"] is True

    identify(ctx, processor, "a1", email="amy@example.com", firstName="Amy", phone="+44 20 7946 0958")
    contact_id = by_user(ctx, "a1")["id"]
    drain(worker)  # the identify's own sync
    preview = client.get(f"{connector}/preview", params={"contact_id": contact_id}, headers=bearer(admin_key))
    assert preview.json()["properties"]["phone"] == "+442079460958"
    assert preview.json()["remote_id"] == peer.records()[0]["id"]
    calls = len(peer.calls)
    queued = client.post(f"{connector}/sync", json={"contact_id": contact_id}, headers=bearer(admin_key))
    assert queued.status_code == 202
    assert len(peer.calls) == calls  # the request did not call HubSpot
    drain(worker)
    audit = client.get(f"{BASE}/audit", params={"contact_id": contact_id}, headers=bearer(admin_key)).json()[
        "data"
    ]
    assert {"email", "firstname"} <= {row["field"] for row in audit if row["direction"] == "push"}
    health = client.get(f"{connector}/health", headers=bearer(admin_key)).json()
    assert health["success_rate"] == 1.0
    assert health["backlog"] == 0
    assert health["lag_ms"]["measured"] >= 1
    metrics = client.get("/metrics").text
    assert f'leadflow_connector_backlog{{connector="{made["id"]}",vendor="hubspot"}} 0.0' in metrics

    changed = client.patch(connector, json={"active": False, "name": "HubSpot EU"}, headers=bearer(admin_key))
    assert (changed.json()["active"], changed.json()["name"]) == (False, "HubSpot EU")
    assert client.delete(connector, headers=bearer(admin_key)).status_code == 204
    assert client.get(connector, headers=bearer(admin_key)).json()["error"]["code"] == "connector_not_found"


BAD = [
    ({"vendor": "zoho"}, 422, "unknown_vendor"),
    ({"credentials": {}}, 422, "invalid_credentials"),
    ({"mapping": [{"from": "password", "to": "x"}]}, 422, "invalid_mapping"),
    ({"mapping": [{"from": "email", "to": "email", "transform": "rot13"}]}, 422, "invalid_mapping"),
    ({"triggers": {"segments": "all"}}, 422, "invalid_triggers"),
    ({"objects": ["deal"]}, 422, "invalid_objects"),
    ({"conflict": {"*": "coin"}}, 422, "validation_error"),
    ({"host": "http://169.254.169.254/"}, 422, "blocked_host"),
    ({"limits": {"rate": -1}}, 422, "validation_error"),
]


def test_bad_input_is_a_4xx_with_a_code_and_stores_nothing(
    client: TestClient, admin_key: str, peer: HubSpotPeer
) -> None:
    for change, status, code in BAD:
        body = {
            "vendor": "hubspot",
            "name": "H",
            "credentials": {"access_token": TOKEN},
            "host": peer.url,
            **change,
        }
        answer = client.post(BASE, json=body, headers=bearer(admin_key))
        assert answer.status_code == status, answer.text
        assert answer.json()["error"]["code"] == code, change
    assert client.get(BASE, headers=bearer(admin_key)).json()["data"] == []


def test_scopes_and_a_refused_test(
    client: TestClient, make_key: object, admin_key: str, peer: HubSpotPeer
) -> None:
    read = make_key("read")  # type: ignore[operator]
    body = {"vendor": "hubspot", "name": "H", "credentials": {"access_token": "wrong"}, "host": peer.url}
    assert client.post(BASE, json=body, headers=bearer(read)).status_code == 403
    made = client.post(BASE, json=body, headers=bearer(admin_key)).json()
    refused = client.post(f"{BASE}/{made['id']}/test", headers=bearer(admin_key))
    assert refused.status_code == 502
    assert refused.json()["error"]["code"] == "vendor_refused"
    assert "wrong" not in refused.text
    missing = client.post(
        f"{BASE}/{made['id']}/sync", json={"contact_id": "nobody"}, headers=bearer(admin_key)
    )
    assert missing.json()["error"]["code"] == "contact_not_found"


def test_cli_connects_tests_and_backfills_a_segment(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    monkeypatch.setenv("LEADFLOW_NETWORK_ALLOW", "127.0.0.1")
    for user in ("b1", "b2", "b3"):
        identify(ctx, processor, user, email=f"{user}@example.com", plan="pro" if user != "b3" else "free")
    rules = {"field": "traits.plan", "op": "eq", "value": "pro"}
    segment = segments.create(ctx, segments.SegmentCreate(name="Pro", rules=rules), actor="test")
    segments.refresh(ctx, segment.id)
    cli = CliRunner()
    added = cli.invoke(
        app, ["connectors", "add", "hubspot", "--name", "HubSpot", "--token", TOKEN, "--host", peer.url]
    )
    assert added.exit_code == 0, added.output
    assert TOKEN not in added.output
    assert cli.invoke(app, ["connectors", "test", "HubSpot"]).output.strip() == "ok"
    drain(worker)  # nothing was queued before the connector existed
    assert peer.records() == []
    filled = cli.invoke(app, ["connectors", "backfill", "HubSpot", "--segment", segment.id])
    assert filled.exit_code == 0, filled.output
    assert '"queued": 2' in filled.output
    clock.set(datetime.now(UTC) + timedelta(minutes=1))  # the CLI queued on the wall clock
    drain(worker)
    assert sorted(r["properties"]["email"] for r in peer.records()) == ["b1@example.com", "b2@example.com"]
    assert cli.invoke(app, ["connectors", "test", "Nope"]).exit_code != 0
