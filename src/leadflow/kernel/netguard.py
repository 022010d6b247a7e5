"""The one guard on every HTTP request leadflow makes on a user's behalf (webhook steps, SNS signing
certificates and subscription confirmations, and any later connector or feed): no such request reaches
inside the network.

Rules:

* A target is refused when an address it resolves to is **loopback, private** (RFC 1918, unique local
  ``fc00::/7``), **link-local** (``169.254.0.0/16`` with the cloud metadata address ``169.254.169.254``,
  ``fe80::/10``), **multicast, unspecified/reserved** (``0.0.0.0/8``, ``::``, ``240.0.0.0/4``), the
  **shared address space** ``100.64.0.0/10``, or otherwise not globally routable. IPv6 forms that carry an
  IPv4 address (mapped ``::ffff:a.b.c.d``, compatible ``::a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4
  ``2002::/16``) are judged by that IPv4 address, and legacy numeric IPv4 forms (``127.1``,
  ``2130706433``, ``0x7f.1``, octal ``0177.0.0.1``) are read as the C resolver reads them.
* The check happens **at connect time, on the address connected to**: :class:`GuardedBackend` resolves
  the host once, refuses if any of its addresses is blocked, and connects to a checked address (TLS still
  verifies the name). A DNS answer that changes between a check and the connection (DNS rebinding) cannot
  slip through. Every redirect hop connects through the same backend, and its ``Location`` is checked
  before it is requested.
* ``LEADFLOW_NETWORK_ALLOW`` admits targets anyway: comma-separated CIDRs (``10.0.0.0/8``, ``::1``) and
  host names (``hooks.internal``, ``*.corp.example``). A name on the list is admitted whatever it resolves
  to; an address is admitted when it lies in a listed network.
* Guarded clients ignore ``HTTP(S)_PROXY``: through a proxy the address checked would be the proxy's.
* :func:`client` gives an httpx client. The webhook deliverer's many POSTs go through
  :class:`leadflow.kernel.netguard_post.GuardedPoster`, which applies the same policy on its own event
  loop (the literal host, then every resolved address, then the connection to a checked one).

:func:`refusal` is the save-time check of a URL's literal host (an IP address in any form, or
``localhost``/``*.localhost``), for refusing a definition before anything is stored.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from leadflow.kernel.netpolicy import Address as Address
from leadflow.kernel.netpolicy import Blocked as Blocked
from leadflow.kernel.netpolicy import Policy as Policy
from leadflow.kernel.netpolicy import addresses_of
from leadflow.kernel.netpolicy import literal_address as literal_address
from leadflow.kernel.netpolicy import reason_for as reason_for
from leadflow.kernel.settings import Settings

__all__ = [
    "Blocked",
    "GuardedBackend",
    "GuardedTransport",
    "Policy",
    "client",
    "reason_for",
    "refusal",
]


def refusal(url: str, settings: Settings) -> str | None:
    """Why a request to ``url`` would be refused by its literal host alone, or ``None``.

    Both URL readings leadflow could meet (the standard library's and httpx's) are checked, so a URL the
    two parse differently cannot pass as one host and be sent to the other."""
    policy = Policy.parse(settings.network_allow)
    hosts: list[str] = []
    with contextlib.suppress(ValueError):
        hosts.append(urlsplit(url).hostname or "")
    with contextlib.suppress(httpx.InvalidURL):
        hosts.append(httpx.URL(url).host)
    return next((found for host in hosts if host and (found := policy.literal_refusal(host))), None)


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, resolving first and connecting only to checked addresses."""

    def __init__(self, policy: Policy, inner: httpcore.NetworkBackend | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpcore.SyncBackend()

    def resolve(self, host: str, port: int) -> list[Address]:
        """Every address ``host`` resolves to, in the resolver's order."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from None
        return addresses_of(infos)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.resolve(host, port)
        self.policy.check_all(host, addresses)
        options = list(socket_options or [])
        failure: httpcore.ConnectError | httpcore.ConnectTimeout | None = None
        for address in addresses:
            try:
                return self.inner.connect_tcp(str(address), port, timeout, local_address, options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure or httpcore.ConnectError(f"{host}: no address")

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise Blocked("blocked: Unix sockets are local")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with its connection pool on a :class:`GuardedBackend` and no proxy.

    httpx offers no parameter for the network backend, so the pool it builds is replaced by an equal
    one on the guarded backend (``_pool`` is the attribute ``handle_request`` uses; the versions this
    relies on are pinned in pyproject.toml and a test checks the pool). ``ssl_context``: the trust
    for TLS when it is not the system's (a test peer's CA)."""

    def __init__(
        self,
        policy: Policy,
        *,
        limits: httpx.Limits = httpx.Limits(),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy),
        )


def client(settings: Settings, *, timeout: float, follow_redirects: bool = False) -> httpx.Client:
    """An httpx client whose every connection and redirect the guard checks (see the module doc)."""
    policy = Policy.parse(settings.network_allow)
    return httpx.Client(
        transport=GuardedTransport(policy),
        timeout=timeout,
        follow_redirects=follow_redirects,
        trust_env=False,
        event_hooks={"request": [policy.check_request]},
    )
