"""Telling machine-generated opens and clicks from human ones.

Mail security gateways follow every link of a message before the recipient sees it, and privacy proxies
fetch every image, so raw open and click counts overstate engagement (and would trigger journeys on
nobody's behalf). :func:`classify` names the reason a hit is machine-generated, or returns ``None`` for a
human one. The hit is still recorded (``messages.machine_hits``); it just does not count as engagement.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta
from typing import Literal

from leadflow.kernel.clock import as_utc

__all__ = ["TOO_FAST", "classify"]

#: A click sooner than this after the send is a scanner working through the message on delivery.
TOO_FAST = timedelta(seconds=2)

# Security gateways and link checkers, by User-Agent (case-insensitive). Order matters: the first match
# names the reason, so vendors come before the generic markers their agents may also contain.
_SCANNERS: tuple[tuple[str, str], ...] = (
    ("barracuda", r"barracuda"),
    ("mimecast", r"mimecast"),
    ("proofpoint", r"proofpoint"),
    (
        "microsoft",
        r"microsoft office (?:protocol|existence) discovery|ms-office-protocol-discovery"
        r"|bingpreview|safelinks|microsoft defender",
    ),
    ("symantec", r"symantec|messagelabs"),
    ("trendmicro", r"trend ?micro"),
    ("cisco", r"ironport|cisco"),
    ("fireeye", r"fireeye|trellix"),
    ("forcepoint", r"forcepoint|websense"),
    ("python-requests", r"python-requests"),
    ("python", r"python-urllib|python-httpx|aiohttp"),
    ("curl", r"\bcurl/"),
    ("wget", r"\bwget/"),
    ("go-http-client", r"go-http-client"),
    ("headless-chrome", r"headlesschrome"),
    ("generic", r"(?<!cu)bot\b|crawler|spider|scanner|preview|facebookexternalhit"),
    ("http-library", r"libwww-perl|apache-httpclient|\bjava/"),
)
_SCANNER = re.compile("|".join(f"(?P<s{i}>{pattern})" for i, (_, pattern) in enumerate(_SCANNERS)), re.I)

# Apple Mail Privacy Protection fetches images from Apple's network with a bare "Mozilla/5.0".
_APPLE_NETWORKS = (ipaddress.ip_network("17.0.0.0/8"),)


def classify(
    *,
    user_agent: str | None,
    ip: str | None,
    sent_at: datetime | None,
    at: datetime,
    kind: Literal["open", "click", "honeypot"],
) -> str | None:
    """Why an open, click or honeypot hit is machine-generated, or ``None`` if it looks human.

    Rules, in order (the first that applies names the reason):

    1. ``"honeypot"``: any hit on the honeypot link. People cannot see it; only machines follow it.
    2. ``"scanner:<vendor>"``: a User-Agent of a known security gateway or link checker (Barracuda,
       Mimecast, Proofpoint, Microsoft Defender/Safe Links and Office's protocol discovery, BingPreview,
       Symantec, Trend Micro, Cisco IronPort, FireEye, Forcepoint), an HTTP library or tool
       (python-requests and other Python clients, curl, wget, Go-http-client), headless Chrome, or a generic
       marker (bot, crawler, spider, scanner, preview...) as ``"scanner:generic"``.
    3. Opens only, privacy proxies that fetch images whether or not anyone reads the message:
       ``"proxy:gmail"`` (GoogleImageProxy), ``"proxy:yahoo"`` (YahooMailProxy), ``"proxy:apple"`` (Apple Mail
       Privacy Protection: from Apple's 17.0.0.0/8, or a User-Agent of exactly ``Mozilla/5.0``). Clicks from
       Apple's network are not affected: people work there.
    4. Clicks only, ``"too_fast"``: less than :data:`TOO_FAST` (2 s) after the message was sent (including a
       click dated before the send, which only clock skew explains). Gateways scan on delivery; people do
       not read that fast.
    5. ``"no_user_agent"``: no (or a blank) User-Agent. Every browser and mail client sends one.
    """
    if kind == "honeypot":
        return "honeypot"
    agent = (user_agent or "").strip()
    if agent:
        match = _SCANNER.search(agent)
        if match is not None and match.lastgroup is not None:
            return f"scanner:{_SCANNERS[int(match.lastgroup[1:])][0]}"
    if kind == "open":
        proxy = _proxy(agent, ip)
        if proxy is not None:
            return proxy
    if kind == "click" and sent_at is not None and as_utc(at) - as_utc(sent_at) < TOO_FAST:
        return "too_fast"
    if not agent:
        return "no_user_agent"
    return None


def _proxy(agent: str, ip: str | None) -> str | None:
    """The image proxy an open came through, if any."""
    if "GoogleImageProxy" in agent:
        return "proxy:gmail"
    if "YahooMailProxy" in agent:
        return "proxy:yahoo"
    if agent == "Mozilla/5.0" or _from_apple(ip):
        return "proxy:apple"
    return None


def _from_apple(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _APPLE_NETWORKS)
