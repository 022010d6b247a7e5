"""The network guard: which addresses are internal, in every literal form, and that the check happens on
the address actually connected to (each redirect hop too), against a real HTTP peer on 127.0.0.1."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx
import pytest
from pydantic import ValidationError

from leadflow.kernel import netguard
from leadflow.kernel.settings import Settings
from tests.peers.http_receiver import HttpReceiver, Reply

OPEN = Settings()  # no allow-list: the production default
LOOPBACK_ALLOWED = Settings(network_allow="127.0.0.1")

# Every form of an internal target a webhook step could name, with the reason it is refused.
BLOCKED = [
    ("http://127.0.0.1/hook", "127.0.0.1 is loopback"),
    ("http://localhost:8080/hook", "localhost (127.0.0.1) is loopback"),
    ("http://LocalHost./hook", "(127.0.0.1) is loopback"),
    ("http://api.localhost/hook", "api.localhost (127.0.0.1) is loopback"),
    ("http://127.1/hook", "127.1 (127.0.0.1) is loopback"),
    ("http://2130706433/hook", "2130706433 (127.0.0.1) is loopback"),
    ("http://0x7f.1/hook", "0x7f.1 (127.0.0.1) is loopback"),
    ("http://0177.0.0.1/hook", "0177.0.0.1 (127.0.0.1) is loopback"),
    ("http://[::1]/hook", "::1 is loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "is loopback (127.0.0.1 inside IPv6)"),
    ("http://[::127.0.0.1]/hook", "is loopback (127.0.0.1 inside IPv6)"),
    ("http://0.0.0.0/hook", "0.0.0.0 is unspecified"),
    ("http://0/hook", "0 (0.0.0.0) is unspecified"),
    ("http://[::]/hook", ":: is unspecified"),
    (
        "http://169.254.169.254/latest/meta-data/",
        "169.254.169.254 is link-local (the cloud metadata address)",
    ),
    ("http://[fe80::1%25eth0]/hook", "is link-local"),
    ("http://10.1.2.3/hook", "10.1.2.3 is private"),
    ("http://172.16.0.1/hook", "172.16.0.1 is private"),
    ("https://192.168.1.10/hook", "192.168.1.10 is private"),
    ("http://[fd00:ec2::254]/hook", "fd00:ec2::254 is private (unique local)"),
    ("http://100.64.0.1/hook", "100.64.0.1 is shared address space"),
    ("http://224.0.0.251/hook", "224.0.0.251 is multicast"),
    ("http://[ff02::1]/hook", "ff02::1 is multicast"),
    ("http://240.0.0.1/hook", "240.0.0.1 is reserved"),
    ("http://[64:ff9b::a00:1]/hook", "is private (10.0.0.1 inside IPv6)"),
    ("http://[2002:c0a8:101::1]/hook", "is private (192.168.1.1 inside IPv6)"),
    ("http://user:pw@127.0.0.1:9/hook", "127.0.0.1 is loopback"),
]
PUBLIC = [
    "https://hooks.example.com/leads",
    "http://93.184.215.14/hook",
    "http://[2606:4700::6810:84e5]/hook",
    "http://[::ffff:93.184.215.14]/hook",
    "http://[64:ff9b::5db8:d70e]/hook",  # NAT64 of a public address
    "https://10-0-0-1.example.com/",
]


@pytest.mark.parametrize(("url", "reason"), BLOCKED)
def test_every_literal_form_of_an_internal_address_is_refused(url: str, reason: str) -> None:
    refused = netguard.refusal(url, OPEN)
    assert refused is not None
    assert refused.startswith("blocked: ")
    assert reason in refused


@pytest.mark.parametrize("url", PUBLIC)
def test_public_targets_pass(url: str) -> None:
    assert netguard.refusal(url, OPEN) is None


@pytest.mark.parametrize(
    ("text", "address"),
    [("127.1", "127.0.0.1"), ("2130706433", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("10.1", "10.0.0.1")],
)
def test_legacy_numeric_ipv4_forms_read_as_the_resolver_reads_them(text: str, address: str) -> None:
    assert netguard.literal_address(text) == ipaddress.ip_address(address)


def test_names_are_not_addresses() -> None:
    assert netguard.literal_address("cafe.be") is None
    assert netguard.literal_address("1e100.net") is None


def test_the_allow_list_admits_networks_and_names() -> None:
    allowed = Settings(network_allow="127.0.0.0/8, ::1, 10.20.0.0/16, hooks.internal, *.corp.example")
    for url in (
        "http://127.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost/",
        "http://[::1]/",
        "http://10.20.3.4/",
        "http://hooks.internal/",
        "http://crm.corp.example/",
    ):
        assert netguard.refusal(url, allowed) is None, url
    assert netguard.refusal("http://10.21.0.1/", allowed) is not None
    assert netguard.refusal("http://169.254.169.254/", allowed) is not None


def test_a_malformed_allow_list_entry_stops_the_start() -> None:
    for bad in ("10.0.0.0/33", "300.1.1.1", "fe80::zz"):
        with pytest.raises(ValidationError, match="LEADFLOW_NETWORK_ALLOW"):
            Settings(network_allow=bad)


# --- connect time -----------------------------------------------------------------------------------


@pytest.fixture
def peer() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


def _port(peer: HttpReceiver) -> int:
    return int(peer.url.rsplit(":", 1)[1])


class RecordingBackend(httpcore.SyncBackend):
    """The real synchronous backend, noting the host each connection was opened to."""

    def __init__(self) -> None:
        self.hosts: list[str] = []

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        self.hosts.append(host)
        return super().connect_tcp(host, port, timeout, local_address, socket_options)


def test_a_name_resolving_to_loopback_is_refused_at_connect_time(peer: HttpReceiver) -> None:
    """No request hook here: the transport alone refuses, after resolving the name."""
    transport = netguard.GuardedTransport(netguard.Policy.parse(""))
    with httpx.Client(transport=transport) as client, pytest.raises(netguard.Blocked) as refused:
        client.get(f"http://localhost:{_port(peer)}/")
    assert "localhost (127.0.0.1) is loopback" in str(refused.value)
    assert peer.requests == []


def test_the_address_connected_to_is_the_address_checked(peer: HttpReceiver) -> None:
    """The backend resolves once and connects to that checked address, never to the name again (no
    window for a DNS answer that changes in between)."""
    inner = RecordingBackend()
    backend = netguard.GuardedBackend(netguard.Policy.parse("127.0.0.1"), inner)
    with httpcore.ConnectionPool(network_backend=backend) as pool:
        answer = pool.request("GET", f"http://localhost:{_port(peer)}/checked")
    assert answer.status == 200
    assert inner.hosts == ["127.0.0.1"]
    assert [r.path for r in peer.requests] == ["/checked"]


def test_the_guarded_client_uses_the_guarded_backend() -> None:
    """httpx has no setting for the backend: if a new httpx builds its pool elsewhere, this fails."""
    with netguard.client(OPEN, timeout=5) as client:
        transport = client._transport
        assert isinstance(transport, netguard.GuardedTransport)
        assert isinstance(transport._pool._network_backend, netguard.GuardedBackend)


def test_the_allow_list_lets_the_request_through(peer: HttpReceiver) -> None:
    with netguard.client(LOOPBACK_ALLOWED, timeout=5) as client:
        assert client.get(f"http://localhost:{_port(peer)}/ok").status_code == 200
    assert [r.path for r in peer.requests] == ["/ok"]


@pytest.mark.parametrize(
    "location",
    ["http://169.254.169.254/latest/meta-data/", "http://[::1]/x", "http://2130706434/x", "http://10.0.0.1/"],
)
def test_a_redirect_to_an_internal_address_is_refused(peer: HttpReceiver, location: str) -> None:
    peer.reply(Reply(302, headers={"Location": location}))
    client = netguard.client(LOOPBACK_ALLOWED, timeout=5, follow_redirects=True)
    with client, pytest.raises(netguard.Blocked, match=r"^blocked: "):
        client.get(f"{peer.url}/start")
    assert [r.path for r in peer.requests] == ["/start"]


def test_each_redirect_hop_is_checked_at_connect_time(peer: HttpReceiver) -> None:
    """No request hook here: the peer is admitted by its name (``localhost``) and redirects to its own
    address by number, which the allow-list does not admit; the hop's connection is refused."""
    peer.reply(Reply(302, headers={"Location": f"http://127.0.0.1:{_port(peer)}/inside"}))
    transport = netguard.GuardedTransport(netguard.Policy.parse("localhost"))
    client = httpx.Client(transport=transport, follow_redirects=True)
    with client, pytest.raises(netguard.Blocked, match=r"^blocked: 127\.0\.0\.1 is loopback"):
        client.get(f"http://localhost:{_port(peer)}/start")
    assert [r.path for r in peer.requests] == ["/start"]


def test_a_unix_socket_is_never_opened() -> None:
    backend = netguard.GuardedBackend(netguard.Policy.parse("127.0.0.1"))
    with pytest.raises(netguard.Blocked):
        backend.connect_unix_socket("/var/run/docker.sock")


def test_an_unresolvable_name_is_an_ordinary_connect_error() -> None:
    with netguard.client(OPEN, timeout=5) as client, pytest.raises(httpx.ConnectError):
        client.get("http://no-such-host.invalid/")
