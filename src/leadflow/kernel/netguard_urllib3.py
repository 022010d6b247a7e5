"""The network guard (:mod:`leadflow.kernel.netguard`) for clients built on ``urllib3`` rather than httpx:
``hubspot-api-client`` (urllib3 itself) and ``simple-salesforce`` (``requests``, on urllib3).

The rule is the guard's, by the same :class:`~leadflow.kernel.netpolicy.Policy`: **at connect time**
each new connection resolves its host once, is refused (:class:`~leadflow.kernel.netpolicy.Blocked`)
when any address of the answer is inside the network and not admitted by ``LEADFLOW_NETWORK_ALLOW``,
and then connects to one of those checked addresses, never to the name again — a DNS answer that
changes between an earlier check and the connection (DNS rebinding) cannot slip through. TLS still
sends the name (SNI) and verifies the certificate for it; the ``Host`` header is the name.

* :class:`GuardedPoolManager` is a ``urllib3.PoolManager`` whose pools make only guarded connections
  (it is the pool manager a client's redirects and retries go through too: every new connection of a
  redirect hop is checked the same way). No proxy: through a proxy the address checked would be the
  proxy's (:class:`GuardedAdapter` refuses one).
* :class:`GuardedAdapter` is a ``requests`` adapter on a :class:`GuardedPoolManager`, for a session
  mounted with it on ``http://`` and ``https://``.

It relies on urllib3's documented extension points (``PoolManager.pool_classes_by_scheme``, a pool's
``ConnectionCls``) and on ``HTTPConnection._new_conn``, the one method that opens the socket; the
urllib3 and requests versions this was tested with are pinned in pyproject.toml, and
``tests/unit/kernel/test_netguard_urllib3.py`` checks a rebinding name against them.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

from leadflow.kernel.netpolicy import Address, Blocked, Policy, addresses_of

__all__ = ["GuardedAdapter", "GuardedPoolManager", "Resolver", "resolve", "session_guard"]

Resolver = Callable[[str, int], list[Address]]


def resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to, in the resolver's order (``OSError`` when it resolves not)."""
    return addresses_of(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))


class _Guard:
    """Resolve, judge every address, connect to a checked one: a connection's ``_new_conn``."""

    def __init__(self, policy: Policy, resolver: Resolver) -> None:
        self.policy = policy
        self.resolver = resolver

    def connect(self, conn: HTTPConnection) -> socket.socket:
        host = conn._dns_host  # the name without brackets or a trailing dot, as urllib3 would resolve it
        try:
            addresses = self.resolver(host, conn.port)
        except (OSError, UnicodeError) as exc:
            raise NameResolutionError(conn.host, conn, socket.gaierror(str(exc))) from None
        if not addresses:
            raise NameResolutionError(conn.host, conn, socket.gaierror(f"{host}: no address"))
        self.policy.check_all(host, addresses)
        failure: Exception | None = None
        for address in addresses:
            try:
                return create_connection(
                    (str(address), conn.port),
                    conn.timeout,
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except TimeoutError as exc:
                failure = ConnectTimeoutError(
                    conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
                )
                failure.__cause__ = exc
            except OSError as exc:
                failure = NewConnectionError(conn, f"Failed to establish a new connection: {exc}")
        assert failure is not None
        raise failure


def _pool_classes(guard: _Guard) -> dict[str, type[HTTPConnectionPool]]:
    class Plain(HTTPConnection):
        def _new_conn(self) -> socket.socket:
            return guard.connect(self)

    class Secure(HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            return guard.connect(self)

    class PlainPool(HTTPConnectionPool):
        ConnectionCls = Plain

    class SecurePool(HTTPSConnectionPool):
        ConnectionCls = Secure

    return {"http": PlainPool, "https": SecurePool}


class GuardedPoolManager(urllib3.PoolManager):
    """A ``urllib3.PoolManager`` whose every connection the guard checks at connect time (see the
    module doc); ``resolver`` is the DNS lookup (a test's changing answers)."""

    def __init__(self, policy: Policy, *, resolver: Resolver = resolve, **pool_kw: Any) -> None:
        super().__init__(**pool_kw)
        self.pool_classes_by_scheme = _pool_classes(_Guard(policy, resolver))


class GuardedAdapter(HTTPAdapter):
    """A ``requests`` adapter whose connections are a :class:`GuardedPoolManager`'s; never a proxy."""

    def __init__(self, policy: Policy, *, resolver: Resolver = resolve, **kwargs: Any) -> None:
        self.policy = policy
        self.resolver = resolver
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        self.poolmanager = GuardedPoolManager(
            self.policy,
            resolver=self.resolver,
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            **pool_kwargs,
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> urllib3.ProxyManager:
        raise Blocked("blocked: a proxy would hide the address connected to")


def session_guard(session: requests.Session, policy: Policy, *, resolver: Resolver = resolve) -> None:
    """Mount a :class:`GuardedAdapter` on ``session`` for both schemes and stop it reading proxies
    from the environment."""
    adapter = GuardedAdapter(policy, resolver=resolver)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    session.proxies = {}
