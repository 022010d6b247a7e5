"""Kit (ConvertKit API v4, ``httpx``): subscribers, custom fields, tags and unsubscribes.

- People: a first write upserts by email (``POST /v4/subscribers``: created, or the existing one
  updated); a record written before goes by its id (``PUT /v4/subscribers/{id}``), so an email change
  keeps the same subscriber (one gone from Kit is upserted again by email).
- Remote fields of the mapping: ``email_address``, ``first_name``; ``state`` (leadflow's
  ``subscription_status``: ``unsubscribed`` cancels the subscriber with
  ``POST /v4/subscribers/{id}/unsubscribe``; a write never re-activates one cancelled in Kit);
  ``tags`` (a list or comma-separated names: a tag created when missing, then
  ``POST /v4/tags/{id}/subscribers`` by email); any other name is a custom field, found by its key or
  label and created when missing (``POST /v4/custom_fields``), ids cached per connector.
- Pull: ``GET /v4/subscribers?updated_after=&status=all``. Kit's subscriber carries no modification
  time, so a change is dated by Kit's own clock (the answer's ``Date``) when it is read; ``cancelled``,
  ``bounced`` and ``complained`` read back as ``unsubscribed``, ``active`` as ``subscribed``.
- Erasure: Kit v4 has no delete. The subscriber is **anonymised** — its address replaced by an
  anonymous one, first name and every custom field cleared — and unsubscribed; the erasure's audit row
  says so (``anonymised``).
- Backfills go one subscriber at a time: Kit's bulk endpoint needs OAuth and answers large batches
  through a callback.
- Limits: 120 requests per rolling 60 s per API key (the bucket earns 1.8 a second and holds 10, so
  no 60-second window exceeds 118); ``429`` (no ``Retry-After``) waits :data:`BUSY_WAIT`; ``422`` is
  ``FAILED`` with Kit's message; ``401`` a refused credential.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from leadflow.connectors.rest import Rest, each, names_of, server_time, text_of
from leadflow.connectors.vendor import (
    CONTACT,
    FAILED,
    OK,
    Change,
    Network,
    RateSeen,
    Record,
    VendorError,
    Written,
)

HOST = "https://api.kit.com"
EMAIL, FIRST, STATE, TAGS = "email_address", "first_name", "state", "tags"
BUSY_WAIT = timedelta(seconds=10)
OVERLAP = timedelta(seconds=2)  # a pull re-reads the seconds around its cursor (Date is to the second)
PAGES = 20
READ_BACK = {
    "active": "subscribed",
    "cancelled": "unsubscribed",
    "bounced": "unsubscribed",
    "complained": "unsubscribed",
}
ANONYMISED = "anonymised: Kit v4 has no delete (address replaced, fields cleared, unsubscribed)"
DEFAULT_MAPPING: list[dict[str, Any]] = [
    {"from": "email", "to": EMAIL},
    {"from": "first_name", "to": FIRST},
    {"from": "subscription_status", "to": STATE},
]


def _message(body: Any) -> str:
    if isinstance(body, Mapping) and isinstance(body.get("errors"), list):
        return "; ".join(str(e) for e in body["errors"])
    return ""


class KitVendor:
    """One Kit account: ``{"api_key"}`` (v4 API key) or ``{"access_token"}`` (OAuth)."""

    name: ClassVar[str] = "kit"
    batch_size: ClassVar[int] = 5
    rate: ClassVar[float] = 1.8
    burst: ClassVar[float] = 10.0
    kinds: ClassVar[frozenset[str]] = frozenset({CONTACT})
    match_field: ClassVar[str] = EMAIL

    def __init__(
        self,
        credentials: Mapping[str, Any],
        host: str | None,
        network: Network,
        options: Mapping[str, Any] | None = None,  # none: every setting of this vendor is its credentials
    ) -> None:
        key, token = credentials.get("api_key"), credentials.get("access_token")
        if isinstance(key, str) and key:
            headers = {"X-Kit-Api-Key": key}
        elif isinstance(token, str) and token:
            headers = {"Authorization": f"Bearer {token}"}
        else:
            raise VendorError("Kit needs an api_key or an access_token", retry=False)
        self.rate_seen: RateSeen | None = None
        self.http = Rest(
            "Kit",
            host or HOST,
            network,
            headers=headers,
            max_connections=1,
            default_wait=BUSY_WAIT,
            message_of=_message,
        )
        self._fields: dict[str, str] | None = None  # key and label (lower-cased) → key
        self._tags: dict[str, str] = {}  # name (lower-cased) → tag id

    # --- ids looked up once ---------------------------------------------------------------------------

    def _pages(self, path: str, name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params: dict[str, Any] = {"per_page": 1000}
        for _ in range(PAGES):
            body = self.http.call("GET", path, params=params)
            found += body.get(name) or []
            paging = body.get("pagination") or {}
            if not paging.get("has_next_page"):
                break
            params = {**params, "after": paging.get("end_cursor")}
        return found

    def field_keys(self, names: Sequence[str]) -> dict[str, str]:
        """The custom field key of each name (a key or a label), the field created when missing."""
        if self._fields is None:
            self._fields = {}
            for item in self._pages("/v4/custom_fields", "custom_fields"):
                self._fields[str(item["key"]).lower()] = str(item["key"])
                self._fields[str(item["label"]).lower()] = str(item["key"])
        for name in names:
            if name.lower() not in self._fields:
                made = self.http.call("POST", "/v4/custom_fields", json={"label": name})
                self._fields[name.lower()] = str(made["custom_field"]["key"])
        return {name: self._fields[name.lower()] for name in names}

    def tag_ids(self, names: Sequence[str]) -> dict[str, str]:
        if any(name.lower() not in self._tags for name in names):
            for item in self._pages("/v4/tags", "tags"):
                self._tags[str(item["name"]).lower()] = str(item["id"])
        for name in names:
            if name.lower() not in self._tags:
                made = self.http.call("POST", "/v4/tags", json={"name": name})
                self._tags[name.lower()] = str(made["tag"]["id"])
        return {name: self._tags[name.lower()] for name in names}

    # --- the interface ---------------------------------------------------------------------------------

    def check(self) -> None:
        self.http.call("GET", "/v4/subscribers", params={"per_page": 1})

    def calls(self, kind: str, records: Sequence[Record]) -> int:
        lookup = int(self._fields is None)
        return lookup + sum(
            1 + len(names_of(r.properties.get(TAGS))) + int(str(r.properties.get(STATE)) == "unsubscribed")
            for r in records
        )

    def write(self, kind: str, records: Sequence[Record]) -> list[Written]:
        if kind != CONTACT:
            return [Written(r.local_id, FAILED, error="not synced by Kit") for r in records]
        return each(records, self._subscriber)

    def _body(self, record: Record) -> dict[str, Any]:
        props = record.properties
        custom = [k for k in props if k not in (EMAIL, FIRST, STATE, TAGS)]
        keys = self.field_keys(custom) if custom else {}
        body: dict[str, Any] = {EMAIL: str(props.get(EMAIL) or record.match or "")}
        if FIRST in props:
            body[FIRST] = text_of(props[FIRST])
        if custom:
            body["fields"] = {keys[k]: text_of(props[k]) for k in custom}
        return body

    def _subscriber(self, record: Record) -> Written:
        body = self._body(record)
        if not body[EMAIL]:
            return Written(record.local_id, FAILED, error="no email")
        answer = None
        if record.remote_id:
            answer = self.http.call("PUT", f"/v4/subscribers/{record.remote_id}", json=body, missing_ok=True)
        if answer is None:  # someone unsubscribed arrives inactive (no welcome sequence), then cancelled
            fresh = (
                {**body, STATE: "inactive"} if str(record.properties.get(STATE)) == "unsubscribed" else body
            )
            answer = self.http.call("POST", "/v4/subscribers", json=fresh)
        subscriber = answer["subscriber"]
        remote_id = str(subscriber["id"])
        for tag_id in self.tag_ids(names_of(record.properties.get(TAGS))).values():
            self.http.call("POST", f"/v4/tags/{tag_id}/subscribers", json={EMAIL: body[EMAIL]})
        if str(record.properties.get(STATE)) == "unsubscribed" and subscriber.get(STATE) in (
            "active",
            "inactive",
        ):
            self.http.call("POST", f"/v4/subscribers/{remote_id}/unsubscribe", json={})
        return Written(record.local_id, OK, remote_id, server_time(self.http.last_headers))

    def erase(self, remote_ids: Sequence[str]) -> list[Written]:
        """Anonymise (Kit v4 has no delete) and unsubscribe; recorded as an anonymisation."""
        done = []
        self.field_keys([])  # every custom field, to clear them all
        keys = sorted(set((self._fields or {}).values()))
        for remote_id in remote_ids:
            body = {
                EMAIL: f"erased-{remote_id}@anonymised.invalid",
                FIRST: "",
                "fields": dict.fromkeys(keys),
            }
            if self.http.call("PUT", f"/v4/subscribers/{remote_id}", json=body, missing_ok=True) is not None:
                self.http.call("POST", f"/v4/subscribers/{remote_id}/unsubscribe", json={}, missing_ok=True)
            done.append(Written(remote_id, OK, remote_id, error=ANONYMISED))
        return done

    def changes(self, since: datetime | None, fields: Sequence[str], limit: int) -> list[Change]:
        params: dict[str, Any] = {"status": "all", "sort_order": "asc", "per_page": min(max(limit, 1), 1000)}
        if since is not None:
            moment = (since - OVERLAP).astimezone(UTC)
            params["updated_after"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        custom = [f for f in fields if f not in (EMAIL, FIRST, STATE, TAGS)]
        keys = self.field_keys(custom) if custom else {}
        found: list[Change] = []
        for _ in range(PAGES):
            body = self.http.call("GET", "/v4/subscribers", params=params)
            seen = server_time(self.http.last_headers) or datetime.now(UTC)
            subscribers = body.get("subscribers") or []
            for item in subscribers:
                values = item.get("fields") or {}
                props: dict[str, Any] = {EMAIL: item.get(EMAIL), FIRST: item.get(FIRST)}
                props.update({name: values.get(key) for name, key in keys.items()})
                state = READ_BACK.get(str(item.get(STATE)))
                if state is not None:
                    props[STATE] = state
                email = item.get(EMAIL)
                found.append(Change(str(item["id"]), email if isinstance(email, str) else None, props, seen))
            paging = body.get("pagination") or {}
            if not paging.get("has_next_page"):
                break
            params = {**params, "after": paging.get("end_cursor")}
        return found

    def owners(self) -> dict[str, str]:
        return {}

    def properties(self, kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.http.close()
