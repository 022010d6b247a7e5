"""Marketing touchpoints, recorded when an event is applied to its profile, for attribution and sources.

Three kinds, one table (``touchpoints``), so attribution reads one indexed table and never the event log:

* ``page``: a page view with UTM parameters or an external referrer (:func:`from_page`);
* ``track``: a contact's own tracked event that carries its source — ``context.campaign.source`` (forms
  and capture flows put the campaign there) or any ``lead.captured`` (its ``source`` and ``utm``)
  (:func:`from_track`);
* ``click``: a person's email click (``leadflow.email_clicked`` not flagged ``machine_generated``): source
  and medium ``email``, the journey or else the broadcast as campaign, and the journey (:func:`from_click`).

Values are text or numbers (others are none), trimmed, empty ones none, each cut to 255 characters
(the columns' size).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

UTM_FIELDS = ("source", "medium", "campaign", "term", "content")
EMAIL_CLICKED = "leadflow.email_clicked"
LEAD_CAPTURED = "lead.captured"


def _text(value: Any, limit: int = 255) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value).strip()
    return text[:limit] or None


def _row(kind: str, **values: str | None) -> dict[str, Any]:
    """A touchpoint with every column of the kind-independent shape (rows are inserted together)."""
    row: dict[str, Any] = dict.fromkeys((*UTM_FIELDS, "referrer", "url", "journey"))
    row.update(values, kind=kind)
    return row


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _first(*values: Any) -> str | None:
    for value in values:
        if (text := _text(value)) is not None:
            return text
    return None


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
    return _row("page", **utm, referrer=referrer, url=url)


def from_track(
    event: str | None, properties: dict[str, Any] | None, context: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The touchpoint a contact's own ``track`` event represents, or None: one whose context names a
    campaign source, or any ``lead.captured``. Source, medium and campaign come from
    ``context.campaign`` (``name`` is the campaign), else the properties' ``utm`` (and, for the source,
    the properties' ``source``)."""
    properties, context = _dict(properties), _dict(context)
    campaign = _dict(context.get("campaign"))
    source = _text(campaign.get("source"))
    if source is None and event != LEAD_CAPTURED:
        return None
    utm = _dict(properties.get("utm"))
    return _row(
        "track",
        source=source or _first(utm.get("utm_source"), properties.get("source")),
        medium=_first(campaign.get("medium"), utm.get("utm_medium")),
        campaign=_first(campaign.get("name"), utm.get("utm_campaign")),
    )


def from_click(properties: dict[str, Any] | None) -> dict[str, Any] | None:
    """The touchpoint of a ``leadflow.email_clicked`` event, or None for a machine's click (a link
    scanner's, flagged ``machine_generated``)."""
    properties = _dict(properties)
    if properties.get("machine_generated") in (True, "true"):
        return None
    journey = _text(properties.get("journey_id"))
    return _row(
        "click",
        source="email",
        medium="email",
        campaign=journey or _text(properties.get("broadcast_id")),
        journey=journey,
    )
