"""What staff do with a connector, on both databases: "test connection" trusts the CA bundle the worker
trusts (the ``connectors_ca_file`` setting; without it the system's CAs, so a self-signed peer fails);
a suppression on its own queues a sync for the connectors that map the marketing status; mapping
presets are listed and chosen by API and CLI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.connectors import service as connectors
from leadflow.connectors.activecampaign import EVENT_REGISTRATION
from leadflow.connectors.models import connector_outbox
from leadflow.connectors.worker import ConnectorWorker
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import connect, drain, identify
from tests.peers.hubspot import HubSpotPeer
from tests.peers.mailchimp import API_KEY, LIST_ID, MailchimpPeer
from tests.peers.saas import tls_files
from tests.peers.salesforce import SESSION_ID, SalesforcePeer
from tests.support.contacts import by_user
from tests.support.http import bearer

BASE = "/api/v1/connectors"


@pytest.fixture(scope="module")
def salesforce() -> Iterator[SalesforcePeer]:
    with SalesforcePeer() as running:  # TLS, its certificate signed by the test peers' CA
        yield running


def _salesforce(client: TestClient, key: str, peer: SalesforcePeer) -> str:
    body = {
        "vendor": "salesforce",
        "name": "Salesforce",
        "credentials": {"session_id": SESSION_ID},
        "host": peer.url,
    }
    answer = client.post(BASE, json=body, headers=bearer(key))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


@pytest.mark.settings(network_allow="127.0.0.1", connectors_ca_file=tls_files().ca_file)
def test_test_connection_trusts_the_configured_ca(
    client: TestClient, admin_key: str, salesforce: SalesforcePeer
) -> None:
    connector_id = _salesforce(client, admin_key, salesforce)
    answer = client.post(f"{BASE}/{connector_id}/test", headers=bearer(admin_key))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"ok": True, "vendor": "salesforce"}


@pytest.mark.settings(network_allow="127.0.0.1")
def test_test_connection_without_the_ca_fails_the_handshake(
    client: TestClient, admin_key: str, salesforce: SalesforcePeer
) -> None:
    connector_id = _salesforce(client, admin_key, salesforce)
    answer = client.post(f"{BASE}/{connector_id}/test", headers=bearer(admin_key))
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "vendor_unreachable", answer.text


def _outbox(ctx: AppContext) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(connector_outbox)))


@pytest.mark.settings(network_allow="127.0.0.1")
def test_a_suppression_alone_queues_a_status_sync_in_its_transaction(
    ctx: AppContext,
    client: TestClient,
    admin_key: str,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    with MailchimpPeer(clock=clock.monotonic, now=clock.now) as mailchimp:
        values = {"vendor": "mailchimp", "name": "Mailchimp", "host": mailchimp.url}
        values["credentials"] = {"api_key": API_KEY, "list_id": LIST_ID}
        mailchimp_id = str(connectors.create(ctx, values, actor="test")["id"])  # maps subscription_status
        connect(ctx, peer)  # HubSpot's default mapping does not
        identify(ctx, processor, "s1", email="sal@example.com", firstName="Sal")
        drain(worker)
        assert mailchimp.member("sal@example.com").status == "subscribed"  # type: ignore[union-attr]
        assert _outbox(ctx) == []
        answer = client.post(
            "/api/v1/suppressions",
            json={"email": "sal@example.com", "reason": "hard_bounce"},
            headers=bearer(admin_key),
        )
        assert answer.status_code in (200, 201), answer.text
        [row] = _outbox(ctx)  # written with the suppression, for Mailchimp only
        assert (row.connector_id, row.contact_id) == (mailchimp_id, by_user(ctx, "s1")["id"])
        drain(worker)
        assert mailchimp.member("sal@example.com").status == "unsubscribed"  # type: ignore[union-attr]
        assert by_user(ctx, "s1")["subscription_status"] == "subscribed"  # the contact itself unchanged
        assert _outbox(ctx) == []


@pytest.mark.settings(network_allow="127.0.0.1")
def test_presets_are_listed_and_chosen_by_api_and_cli(
    ctx: AppContext,
    client: TestClient,
    admin_key: str,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listed = client.get(f"{BASE}/presets", params={"vendor": "activecampaign"}, headers=bearer(admin_key))
    assert listed.status_code == 200, listed.text
    names = {row["name"]: row["mapping"] for row in listed.json()}
    assert set(names) == {"default", "event-registration"}
    assert names["event-registration"] == EVENT_REGISTRATION
    body = {
        "vendor": "activecampaign",
        "name": "Badges",
        "credentials": {"api_key": "k"},
        "host": "http://127.0.0.1:9",
        "preset": "event-registration",
    }
    made = client.post(BASE, json=body, headers=bearer(admin_key))
    assert made.status_code == 201, made.text
    assert made.json()["mapping"] == EVENT_REGISTRATION
    for wrong, code in (({"preset": "nope"}, "unknown_preset"), ({"mapping": []}, "invalid_mapping")):
        refused = client.post(BASE, json={**body, **wrong}, headers=bearer(admin_key))
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["code"] == code
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    monkeypatch.setenv("LEADFLOW_NETWORK_ALLOW", "127.0.0.1")
    cli = CliRunner()
    shown = cli.invoke(app, ["connectors", "presets", "activecampaign"])
    assert shown.exit_code == 0, shown.output
    assert "event-registration" in shown.output
    added = cli.invoke(
        app,
        [
            "connectors",
            "add",
            "activecampaign",
            "--name",
            "CLI badges",
            "--token",
            "k",
            "--host",
            "http://127.0.0.1:9",
            "--preset",
            "event_registration",
        ],
    )
    assert added.exit_code == 0, added.output
    [row] = [r for r in connectors.listing(ctx, after=None, limit=10) if r["name"] == "CLI badges"]
    assert row["mapping"] == EVENT_REGISTRATION
