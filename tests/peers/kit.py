"""A local Kit (ConvertKit) API v4 for the connector tests: ``/v4/...`` with ``X-Kit-Api-Key`` (or an OAuth
``Authorization: Bearer`` token).

What it keeps, as the vendor does: subscribers (``POST /v4/subscribers`` creates or updates by e-mail:
201 when created, 200 when it existed, whose first name and fields it updates but never its state; unknown
custom field keys are ignored and named in ``warnings``), their state (active, inactive, cancelled,
bounced, complained; ``POST /v4/subscribers/{id}/unsubscribe`` cancels), custom fields (by ``key``, made
from the label), tags (``POST /v4/tags/{tag_id}/subscribers {"email_address"}`` tags an existing
subscriber: 201, or 200 when already tagged), bulk upserts (``POST /v4/bulk/subscribers``, OAuth
only, 100 answered at once, more with ``202``). Listing subscribers filters on ``email_address``,
``status`` (``active`` unless asked otherwise, as the vendor does: a cancelled subscriber is only found
with ``status=cancelled`` or ``all``), ``created_after`` and ``updated_after``, with cursor pagination.

Its habits: errors are ``{"errors": ["..."]}``: 401 for a bad key or token, 404 ``Not Found``, 422 for
bad data; 120 requests per rolling 60 s per API key (600 with OAuth), over it ``429``.

A test reads the state with :meth:`KitPeer.subscriber` / :meth:`tags_of`, changes a subscriber
"remotely" (say, unsubscribed in Kit) with :meth:`change_remotely`, and seeds fields with
:meth:`seed_fields`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.peers.saas import Answer, Call, SaasPeer, WindowLimit, route

API_KEY = "kit_0123456789abcdef0123456789abcdef"
OAUTH_TOKEN = "kit-oauth-token-0123456789"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STATES = ("active", "inactive", "cancelled", "bounced", "complained")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def errors(status: int, *messages: str) -> Answer:
    return Answer(status, {"errors": list(messages)})


def not_found() -> Answer:
    return errors(404, "Not Found")


def cursor(ident: int) -> str:
    return base64.b64encode(f"[{ident}]".encode()).decode()


def uncursor(value: str) -> int | None:
    try:
        return int(base64.b64decode(value).decode().strip("[]"))
    except ValueError:
        return None


@dataclass
class Subscriber:
    id: int
    email_address: str
    first_name: str | None
    state: str
    created_at: datetime
    updated_at: datetime
    fields: dict[str, str | None] = field(default_factory=dict)  # custom field key -> value
    tags: dict[int, datetime] = field(default_factory=dict)  # tag id -> tagged at
    canceled_at: datetime | None = None


class KitPeer(SaasPeer):
    """``KitPeer(api_key_limit=120, oauth_limit=600, window_s=60.0)``: the rolling windows per credential."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        oauth_token: str = OAUTH_TOKEN,
        api_key_limit: int = 120,
        oauth_limit: int = 600,
        window_s: float = 60.0,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self.api_key, self.oauth_token = api_key, oauth_token
        self.windows = {
            "key": WindowLimit(api_key_limit, window_s, rolling=True, clock=self.clock),
            "oauth": WindowLimit(oauth_limit, window_s, rolling=True, clock=self.clock),
        }
        self.subscribers: dict[int, Subscriber] = {}
        self.tags: dict[int, dict[str, Any]] = {}
        self.custom_fields: dict[int, dict[str, Any]] = {}
        self._ids = 0

    # ---- what a test asks or changes --------------------------------------------------------------
    def subscriber(self, email: str) -> Subscriber | None:
        with self.lock:
            return next((s for s in self.subscribers.values() if s.email_address == email.lower()), None)

    def count(self, state: str | None = None) -> int:
        with self.lock:
            return sum(1 for s in self.subscribers.values() if state is None or s.state == state)

    def tags_of(self, email: str) -> set[str]:
        with self.lock:
            found = self.subscriber(email)
            return {self.tags[tag_id]["name"] for tag_id in found.tags} if found else set()

    def seed_fields(self, *labels: str) -> dict[str, str]:
        """Create custom fields as an account owner would: label -> key."""
        with self.lock:
            return {label: self._add_field(label)["key"] for label in labels}

    def change_remotely(self, email: str, *, state: str | None = None, **changes: str) -> Subscriber:
        """Edit a subscriber as Kit (or the subscriber, unsubscribing) would: first_name=..., field key=..."""
        with self.lock:
            found = self.subscriber(email)
            assert found is not None, f"no subscriber {email}"
            if state is not None:
                found.state = state
                found.canceled_at = self.now() if state == "cancelled" else None
            for name, value in changes.items():
                if name == "first_name":
                    found.first_name = value
                else:
                    found.fields[name] = value
            found.updated_at = self.now()
            return found

    # ---- the vendor's habits ----------------------------------------------------------------------
    def _credential(self, call: Call) -> str | None:
        if "x-kit-api-key" in call.headers:
            return "key" if call.headers["x-kit-api-key"] == self.api_key else None
        scheme, _, token = call.headers.get("authorization", "").partition(" ")
        return "oauth" if scheme.lower() == "bearer" and token == self.oauth_token else None

    def auth(self, call: Call) -> Answer | None:
        if self._credential(call) is None:
            return errors(401, "The access token is invalid")
        return None

    def limited(self, call: Call) -> Answer | None:
        allowed, _remaining, _reset = self.windows[self._credential(call) or "key"].take()
        return None if allowed else self.too_many(call, 0)

    def not_found(self, call: Call) -> Answer:
        return not_found()

    def too_many(self, call: Call, retry_after: int) -> Answer:
        return errors(429, "Rate limit exceeded. Please wait and try again.")

    def server_error(self, call: Call, status: int) -> Answer:
        return errors(status, "Something went wrong. Please try again later.")

    # ---- subscribers ------------------------------------------------------------------------------
    @route("POST", r"/v4/subscribers")
    def upsert(self, call: Call) -> Answer:
        data = call.json() or {}
        email = str(data.get("email_address") or "").strip().lower()
        if not EMAIL.match(email):
            return errors(422, "Email address is invalid")
        state = data.get("state") or "active"
        if state not in STATES:
            return errors(422, "State is not included in the list")
        found = self.subscriber(email)
        created = found is None
        if found is None:
            now = self.now()
            found = Subscriber(self._next_id(), email, None, str(state), now, now)
            self.subscribers[found.id] = found
        if "first_name" in data:
            found.first_name = data["first_name"]
        warnings = self._set_fields(found, data.get("fields") or {})
        found.updated_at = self.now()
        return Answer(201 if created else 200, self._envelope(found, warnings))

    @route("POST", r"/v4/bulk/subscribers")
    def bulk_upsert(self, call: Call) -> Answer:
        """Up to 100 at once answered with the results; more answer ``202 {}`` (the vendor then posts the
        results to ``callback_url``: this peer applies them at once and posts nothing). OAuth only."""
        if self._credential(call) != "oauth":
            return errors(401, "The access token is invalid")
        items = (call.json() or {}).get("subscribers")
        if not isinstance(items, list) or not items:
            return errors(422, "No subscribers included for processing")
        done, failures = [], []
        for item in items:
            email = str(item.get("email_address") or "").strip().lower()
            if not EMAIL.match(email) or (item.get("state") or "active") not in STATES:
                failures.append({"subscriber": item, "errors": ["Email address is invalid"]})
                continue
            found = self.subscriber(email)
            if found is None:
                found = Subscriber(
                    self._next_id(), email, None, item.get("state") or "active", self.now(), self.now()
                )
                self.subscribers[found.id] = found
            if "first_name" in item:
                found.first_name, found.updated_at = item["first_name"], self.now()
            done.append({k: v for k, v in self._out(found, None).items() if k != "fields"})
        if len(items) > 100:
            return Answer(202, {})
        return Answer(200, {"subscribers": done, "failures": failures})

    @route("GET", r"/v4/subscribers")
    def search(self, call: Call) -> Answer:
        found = sorted(self.subscribers.values(), key=lambda s: s.id, reverse=call.arg("sort_order") != "asc")
        status = call.arg("status") or "active"
        if status != "all":
            found = [s for s in found if s.state == status]
        if emails := call.arg("email_address"):
            wanted = {e.strip().lower() for e in emails.split(",")}
            found = [s for s in found if s.email_address in wanted]
        for param, attr, newer in (
            ("created_after", "created_at", True),
            ("created_before", "created_at", False),
            ("updated_after", "updated_at", True),
            ("updated_before", "updated_at", False),
        ):
            if value := call.arg(param):
                moment = self._moment(value)
                if moment is None:
                    return errors(422, f"{param} is invalid")
                found = [s for s in found if (getattr(s, attr) > moment) == newer]
        return self._page(call, found, "subscribers", lambda s: self._out(s, call))

    @route("GET", r"/v4/subscribers/(?P<sid>\d+)")
    def read(self, call: Call, sid: str) -> Answer:
        found = self.subscribers.get(int(sid))
        return Answer(200, {"subscriber": self._out(found, call)}) if found else not_found()

    @route("PUT", r"/v4/subscribers/(?P<sid>\d+)")
    def update(self, call: Call, sid: str) -> Answer:
        found = self.subscribers.get(int(sid))
        if found is None:
            return not_found()
        data = call.json() or {}
        email = str(data.get("email_address") or "").strip().lower()
        if not EMAIL.match(email):
            return errors(422, "Email address is invalid")
        other = self.subscriber(email)
        if other is not None and other.id != found.id:
            return errors(422, "Email address has already been taken")
        found.email_address = email
        if "first_name" in data:
            found.first_name = data["first_name"]
        warnings = self._set_fields(found, data.get("fields") or {})
        found.updated_at = self.now()
        return Answer(200, self._envelope(found, warnings))

    @route("POST", r"/v4/subscribers/(?P<sid>\d+)/unsubscribe")
    def unsubscribe(self, call: Call, sid: str) -> Answer:
        found = self.subscribers.get(int(sid))
        if found is None:
            return not_found()
        found.state, found.canceled_at, found.updated_at = "cancelled", self.now(), self.now()
        return Answer(204)

    @route("GET", r"/v4/subscribers/(?P<sid>\d+)/tags")
    def subscriber_tags(self, call: Call, sid: str) -> Answer:
        found = self.subscribers.get(int(sid))
        if found is None:
            return not_found()
        tags = [{"id": t, "name": self.tags[t]["name"], "tagged_at": iso(at)} for t, at in found.tags.items()]
        return self._page(call, tags, "tags", lambda t: t)

    # ---- tags -------------------------------------------------------------------------------------
    @route("GET", r"/v4/tags")
    def list_tags(self, call: Call) -> Answer:
        return self._page(call, sorted(self.tags.values(), key=lambda t: t["id"]), "tags", lambda t: t)

    @route("POST", r"/v4/tags")
    def create_tag(self, call: Call) -> Answer:
        name = str((call.json() or {}).get("name") or "").strip()
        if not name:
            return errors(422, "Name can't be blank")
        existing = next((t for t in self.tags.values() if t["name"].lower() == name.lower()), None)
        if existing is not None:
            return Answer(200, {"tag": existing})
        tag_id = self._next_id()
        self.tags[tag_id] = {"id": tag_id, "name": name, "created_at": iso(self.now())}
        return Answer(201, {"tag": self.tags[tag_id]})

    @route("POST", r"/v4/tags/(?P<tag_id>\d+)/subscribers")
    def tag_by_email(self, call: Call, tag_id: str) -> Answer:
        email = str((call.json() or {}).get("email_address") or "").strip().lower()
        if not email:
            return errors(422, "Either subscriber id or email address is required to tag subscriber")
        return self._tag(int(tag_id), self.subscriber(email))

    @route("POST", r"/v4/tags/(?P<tag_id>\d+)/subscribers/(?P<sid>\d+)")
    def tag_by_id(self, call: Call, tag_id: str, sid: str) -> Answer:
        return self._tag(int(tag_id), self.subscribers.get(int(sid)))

    @route("DELETE", r"/v4/tags/(?P<tag_id>\d+)/subscribers")
    def untag_by_email(self, call: Call, tag_id: str) -> Answer:
        email = str((call.json() or {}).get("email_address") or "").strip().lower()
        if not email:
            return errors(
                422, "Either subscriber id or email address is required to remove tag from subscriber"
            )
        return self._untag(int(tag_id), self.subscriber(email))

    @route("DELETE", r"/v4/tags/(?P<tag_id>\d+)/subscribers/(?P<sid>\d+)")
    def untag_by_id(self, call: Call, tag_id: str, sid: str) -> Answer:
        return self._untag(int(tag_id), self.subscribers.get(int(sid)))

    @route("GET", r"/v4/tags/(?P<tag_id>\d+)/subscribers")
    def tag_subscribers(self, call: Call, tag_id: str) -> Answer:
        if int(tag_id) not in self.tags:
            return not_found()
        status = call.arg("status") or "active"
        found = [
            s
            for s in sorted(self.subscribers.values(), key=lambda s: s.id, reverse=True)
            if int(tag_id) in s.tags and status in ("all", s.state)
        ]
        return self._page(
            call,
            found,
            "subscribers",
            lambda s: {**self._out(s, call), "tagged_at": iso(s.tags[int(tag_id)])},
        )

    # ---- custom fields ----------------------------------------------------------------------------
    @route("GET", r"/v4/custom_fields")
    def list_fields(self, call: Call) -> Answer:
        return self._page(
            call, sorted(self.custom_fields.values(), key=lambda f: f["id"]), "custom_fields", lambda f: f
        )

    @route("POST", r"/v4/custom_fields")
    def create_field(self, call: Call) -> Answer:
        label = str((call.json() or {}).get("label") or "").strip()
        if not label:
            return errors(422, "Label can't be blank")
        if any(f["label"].lower() == label.lower() for f in self.custom_fields.values()):
            return errors(422, "Label has already been taken")
        return Answer(201, {"custom_field": self._add_field(label)})

    # ---- internals --------------------------------------------------------------------------------
    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _add_field(self, label: str) -> dict[str, Any]:
        field_id = self._next_id()
        key = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")
        self.custom_fields[field_id] = {
            "id": field_id,
            "name": f"ck_field_{field_id}_{key}",
            "key": key,
            "label": label,
        }
        return self.custom_fields[field_id]

    def _set_fields(self, subscriber: Subscriber, values: dict[str, Any]) -> list[str]:
        """Store the values of known keys; the unknown keys come back as warnings."""
        known = {f["key"] for f in self.custom_fields.values()}
        warnings = []
        for key, value in values.items():
            if key in known:
                subscriber.fields[key] = None if value is None else str(value)
            else:
                warnings.append(f"Custom field '{key}' does not exist and was ignored")
        return warnings

    def _tag(self, tag_id: int, subscriber: Subscriber | None) -> Answer:
        if tag_id not in self.tags or subscriber is None:
            return not_found()
        status = 200 if tag_id in subscriber.tags else 201
        subscriber.tags.setdefault(tag_id, self.now())
        body = {**self._out(subscriber, None), "tagged_at": iso(subscriber.tags[tag_id])}
        return Answer(status, {"subscriber": body})

    def _untag(self, tag_id: int, subscriber: Subscriber | None) -> Answer:
        if tag_id not in self.tags or subscriber is None:
            return not_found()
        subscriber.tags.pop(tag_id, None)
        return Answer(204)

    def _moment(self, value: str) -> datetime | None:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=self.now().tzinfo)

    def _page(self, call: Call, items: list[Any], name: str, render: Any) -> Answer:
        ids = [item.id if isinstance(item, Subscriber) else item["id"] for item in items]
        start = 0
        if after := call.arg("after"):
            ident = uncursor(after)
            start = ids.index(ident) + 1 if ident in ids else len(ids)
        per_page = min(int(call.arg("per_page") or 500), 1000)
        page = items[start : start + per_page]
        page_ids = ids[start : start + per_page]
        pagination = {
            "has_previous_page": start > 0,
            "has_next_page": start + per_page < len(items),
            "start_cursor": cursor(page_ids[0]) if page_ids else None,
            "end_cursor": cursor(page_ids[-1]) if page_ids else None,
            "per_page": per_page,
        }
        if call.arg("include_total_count") == "true":
            pagination["total_count"] = len(items)
        return Answer(200, {name: [render(item) for item in page], "pagination": pagination})

    def _envelope(self, subscriber: Subscriber, warnings: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"subscriber": self._out(subscriber, None)}
        if warnings:
            body["warnings"] = warnings
        return body

    def _out(self, subscriber: Subscriber, call: Call | None) -> dict[str, Any]:
        keys = [f["key"] for f in sorted(self.custom_fields.values(), key=lambda f: f["id"])]
        out: dict[str, Any] = {
            "id": subscriber.id,
            "first_name": subscriber.first_name,
            "email_address": subscriber.email_address,
            "state": subscriber.state,
            "created_at": iso(subscriber.created_at),
            "fields": {key: subscriber.fields.get(key) for key in keys},
        }
        include = set((call.arg("include") or "").split(",")) if call else set()
        if "tags" in include:
            out["tags"] = [{"id": t, "name": self.tags[t]["name"]} for t in subscriber.tags]
        if "canceled_at" in include:
            out["canceled_at"] = iso(subscriber.canceled_at) if subscriber.canceled_at else None
        return out
