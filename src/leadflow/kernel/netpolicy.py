"""What the network guard (:mod:`leadflow.kernel.netguard`) refuses, and what ``LEADFLOW_NETWORK_ALLOW``
admits: the classification of addresses and the allow-list policy, without any I/O.

Settings check the allow list with :meth:`Policy.parse` when they load, so this module depends on no
other leadflow module; the guard itself (resolving, connecting, the httpx client) builds on it and on
:class:`~leadflow.kernel.settings.Settings`. The rules are described in :mod:`leadflow.kernel.netguard`.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["Address", "Blocked", "Network", "Policy", "embedded_ipv4", "literal_address", "reason_for"]

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


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
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
    embedded = embedded_ipv4(address)
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
        if isinstance(address, ipaddress.IPv6Address) and (inner := embedded_ipv4(address)) is not None:
            candidates.append(inner)
        return any(a.version == n.version and a in n for a in candidates for n in self.networks)

    def check_all(self, host: str, addresses: Iterable[Address]) -> None:
        """Raise :class:`Blocked` if any address ``host`` resolved to is refused: every client checks
        them all before it connects to one."""
        for address in addresses:
            refused = self.judge(host, address)
            if refused is not None:
                raise Blocked(refused)

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


def addresses_of(infos: Iterable[Sequence[Any]]) -> list[Address]:
    """The distinct addresses of a ``getaddrinfo`` answer, in its order (an IPv6 zone dropped)."""
    found: dict[Address, None] = {}
    for info in infos:
        found.setdefault(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]), None)
    return list(found)
