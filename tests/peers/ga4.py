"""A local Google Analytics 4 Measurement Protocol for the GA4 connector's tests.

``POST /mp/collect?measurement_id=&api_secret=`` answers ``204`` whatever the body (as Google does: the
protocol returns no error codes) and keeps the hits whose body is valid; ``POST /debug/mp/collect``
validates the same body and answers ``{"validationMessages": [...]}`` (empty when valid), keeping
nothing — as the validation server does, which checks neither the measurement id nor the api secret.

The rules checked (Google's documented Measurement Protocol limits; each message has ``fieldPath``,
``description`` and ``validationCode``): a JSON object with a non-empty string ``client_id``
(``VALUE_REQUIRED``); ``events`` a list of 1 to 25 (``EXCEEDED_MAX_ENTITIES``); each event's ``name``
of at most 40 characters, a letter first then letters, digits or ``_`` (``NAME_INVALID``), neither a
reserved event name nor with a reserved prefix (``_``, ``firebase_``, ``ga_``, ``google_``:
``NAME_RESERVED``); at most 25 ``params`` (``EXCEEDED_MAX_ENTITIES``) whose names follow the same
rules and whose string values are at most 100 characters (``VALUE_OUT_OF_BOUNDS``); ``items`` a list
of at most 200 objects (``VALUE_INVALID``, ``EXCEEDED_MAX_ENTITIES``), each with an ``item_id`` or an
``item_name`` (``VALUE_REQUIRED``) and string values of at most 100 characters; a
``timestamp_micros`` an integer when given (``VALUE_INVALID``); the body at most 130,000 bytes.

:attr:`Ga4Peer.hits` are the valid events received on ``/mp/collect``, with their measurement id,
api secret and client id; :attr:`Ga4Peer.rejected` the bodies it threw away (Google would drop them
silently).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tests.peers.saas import Answer, Call, SaasPeer, route

MEASUREMENT_ID = "G-TEST123456"
API_SECRET = "mp-secret-0123456789"
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
PREFIXES = ("_", "firebase_", "ga_", "google_")
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
MAX_EVENTS = MAX_PARAMS = 25
MAX_NAME = 40
MAX_VALUE = 100
MAX_BYTES = 130_000
MAX_ITEMS = 200


def _message(path: str, description: str, code: str) -> dict[str, str]:
    return {"fieldPath": path, "description": description, "validationCode": code}


def _name(kind: str, path: str, name: Any, reserved: frozenset[str]) -> list[dict[str, str]]:
    if not isinstance(name, str) or not name:
        return [_message(path, f"{kind} name is required.", "VALUE_REQUIRED")]
    if len(name) > MAX_NAME:
        return [_message(path, f"{kind} name [{name}] is over {MAX_NAME} characters.", "NAME_INVALID")]
    if name in reserved or name.startswith(PREFIXES):
        return [_message(path, f"{kind} name [{name}] is reserved.", "NAME_RESERVED")]
    if not NAME.match(name):
        return [
            _message(
                path,
                f"{kind} has invalid name [{name}]. Names must start with an alphabetic character "
                "and hold only letters, digits and underscores.",
                "NAME_INVALID",
            )
        ]
    return []


def validate(raw: bytes) -> list[dict[str, str]]:
    """The validation messages of a body, as ``/debug/mp/collect`` answers them."""
    if len(raw) > MAX_BYTES:
        return [_message("", f"The body is over {MAX_BYTES} bytes.", "VALUE_OUT_OF_BOUNDS")]
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        return [_message("", "The body is not JSON.", "VALUE_INVALID")]
    if not isinstance(body, dict):
        return [_message("", "The body is a JSON object.", "VALUE_INVALID")]
    found: list[dict[str, str]] = []
    client = body.get("client_id")
    if not isinstance(client, str) or not client:
        found.append(_message("client_id", "client_id is required.", "VALUE_REQUIRED"))
    stamp = body.get("timestamp_micros")
    if stamp is not None and not (isinstance(stamp, int) or (isinstance(stamp, str) and stamp.isdigit())):
        found.append(_message("timestamp_micros", "timestamp_micros is an integer.", "VALUE_INVALID"))
    events = body.get("events")
    if not isinstance(events, list) or not events:
        return [*found, _message("events", "events is required.", "VALUE_REQUIRED")]
    if len(events) > MAX_EVENTS:
        found.append(_message("events", f"At most {MAX_EVENTS} events.", "EXCEEDED_MAX_ENTITIES"))
    for index, event in enumerate(events):
        where = f"events[{index}]"
        if not isinstance(event, dict):
            found.append(_message(where, "An event is an object.", "VALUE_INVALID"))
            continue
        found += _name(f"Event at index: [{index}]", f"{where}.name", event.get("name"), RESERVED_EVENTS)
        params = event.get("params") or {}
        if not isinstance(params, dict):
            found.append(_message(f"{where}.params", "params is an object.", "VALUE_INVALID"))
            continue
        if len(params) > MAX_PARAMS:
            found.append(
                _message(f"{where}.params", f"At most {MAX_PARAMS} params.", "EXCEEDED_MAX_ENTITIES")
            )
        if "items" in params:
            found += _items(f"{where}.params.items", params["items"])
        for key, value in params.items():
            found += _name("Param", f"{where}.params.{key}", key, frozenset())
            if isinstance(value, str) and len(value) > MAX_VALUE:
                found.append(
                    _message(
                        f"{where}.params.{key}",
                        f"Param [{key}] value is over {MAX_VALUE} characters.",
                        "VALUE_OUT_OF_BOUNDS",
                    )
                )
    return found


def _items(path: str, items: Any) -> list[dict[str, str]]:
    """An event's ``items``: a list of at most 200 objects, each with ``item_id`` or ``item_name``."""
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        return [_message(path, "items is a list of objects.", "VALUE_INVALID")]
    found = []
    if len(items) > MAX_ITEMS:
        found.append(_message(path, f"At most {MAX_ITEMS} items.", "EXCEEDED_MAX_ENTITIES"))
    for index, item in enumerate(items):
        if not item.get("item_id") and not item.get("item_name"):
            found.append(
                _message(f"{path}[{index}]", "Item requires an item_id or an item_name.", "VALUE_REQUIRED")
            )
        for key, value in item.items():
            if isinstance(value, str) and len(value) > MAX_VALUE:
                found.append(
                    _message(
                        f"{path}[{index}].{key}", f"Item param [{key}] is too long.", "VALUE_OUT_OF_BOUNDS"
                    )
                )
    return found


@dataclass(frozen=True)
class Hit:
    measurement_id: str | None
    api_secret: str | None
    client_id: str
    user_id: str | None
    name: str
    params: dict[str, Any]
    timestamp_micros: int | None


class Ga4Peer(SaasPeer):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hits: list[Hit] = []
        self.rejected: list[bytes] = []

    @route("POST", r"/mp/collect")
    def collect(self, call: Call) -> Answer:
        if validate(call.body):
            self.rejected.append(call.body)
            return Answer(204)
        body = json.loads(call.body)
        stamp = body.get("timestamp_micros")
        for event in body["events"]:
            self.hits.append(
                Hit(
                    call.arg("measurement_id"),
                    call.arg("api_secret"),
                    body["client_id"],
                    body.get("user_id"),
                    event["name"],
                    dict(event.get("params") or {}),
                    int(stamp) if stamp is not None else None,
                )
            )
        return Answer(204)

    @route("POST", r"/debug/mp/collect")
    def debug(self, call: Call) -> Answer:
        return Answer(200, {"validationMessages": validate(call.body)})
