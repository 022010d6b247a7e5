"""DNS rebinding against the vendors: a vendor host whose name (public-looking, so nothing refuses it by
its text) resolves to 127.0.0.1. The worker's up-front check judges only the text of a host (no
lookup); the client libraries (``hubspot-api-client``, ``simple-salesforce``, and httpx for the others:
ActiveCampaign here) connect only through the kernel's guard, which resolves the name once, judges the
address and connects to that address: the write is refused (dead-lettered with the reason) and never
reaches the local peer. No allow-list here (the production default); the DNS is faked at
``socket.getaddrinfo``."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors import service as connectors
from leadflow.connectors.activecampaign import ActiveCampaignVendor
from leadflow.connectors.hubspot import HubSpotVendor
from leadflow.connectors.models import connector_outbox
from leadflow.connectors.salesforce import SalesforceVendor
from leadflow.connectors.vendor import Network
from leadflow.connectors.worker import ConnectorWorker, network_check
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.context import AppContext
from leadflow.kernel.netguard import Blocked, GuardedTransport
from leadflow.kernel.netguard_urllib3 import GuardedAdapter, GuardedPoolManager
from leadflow.kernel.netpolicy import Policy
from leadflow.kernel.settings import Settings
from tests.integration.connectors.conftest import drain, identify
from tests.peers.activecampaign import TOKEN as AC_TOKEN
from tests.peers.activecampaign import ActiveCampaignPeer
from tests.peers.hubspot import TOKEN, HubSpotPeer
from tests.peers.saas import SaasPeer
from tests.peers.salesforce import SESSION_ID, SalesforcePeer

NAME = "crm.rebind.test"
REFUSED = f"blocked: {NAME} (127.0.0.1) is loopback; LEADFLOW_NETWORK_ALLOW can admit it"


class RebindingDNS:
    """``socket.getaddrinfo`` answering 127.0.0.1 for :data:`NAME` (counted in ``asked``); other names
    as the real one. (A name answering a public address first is no longer a case: nothing looks a name
    up before the connection, and the guard connects to the very address it judged.)"""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.asked = 0

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != NAME:
            return self.real(host, port, *args, **kwargs)
        self.asked += 1
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port or 0)))]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> RebindingDNS:
    fake = RebindingDNS(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def _rebound(peer: SaasPeer) -> str:
    return peer.url.replace("127.0.0.1", NAME)


def _outbox(ctx: AppContext) -> list[Any]:
    with ctx.db.read() as conn:
        return [row._mapping for row in conn.execute(sa.select(connector_outbox))]


def _refused(ctx: AppContext, processor: EventProcessor, worker: ConnectorWorker, dns: RebindingDNS) -> None:
    identify(ctx, processor, "u-1", email="ada@example.com", firstName="Ada", lastName="Lovelace")
    drain(worker)
    rows = _outbox(ctx)
    assert [(row["state"], row["last_error"]) for row in rows] == [("dead", REFUSED)]
    assert dns.asked >= 1  # refused by the connect-time guard's lookup, not by the host's text


VENDORS: dict[str, tuple[type[SaasPeer], dict[str, Any]]] = {
    # the urllib3 clients (hubspot-api-client, simple-salesforce) and an httpx one
    "hubspot": (HubSpotPeer, {"name": "HubSpot", "credentials": {"access_token": TOKEN}}),
    "salesforce": (SalesforcePeer, {"name": "Salesforce", "credentials": {"session_id": SESSION_ID}}),
    "activecampaign": (ActiveCampaignPeer, {"name": "AC", "credentials": {"api_token": AC_TOKEN}}),
}


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_a_write_to_a_name_rebound_to_loopback_is_refused(
    ctx: AppContext, processor: EventProcessor, dns: RebindingDNS, vendor: str
) -> None:
    peer_class, values = VENDORS[vendor]
    with peer_class() as peer:
        connectors.create(ctx, {**values, "vendor": vendor, "host": _rebound(peer)}, actor="test")
        worker = ConnectorWorker(ctx, ca_file=peer.ca_file, rand=lambda: 0.5)
        try:
            _refused(ctx, processor, worker, dns)
        finally:
            worker.close()
        assert peer.calls == []


def test_every_client_of_the_urllib3_and_httpx_vendors_is_on_the_guard() -> None:
    """The clients offer no documented setting for this: if a new version builds its pool elsewhere,
    this fails (the rebinding tests above only go through the calls a first write makes)."""
    network = Network(lambda url: None, 5.0, policy=Policy.parse("127.0.0.1"))
    hubspot = HubSpotVendor({"access_token": TOKEN}, "http://crm.example", network)
    apis = [*hubspot._batch.values(), hubspot._contacts, hubspot._search, hubspot._associations]
    apis += [hubspot._owners, hubspot._properties, hubspot._groups]
    assert {id(api.api_client.rest_client.pool_manager) for api in apis} == {id(hubspot._pool)}
    assert isinstance(hubspot._pool, GuardedPoolManager)
    hubspot.close()
    salesforce = SalesforceVendor({"session_id": SESSION_ID}, "https://sf.example", network)
    adapters = {salesforce.session.get_adapter(f"{scheme}://sf.example/") for scheme in ("http", "https")}
    assert all(isinstance(adapter, GuardedAdapter) for adapter in adapters)
    assert salesforce.client.session is salesforce.session
    salesforce.close()
    campaign = ActiveCampaignVendor({"api_token": AC_TOKEN}, "https://ac.example", network)
    assert isinstance(campaign.http.client._transport, GuardedTransport)
    campaign.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/",
        "https://localhost/",
        "http://crm.localhost/",
        "http://169.254.169.254/latest",
        "http://[::1]/",
        "http://10.0.0.5/",
    ],
)
def test_the_workers_up_front_check_refuses_a_host_inside_the_network_by_its_text(url: str) -> None:
    check = network_check(Settings(network_allow=""))
    with pytest.raises(Blocked):
        check(url)


def test_the_workers_up_front_check_makes_no_dns_lookup(dns: RebindingDNS) -> None:
    """One lookup per connection, the guard's: the up-front check lets a name through unresolved (the
    connection is then judged by the address it goes to, as the tests above show)."""
    check = network_check(Settings(network_allow=""))
    check(f"https://{NAME}/crm/v3/objects/contacts")
    check("https://api.hubapi.com/")
    assert dns.asked == 0
