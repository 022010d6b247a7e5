"""Marketing touchpoints from ``page`` calls: UTM parameters and external referrers, for attribution."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

UTM_FIELDS = ("source", "medium", "campaign", "term", "content")


def _text(value: Any, limit: int = 255) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text[:limit] or None


def _host(url: str | None) -> str | None:
    if not url:
        return None
    try:
        return (urlsplit(url).hostname or "").lower() or None
    except ValueError:
        return None


def _utm_from_url(url: str | None) -> dict[str, str]:
    if not url:
        return {}
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return {}
    return {name: values[0] for name in UTM_FIELDS if (values := query.get(f"utm_{name}"))}


def from_page(properties: dict[str, Any] | None, context: dict[str, Any] | None) -> dict[str, Any] | None:
    """The touchpoint a page view represents, or None for a direct, untagged visit.

    UTM values come from ``context.campaign`` (``name`` is the campaign), falling back to the
    ``utm_*`` query parameters of the page URL. A visit with no UTM but a referrer on another host is
    a referral from that host.
    """
    properties, context = properties or {}, context or {}
    page: dict[str, Any] = context["page"] if isinstance(context.get("page"), dict) else {}
    url = _text(properties.get("url") or page.get("url"), 4000)
    referrer = _text(properties.get("referrer") or page.get("referrer"), 4000)
    campaign: dict[str, Any] = context["campaign"] if isinstance(context.get("campaign"), dict) else {}
    utm = {name: _text(campaign.get("name" if name == "campaign" else name)) for name in UTM_FIELDS}
    for name, value in _utm_from_url(url).items():
        utm[name] = utm[name] or _text(value)
    referrer_host = _host(referrer)
    if not any(utm.values()):
        if not referrer_host or referrer_host == _host(url):
            return None
        utm["source"], utm["medium"] = referrer_host, "referral"
    return {**utm, "referrer": referrer, "url": url}
