"""The one guard on every HTTP request leadflow makes on a user's behalf (webhook steps, SNS
subscription confirmations, and any later connector or feed): no such request reaches inside the network.

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

:func:`refusal` is the save-time check of a URL's literal host (an IP address in any form, or
``localhost``/``*.localhost``), for refusing a definition before anything is stored.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpcore
import httpx

if TYPE_CHECKING:
    from leadflow.kernel.settings import Settings

__all__ = ["Blocked", "GuardedBackend", "GuardedTransport", "Policy", "client", "reason_for", "refusal"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_LOOPBACK = ipaddress.IPv4Address("127.0.0.1")
_METADATA = ipaddress.IPv4Address("169.254.169.254")
_THIS_NETWORK = ipaddress.IPv4Network("0.0.0.0/8")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOCAL_NAT64 = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local-use translation
_NUMERIC_V4 = re.compile(r"^[0-9][0-9a-fx.]*$", re.IGNORECASE)


class Blocked(httpx.TransportError):
    """A request to a target the guard refuses; the message says which address and why."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, NAT64, 6to4), if any."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _ipv4_reason(address: ipaddress.IPv4Address) -> str | None:
    if address in _THIS_NETWORK:
        return "unspecified (0.0.0.0/8)"
    if address.is_loopback:
        return "loopback"
    if address == _METADATA:
        return "link-local (the cloud metadata address)"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address in _SHARED:
        return "shared address space (100.64.0.0/10)"
    if address.is_reserved:
        return "reserved"
    if address.is_private:
        return "private"
    return None if address.is_global else "not globally routable"


def _ipv6_reason(address: ipaddress.IPv6Address) -> str | None:
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        inner = _ipv4_reason(embedded)
        if inner is not None:
            return f"{inner} ({embedded} inside IPv6)"
        return "reserved (IPv4-compatible IPv6)" if address in _COMPATIBLE else None
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address in _UNIQUE_LOCAL, "private (unique local)"),
        (address in _LOCAL_NAT64, "private (local-use NAT64)"),
        (address.is_site_local, "site-local"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "not globally routable"),
    )
    return next((reason for hit, reason in checks if hit), None)


def reason_for(address: Address) -> str | None:
    """Why leadflow must not connect to ``address`` (e.g. ``"loopback"``), or ``None`` when it may."""
    if isinstance(address, ipaddress.IPv4Address):
        return _ipv4_reason(address)
    return _ipv6_reason(address)


def literal_address(host: str) -> Address | None:
    """The address a URL host denotes by itself: IPv4 in any form the C resolver accepts (``127.1``,
    ``2130706433``, ``0x7f.1``, ``0177.0.0.1``), or IPv6 (brackets and zone optional); else ``None``."""
    host = host.strip().strip("[]").rstrip(".")
    if _NUMERIC_V4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


def _network(entry: str) -> Network | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


@dataclass(frozen=True)
class Policy:
    """What ``LEADFLOW_NETWORK_ALLOW`` admits: networks, exact host names and ``*.`` suffixes."""

    networks: tuple[Network, ...] = ()
    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()

    @staticmethod
    @functools.lru_cache(maxsize=8)
    def parse(text: str) -> Policy:
        """The policy of a setting's value; an entry that looks like an address but is none is an error."""
        networks: list[Network] = []
        names: set[str] = set()
        suffixes: list[str] = []
        for raw in text.split(","):
            entry = raw.strip().lower().rstrip(".")
            if not entry:
                continue
            network = _network(entry.strip("[]"))
            if network is not None:
                networks.append(network)
            elif "/" in entry or ":" in entry or re.fullmatch(r"[0-9.]+", entry):
                raise ValueError(f"LEADFLOW_NETWORK_ALLOW: {raw.strip()!r} is not a network or a host name")
            elif entry.startswith("*."):
                suffixes.append(entry[1:])
            else:
                names.add(entry)
        return Policy(tuple(networks), frozenset(names), tuple(suffixes))

    def admits_name(self, host: str) -> bool:
        name = host.lower().rstrip(".")
        return name in self.names or name.endswith(self.suffixes)

    def admits(self, address: Address) -> bool:
        candidates: list[Address] = [address]
        if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_ipv4(address)) is not None:
            candidates.append(inner)
        return any(a.version == n.version and a in n for a in candidates for n in self.networks)

    def judge(self, host: str, address: Address) -> str | None:
        """The refusal for connecting to ``address`` (which ``host`` names), or ``None`` when allowed."""
        reason = reason_for(address)
        if reason is None or self.admits(address) or self.admits_name(host):
            return None
        shown = str(address) if host.strip("[]") == str(address) else f"{host} ({address})"
        return f"blocked: {shown} is {reason}; LEADFLOW_NETWORK_ALLOW can admit it"

    def literal_refusal(self, host: str) -> str | None:
        """The refusal a host earns by its text alone (an address, or ``localhost``)."""
        name = host.lower().rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
            return self.judge(host, _LOOPBACK)
        address = literal_address(host)
        return None if address is None else self.judge(host, address)

    def check_request(self, request: httpx.Request) -> None:
        """An httpx request hook: refuse a request (each redirect hop too) to a blocked literal host."""
        refused = self.literal_refusal(request.url.host)
        if refused is not None:
            raise Blocked(refused, request=request)


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
        found: dict[Address, None] = {}
        for info in infos:
            found.setdefault(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]), None)
        return list(found)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self.resolve(host, port)
        for address in addresses:
            refused = self.policy.judge(host, address)
            if refused is not None:
                raise Blocked(refused)
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
    relies on are pinned in pyproject.toml and a test checks the pool)."""

    def __init__(self, policy: Policy, *, limits: httpx.Limits = httpx.Limits()) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
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
