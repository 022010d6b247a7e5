"""What staff do with a connector, on both databases: "test connection" trusts the CA bundle the worker
trusts (the ``connectors_ca_file`` setting; without it the system's CAs, so a self-signed peer fails);
a suppression on its own queues a sync for the connectors that map the marketing status."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.connectors import service as connectors
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
