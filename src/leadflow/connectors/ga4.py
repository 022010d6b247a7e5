"""Google Analytics 4 (Measurement Protocol, ``httpx``): conversions forwarded as GA4 events.

A GA4 connector is configured with ``credentials`` ``{"measurement_id", "api_secret"}`` (sealed like
every connector's) and its ``triggers.events``: the tracked events that are conversions. Each
conversion the pipeline applies becomes one row of the connectors' outbox (kind ``conversion``, keyed
by the event's id: one hit per conversion, never coalesced with another), drained by the same worker,
token bucket, retries and dead letters as the CRM vendors (:mod:`leadflow.connectors.conversions`).

- A hit is ``POST /mp/collect?measurement_id=&api_secret=`` with
  ``{"client_id", ["user_id"], "timestamp_micros", "events": [{"name", "params"}]}``. ``client_id`` is
  the GA client id the site's context carried (``context.ga4.client_id`` or ``context.clientId``),
  else the Segment ``anonymousId``, else ``leadflow.<contact id>``; ``user_id`` the event's
  ``userId``; the time the event's.
- **Ecommerce** (Segment's e-commerce spec v2 → GA4's recommended events, as Segment's own GA4
  destination maps them: :data:`ECOMMERCE`): ``Order Completed`` is sent as ``purchase``, ``Order
  Refunded`` as ``refund``, ``Product Added`` as ``add_to_cart``, ``Checkout Started`` as
  ``begin_checkout``, ``Signed Up`` as ``sign_up`` and so on; their properties are renamed to GA4's
  (``order_id`` → ``transaction_id``, ``total`` or ``revenue`` → ``value`` when no ``value`` is given,
  ``query`` → ``search_term``) and the ``products`` become GA4 ``items`` (``product_id`` or ``sku`` →
  ``item_id``, ``name`` → ``item_name``, ``category``/``brand``/``variant`` → ``item_…``, ``price``,
  ``quantity``, ``coupon``, ``position`` → ``index``; a product event's own properties are its one
  item). At most 200 items; an item with neither id nor name is left out (GA4 refuses it).
- Any other event name is the tracked name made GA4-safe (``Viewed Pricing`` → ``viewed_pricing``:
  letters, digits and ``_``, a letter first, at most 40 characters). Params are the event's scalar
  properties (their names made safe the same way, reserved prefixes dropped, at most 25, strings cut to
  100 characters); ``value`` and ``currency`` go as they are (GA4's conversion value).
- A body that would break Google's documented rules (:func:`problems`, as ``/debug/mp/collect`` checks
  them) is never sent: the conversion is ``FAILED`` with the reason (dead-lettered). The Measurement
  Protocol answers 2xx even to bad data, so this check is the only one.
- ``check`` (the API's "test connection") sends a sample body to ``/debug/mp/collect`` and fails with
  the validation messages, if any (the validation server checks neither the id nor the secret).
- No pull, no erasure: the Measurement Protocol can only send (user deletion is GA4's Admin API).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from leadflow.connectors.rest import Rest, each
from leadflow.connectors.vendor import FAILED, OK, Change, Network, RateSeen, Record, VendorError, Written

HOST = "https://www.google-analytics.com"
CONVERSION = "conversion"
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
RESERVED_PREFIXES = ("_", "firebase_", "ga_", "google_")
RESERVED_EVENTS = frozenset(
    {
        "ad_activeview", "ad_click", "ad_exposure", "ad_impression", "ad_query", "ad_reward",
        "adunit_exposure", "app_background", "app_clear_data", "app_exception", "app_remove",
        "app_store_refund", "app_store_subscription_cancel", "app_store_subscription_convert",
        "app_store_subscription_renew", "app_uninstall", "app_update", "app_upgrade",
        "dynamic_link_app_open", "dynamic_link_app_update", "dynamic_link_first_open", "error",
        "firebase_campaign", "first_open", "first_visit", "in_app_purchase", "notification_dismiss",
        "notification_foreground", "notification_open", "notification_receive", "os_update",
        "session_start", "session_start_with_rollout", "user_engagement",
    }
)  # fmt: skip
MAX_PARAMS = 25
MAX_NAME = 40
MAX_VALUE = 100
MAX_ITEMS = 200
DEFAULT_MAPPING: list[dict[str, Any]] = []  # conversions carry their own params: no field mapping
#: Segment's e-commerce spec (v2) and a few semantic events → GA4's recommended event names.
ECOMMERCE = {
    "Products Searched": "search", "Product List Viewed": "view_item_list", "Product Clicked": "select_item",
    "Product Viewed": "view_item", "Product Added": "add_to_cart", "Product Removed": "remove_from_cart",
    "Cart Viewed": "view_cart", "Checkout Started": "begin_checkout",
    "Payment Info Entered": "add_payment_info",
    "Order Completed": "purchase", "Order Refunded": "refund", "Promotion Viewed": "view_promotion",
    "Promotion Clicked": "select_promotion", "Product Added to Wishlist": "add_to_wishlist",
    "Signed Up": "sign_up", "Signed In": "login", "Product Shared": "share",
}  # fmt: skip
#: The product events whose own properties are their one item.
ONE_ITEM = frozenset({"Product Clicked", "Product Viewed", "Product Added", "Product Removed",
                      "Product Added to Wishlist", "Product Shared"})  # fmt: skip
#: Segment property → GA4 event param.
RENAMED = {"order_id": "transaction_id", "query": "search_term", "list_id": "item_list_id",
           "list_name": "item_list_name", "creative": "creative_name"}  # fmt: skip
#: Segment product property → GA4 item param, in order of preference (``product_id`` before ``sku``).
ITEM_FIELDS = (("product_id", "item_id"), ("sku", "item_id"), ("name", "item_name"),
               ("category", "item_category"), ("brand", "item_brand"), ("variant", "item_variant"),
               ("price", "price"), ("quantity", "quantity"), ("coupon", "coupon"), ("position", "index"),
               ("affiliation", "affiliation"), ("currency", "currency"))  # fmt: skip
#: A product's own fields: not also event params on a one-item event.
ITEM_ONLY = frozenset({"product_id", "sku", "name", "category", "brand", "variant", "position", "quantity",
                       "price", "url", "image_url"})  # fmt: skip


def safe_name(text: str) -> str:
    """A name GA4 accepts: letters, digits and ``_``, a letter first, at most 40 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9]+", "_", text.strip()).strip("_").lower()
    if cleaned and not cleaned[0].isalpha():
        cleaned = f"e_{cleaned}"
    return cleaned[:MAX_NAME].rstrip("_")


def _scalar(value: Any) -> str | int | float | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        return value[:MAX_VALUE]
    return value if isinstance(value, int | float) else None


def params_of(properties: Mapping[str, Any] | None) -> dict[str, Any]:
    """The event's scalar properties as GA4 params (names made safe; at most 25; strings ≤ 100)."""
    found: dict[str, Any] = {}
    for key, raw in (properties or {}).items():
        if len(found) >= MAX_PARAMS:
            break
        value = _scalar(raw)
        name = safe_name(str(key))
        if value is None or not name or name.startswith(RESERVED_PREFIXES) or name in found:
            continue
        found[name] = value
    return found


def item_of(product: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Segment product as a GA4 item (``None``: neither an id nor a name, which GA4 refuses)."""
    item: dict[str, Any] = {}
    for theirs, ours in ITEM_FIELDS:
        value = _scalar(product.get(theirs))
        if value is not None and ours not in item:
            item[ours] = value
    return item if ("item_id" in item or "item_name" in item) else None


def _ecommerce_params(name: str, properties: Mapping[str, Any]) -> dict[str, Any]:
    """A Segment e-commerce event's properties as the GA4 recommended event's params, with ``items``:
    the ``products`` (a product event: its own properties). ``value`` is the given ``value``, else
    ``total``, else ``revenue``, else (a product event) ``price`` times ``quantity`` (1 when not given)."""
    one = name in ONE_ITEM
    listed = [properties] if one else properties.get("products")
    products = listed if isinstance(listed, list) else []
    items = [item for p in products if isinstance(p, Mapping) and (item := item_of(p)) is not None]
    event = {
        RENAMED.get(key, key): value
        for key, value in properties.items()
        if key != "products" and key not in ITEM_ONLY
    }
    for source in ("value", "total", "revenue"):
        if _scalar(properties.get(source)) is not None:
            event["value"] = properties[source]
            break
    else:
        price, quantity = properties.get("price"), properties.get("quantity", 1)
        if one and _number(price) and _number(quantity):
            event["value"] = round(price * quantity, 6)
    params = params_of(event)
    if items:
        params = dict(list(params.items())[: MAX_PARAMS - 1])
        params["items"] = items[:MAX_ITEMS]
    return params


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def client_id_of(anonymous_id: str | None, context: Mapping[str, Any] | None, contact_id: str) -> str:
    """GA's client id from the site's context, else the Segment anonymousId, else one per contact."""
    context = context or {}
    ga4 = context.get("ga4")
    for candidate in (ga4.get("client_id") if isinstance(ga4, Mapping) else None, context.get("clientId")):
        if isinstance(candidate, str) and candidate.strip():
            return candidate.strip()
    return anonymous_id or f"leadflow.{contact_id}"


def event_of(name: str, properties: Mapping[str, Any] | None) -> dict[str, Any]:
    """One GA4 event: a Segment e-commerce event as GA4's recommended one, any other made GA4-safe."""
    recommended = ECOMMERCE.get(name.strip())
    if recommended is not None:
        return {"name": recommended, "params": _ecommerce_params(name.strip(), properties or {})}
    return {"name": safe_name(name), "params": params_of(properties)}


def body_of(
    name: str,
    properties: Mapping[str, Any] | None,
    *,
    client_id: str,
    user_id: str | None,
    at: datetime,
) -> dict[str, Any]:
    """The Measurement Protocol body of one conversion."""
    body: dict[str, Any] = {
        "client_id": client_id,
        "timestamp_micros": int(at.timestamp() * 1_000_000),
        "events": [event_of(name, properties)],
    }
    if user_id:
        body["user_id"] = user_id
    return body


def _name_problem(kind: str, name: Any, reserved: frozenset[str]) -> str | None:
    if not isinstance(name, str) or not name:
        return f"{kind} name is required"
    if len(name) > MAX_NAME or not NAME.match(name):
        return f"{kind} name {name!r} is not a GA4 name (a letter, then letters, digits or _; ≤ 40)"
    if name in reserved or name.startswith(RESERVED_PREFIXES):
        return f"{kind} name {name!r} is reserved by GA4"
    return None


def problems(body: Mapping[str, Any]) -> list[str]:
    """What ``/debug/mp/collect`` would refuse in ``body`` (empty: valid)."""
    found: list[str] = []
    if not isinstance(body.get("client_id"), str) or not body["client_id"]:
        found.append("client_id is required")
    events = body.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= 25:
        return [*found, "events is a list of 1 to 25 events"]
    for event in events:
        if (problem := _name_problem("event", event.get("name"), RESERVED_EVENTS)) is not None:
            found.append(problem)
        params = event.get("params") or {}
        if len(params) > MAX_PARAMS:
            found.append(f"at most {MAX_PARAMS} params")
        for key, value in params.items():
            if (problem := _name_problem("param", key, frozenset())) is not None:
                found.append(problem)
            if isinstance(value, str) and len(value) > MAX_VALUE:
                found.append(f"param {key!r} is over {MAX_VALUE} characters")
        if "items" in params:
            found += _item_problems(params["items"])
    return found


def _item_problems(items: Any) -> list[str]:
    """GA4's rules for an event's ``items``: a list of at most 200 objects, each with an ``item_id`` or
    an ``item_name``, string values of at most 100 characters."""
    if not isinstance(items, list) or not all(isinstance(item, Mapping) for item in items):
        return ["items is a list of objects"]
    found = [f"at most {MAX_ITEMS} items"] if len(items) > MAX_ITEMS else []
    for index, item in enumerate(items):
        if not item.get("item_id") and not item.get("item_name"):
            found.append(f"item {index} needs an item_id or an item_name")
        found += [
            f"item {index}'s {key!r} is over {MAX_VALUE} characters"
            for key, value in item.items()
            if isinstance(value, str) and len(value) > MAX_VALUE
        ]
    return found


def _message(body: Any) -> str:
    messages = body.get("validationMessages") if isinstance(body, Mapping) else None
    return "; ".join(str(m.get("description", "")) for m in messages or [] if isinstance(m, Mapping))


class Ga4Vendor:
    name: ClassVar[str] = "ga4"
    batch_size: ClassVar[int] = 25
    rate: ClassVar[float] = 20.0
    burst: ClassVar[float] = 20.0
    kinds: ClassVar[frozenset[str]] = frozenset({CONVERSION})
    match_field: ClassVar[str] = ""
    rate_seen: RateSeen | None = None

    def __init__(
        self,
        credentials: Mapping[str, Any],
        host: str | None,
        network: Network,
        options: Mapping[str, Any] | None = None,  # none: every setting of this vendor is its credentials
    ) -> None:
        measurement_id, secret = credentials.get("measurement_id"), credentials.get("api_secret")
        if (
            not isinstance(measurement_id, str)
            or not measurement_id
            or not isinstance(secret, str)
            or not secret
        ):
            raise VendorError("ga4 needs credentials measurement_id and api_secret", retry=False)
        self._query = {"measurement_id": measurement_id, "api_secret": secret}
        self.rest = Rest("ga4", host or HOST, network, message_of=_message)

    def check(self) -> None:
        sample = {"client_id": "leadflow.check", "events": [{"name": "leadflow_check", "params": {}}]}
        answer = self.rest.call("POST", "/debug/mp/collect", json=sample, params=self._query)
        if message := _message(answer):
            raise VendorError(f"ga4 validation: {message}", retry=False)

    def calls(self, kind: str, records: Sequence[Record]) -> int:
        return len(records)

    def _send(self, record: Record) -> Written:
        body = dict(record.properties)
        found = problems(body)
        if found:
            return Written(record.local_id, FAILED, error="; ".join(found)[:300])
        self.rest.call("POST", "/mp/collect", json=body, params=self._query)
        return Written(record.local_id, OK)

    def write(self, kind: str, records: Sequence[Record]) -> list[Written]:
        if kind != CONVERSION:
            return [Written(r.local_id, FAILED, error=f"not synced by ga4: {kind}") for r in records]
        return each(records, self._send)

    def erase(self, remote_ids: Sequence[str]) -> list[Written]:
        return [Written(remote_id, OK, remote_id=remote_id) for remote_id in remote_ids]

    def changes(self, since: datetime | None, fields: Sequence[str], limit: int) -> list[Change]:
        return []

    def owners(self) -> dict[str, str]:
        return {}

    def properties(self, kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.rest.close()
