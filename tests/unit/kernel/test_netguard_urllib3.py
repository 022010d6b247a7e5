"""The network guard for urllib3 and requests clients (kernel/netguard_urllib3.py): each connection resolves
once, is judged at connect time and connects to the checked address; redirect hops too."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
import requests
import urllib3

from leadflow.kernel.netguard_urllib3 import GuardedPoolManager, session_guard
from leadflow.kernel.netpolicy import Address, Blocked, Policy
from tests.peers.http_receiver import HttpReceiver, Reply

PUBLIC = ipaddress.ip_address("93.184.215.14")
LOOPBACK = ipaddress.ip_address("127.0.0.1")


class Rebinding:
    """A DNS whose answer for a name changes: the first lookups get ``first``, later ones ``then``."""

    def __init__(self, first: Address, then: Address, first_count: int = 1) -> None:
        self.answers = [first] * first_count
        self.then = then
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[Address]:
        self.asked.append(host)
        return [self.answers.pop(0) if self.answers else self.then]


@pytest.fixture
def peer() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


def _port(peer: HttpReceiver) -> int:
    return int(peer.url.rsplit(":", 1)[1])


def test_a_name_rebound_to_loopback_is_refused_when_connecting(peer: HttpReceiver) -> None:
    """The caller's own look-up saw a public address; the connection's look-up gets 127.0.0.1."""
    dns = Rebinding(PUBLIC, LOOPBACK)
    assert dns("crm.rebind.test", 80) == [PUBLIC]  # the up-front check's answer
    pool = GuardedPoolManager(Policy(), resolver=dns, retries=False)
    with pytest.raises(Blocked, match=r"^blocked: crm\.rebind\.test \(127\.0\.0\.1\) is loopback"):
        pool.request("GET", f"http://crm.rebind.test:{_port(peer)}/contacts")
    assert dns.asked == ["crm.rebind.test", "crm.rebind.test"]
    assert peer.requests == []


def test_the_checked_address_is_connected_to_with_the_name_as_host(peer: HttpReceiver) -> None:
    dns = Rebinding(LOOPBACK, PUBLIC)  # were the name resolved again, the request would go elsewhere
    pool = GuardedPoolManager(Policy.parse("127.0.0.1"), resolver=dns)
    answer = pool.request("GET", f"http://crm.peer.test:{_port(peer)}/checked")
    assert answer.status == 200
    assert dns.asked == ["crm.peer.test"]
    assert [(r.path, r.headers["host"]) for r in peer.requests] == [
        ("/checked", f"crm.peer.test:{_port(peer)}")
    ]


def test_a_redirect_hop_is_checked_at_connect_time(peer: HttpReceiver) -> None:
    """The peer is admitted by its name; its redirect to another name resolving to 127.0.0.1 is not."""
    peer.reply(Reply(302, headers={"Location": f"http://inside.test:{_port(peer)}/secret"}))
    pool = GuardedPoolManager(Policy.parse("crm.peer.test"), resolver=lambda host, port: [LOOPBACK])
    with pytest.raises(Blocked, match=r"^blocked: inside\.test \(127\.0\.0\.1\) is loopback"):
        pool.request("GET", f"http://crm.peer.test:{_port(peer)}/start")
    assert [r.path for r in peer.requests] == ["/start"]


def test_an_unresolvable_name_is_urllib3s_own_error() -> None:
    pool = GuardedPoolManager(Policy(), retries=False)
    with pytest.raises(urllib3.exceptions.NameResolutionError):
        pool.request("GET", "http://no-such-host.invalid/")


def test_a_requests_session_is_guarded_on_every_hop(peer: HttpReceiver) -> None:
    peer.reply(Reply(200), Reply(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"}))
    session = requests.Session()
    session_guard(session, Policy.parse("127.0.0.1"))
    assert session.get(f"http://localhost:{_port(peer)}/ok", timeout=5).status_code == 200
    with pytest.raises(Blocked, match=r"169\.254\.169\.254 is link-local \(the cloud metadata"):
        session.get(f"http://localhost:{_port(peer)}/start", timeout=5)
    assert [r.path for r in peer.requests] == ["/ok", "/start"]
    assert session.trust_env is False


def test_a_requests_session_never_uses_a_proxy(peer: HttpReceiver) -> None:
    session = requests.Session()
    session_guard(session, Policy.parse("127.0.0.1"))
    with pytest.raises(Blocked, match="proxy"):
        session.get(f"{peer.url}/x", proxies={"http": "http://proxy.example:3128"}, timeout=5)
    assert peer.requests == []
