"""What staff do with a connector, on both databases: "test connection" trusts the CA bundle the worker
trusts (the ``connectors_ca_file`` setting; without it the system's CAs, so a self-signed peer fails)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.peers.saas import tls_files
from tests.peers.salesforce import SESSION_ID, SalesforcePeer
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
