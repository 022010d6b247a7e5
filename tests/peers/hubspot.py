"""A HubSpot CRM peer (v3 objects, v4 associations, owners, search, GDPR delete) on the shared base.

What it keeps: contacts (unique by lower-cased email), companies, deals, notes and calls, associations,
owners, and the ids GDPR-deleted; a test counts records with :meth:`HubSpotPeer.records` and reads one
with :meth:`HubSpotPeer.contact_by_email`. Its habits, after HubSpot's documentation
(../shared/specs/protocols.md, "CRMs and email platforms"):

- ``Authorization: Bearer <token>`` (else ``401 INVALID_AUTHENTICATION``);
- batch inputs: at most 100, else ``400 VALIDATION_ERROR`` "The maximum number of inputs supported in a
  batch is 100"; creating a contact whose email exists → ``409 CONFLICT`` "Contact already exists.
  Existing ID: N"; a batch update naming an unknown id → ``404 OBJECT_NOT_FOUND`` for the batch;
- limits: ``limit`` requests per ``window_s`` (100 / 10 s) and a daily cap; every answer carries
  ``X-HubSpot-RateLimit-Max``, ``-Remaining``, ``-Interval-Milliseconds``, ``-Daily``,
  ``-Daily-Remaining``, ``-Secondly`` and ``-Secondly-Remaining``; over → ``429 {"status": "error",
  "errorType": "RATE_LIMIT", "policyName": "SECONDLY" | "DAILY"}`` (an injected burst too);
- ``lastmodifieddate`` (and ``updatedAt``) move on every write; :meth:`HubSpotPeer.edit` changes a contact
  as a HubSpot user would (for pulls).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tests.peers.saas import Answer, Call, SaasPeer, WindowLimit, route

TOKEN = "pat-na1-peer-token"
MAX_INPUTS = 100
OBJECTS = ("contacts", "companies", "deals", "notes", "calls")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse(value: Any) -> datetime | None:
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _error(status: int, category: str, message: str) -> Answer:
    return Answer(
        status, {"status": "error", "category": category, "message": message, "correlationId": "peer"}
    )


class HubSpotPeer(SaasPeer):
    def __init__(
        self,
        *,
        token: str = TOKEN,
        limit: int = 100,
        window_s: float = 10.0,
        daily: int = 250_000,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"seed": seed, "now": now}
        if clock is not None:
            kwargs["clock"] = clock
        super().__init__(**kwargs)
        self.token = token
        self.window = WindowLimit(limit, window_s, clock=self.clock)
        self.daily = daily
        self.daily_used = 0
        self.store: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECTS}
        self.associations: list[tuple[str, str, str, str]] = []  # (from type, from id, to type, to id)
        self.owners: list[dict[str, Any]] = []
        self.erased: list[str] = []
        self.deal_stages: set[str] | None = None  # the pipeline's stages, when a test narrows them
        self.properties: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in OBJECTS}  # custom ones
        self.groups: dict[str, set[str]] = {name: set() for name in OBJECTS}
        self._ids = itertools.count(1001)

    # --- what a test asks -------------------------------------------------------------------------------
    def records(self, kind: str = "contacts") -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.store[kind].values() if not r["archived"]]

    def contact_by_email(self, email: str) -> dict[str, Any] | None:
        with self.lock:
            return self._by_email(email)

    def add_owner(self, email: str, first: str = "Olivia", last: str = "Owner") -> str:
        with self.lock:
            owner_id = str(next(self._ids))
            self.owners.append(
                {
                    "id": owner_id,
                    "email": email,
                    "firstName": first,
                    "lastName": last,
                    "userId": int(owner_id),
                    "archived": False,
                }
            )
            return owner_id

    def edit(self, contact_id: str, properties: dict[str, Any]) -> None:
        """A change made in HubSpot by one of its users."""
        with self.lock:
            self._write("contacts", self.store["contacts"][contact_id], properties)

    def associated(self, from_type: str, from_id: str, to_type: str) -> list[str]:
        with self.lock:
            return [
                t for f, i, tt, t in self.associations if f == from_type and i == from_id and tt == to_type
            ]

    # --- habits ---------------------------------------------------------------------------------------------
    def auth(self, call: Call) -> Answer | None:
        if call.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "INVALID_AUTHENTICATION", "Authentication credentials not found.")
        return None

    def _headers(self, remaining: int, reset_s: float) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Max": str(self.window.limit),
            "X-HubSpot-RateLimit-Remaining": str(remaining),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window.window_s * 1000)),
            "X-HubSpot-RateLimit-Daily": str(self.daily),
            "X-HubSpot-RateLimit-Daily-Remaining": str(max(0, self.daily - self.daily_used)),
            "X-HubSpot-RateLimit-Secondly": str(max(1, int(self.window.limit / self.window.window_s))),
            "X-HubSpot-RateLimit-Secondly-Remaining": str(
                max(0, min(remaining, int(self.window.limit / self.window.window_s)))
            ),
        }

    def limited(self, call: Call) -> Answer | None:
        if self.daily_used >= self.daily:
            return self._rate_limited("DAILY", 3600)
        allowed, remaining, reset_s = self.window.take()
        call.meta["rate"] = (remaining, reset_s)
        if not allowed:
            return self._rate_limited("SECONDLY", max(1, round(reset_s)))
        self.daily_used += 1
        return None

    def rate_headers(self, call: Call) -> dict[str, str]:
        remaining, reset_s = call.meta.get("rate") or self.window.peek()
        return self._headers(remaining, reset_s)

    def _rate_limited(self, policy: str, retry_after: int) -> Answer:
        body = {
            "status": "error",
            "message": f"You have reached your {policy.lower()} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": "peer",
            "policyName": policy,
        }
        return Answer(429, body, {"Retry-After": str(retry_after)})

    def too_many(self, call: Call, retry_after: int) -> Answer:
        return self._rate_limited("SECONDLY", retry_after)

    def server_error(self, call: Call, status: int) -> Answer:
        return _error(status, "INTERNAL_ERROR", "internal error")

    def not_found(self, call: Call) -> Answer:
        return _error(404, "OBJECT_NOT_FOUND", f"no route {call.method} {call.path}")

    # --- state --------------------------------------------------------------------------------------------
    def _by_email(self, email: str | None) -> dict[str, Any] | None:
        wanted = (email or "").lower()
        for record in self.store["contacts"].values():
            if not record["archived"] and str(record["properties"].get("email", "")).lower() == wanted:
                return record
        return None

    def _write(self, kind: str, record: dict[str, Any], properties: dict[str, Any]) -> None:
        stamp = _iso(self.now())
        given = {k: (None if v is None else str(v)) for k, v in properties.items()}
        if kind == "contacts" and given.get("email"):
            given["email"] = given["email"].lower()
        record["properties"].update(given)
        record["properties"]["lastmodifieddate" if kind == "contacts" else "hs_lastmodifieddate"] = stamp
        record["updatedAt"] = stamp

    def _new(self, kind: str, properties: dict[str, Any]) -> dict[str, Any]:
        record_id = str(next(self._ids))
        stamp = _iso(self.now())
        record = {
            "id": record_id,
            "properties": {"hs_object_id": record_id, "createdate": stamp},
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }
        self.store[kind][record_id] = record
        self._write(kind, record, properties)
        return record

    @staticmethod
    def _view(record: dict[str, Any], new: bool | None = None) -> dict[str, Any]:
        found = dict(record.items())
        found["properties"] = dict(record["properties"])
        if new is not None:
            found["new"] = new
        return found

    def _batch(self, results: list[dict[str, Any]]) -> Answer:
        stamp = _iso(self.now())
        return Answer(
            200,
            {
                "status": "COMPLETE",
                "results": results,
                "errors": [],
                "numErrors": 0,
                "startedAt": stamp,
                "completedAt": stamp,
            },
        )

    @staticmethod
    def _inputs(call: Call) -> list[dict[str, Any]] | Answer:
        body = call.json() or {}
        inputs = body.get("inputs")
        if not isinstance(inputs, list):
            return _error(400, "VALIDATION_ERROR", "inputs is required")
        if len(inputs) > MAX_INPUTS:
            return _error(
                400,
                "VALIDATION_ERROR",
                f"The maximum number of inputs supported in a batch is {MAX_INPUTS}. Received {len(inputs)}.",
            )
        return inputs

    def _associate_inline(self, kind: str, record_id: str, item: dict[str, Any]) -> None:
        for link in item.get("associations") or []:
            target = str((link.get("to") or {}).get("id"))
            self.associations.append((kind, record_id, "contacts", target))

    # --- routes ---------------------------------------------------------------------------------------------
    @route("GET", r"/crm/v3/objects/(?P<kind>contacts|companies|deals)")
    def get_page(self, call: Call, kind: str) -> Answer:
        limit = int(call.arg("limit", "10") or 10)
        return Answer(200, {"results": [self._view(r) for r in self.records(kind)[:limit]]})

    @route("GET", r"/crm/v3/objects/(?P<kind>contacts|companies|deals)/(?P<record_id>\d+)")
    def get_one(self, call: Call, kind: str, record_id: str) -> Answer:
        record = self.store[kind].get(record_id)
        if record is None or record["archived"]:
            return _error(404, "OBJECT_NOT_FOUND", "Object not found.")
        return Answer(200, self._view(record))

    @route("POST", r"/crm/v3/objects/contacts")
    def create_contact(self, call: Call) -> Answer:
        properties = (call.json() or {}).get("properties") or {}
        existing = self._by_email(properties.get("email"))
        if existing is not None:
            return _error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing['id']}")
        return Answer(201, self._view(self._new("contacts", properties)))

    @route("POST", r"/crm/v3/objects/(?P<kind>contacts|companies|deals|notes|calls)/batch/create")
    def batch_create(self, call: Call, kind: str) -> Answer:
        inputs = self._inputs(call)
        if isinstance(inputs, Answer):
            return inputs
        if kind == "contacts":
            for item in inputs:
                existing = self._by_email((item.get("properties") or {}).get("email"))
                if existing is not None:
                    return _error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing['id']}")
        results = []
        for item in inputs:
            record = self._new(kind, item.get("properties") or {})
            self._associate_inline(kind, record["id"], item)
            results.append(self._view(record))
        return Answer(201, {**self._batch(results).body})

    @route("POST", r"/crm/v3/objects/(?P<kind>contacts|companies|deals|notes|calls)/batch/upsert")
    def batch_upsert(self, call: Call, kind: str) -> Answer:
        """Upsert by a unique property (``idProperty``): ``email`` for contacts, or a custom property
        created with ``hasUniqueValue`` on that object (``POST /crm/v3/properties/{type}``)."""
        inputs = self._inputs(call)
        if isinstance(inputs, Answer):
            return inputs
        results = []
        for item in inputs:
            unique = item.get("idProperty")
            allowed = {n for n, p in self.properties[kind].items() if p.get("hasUniqueValue")}
            allowed |= {"email"} if kind == "contacts" else set()
            if unique not in allowed or not item.get("id"):
                return _error(400, "VALIDATION_ERROR", f"idProperty must be a unique property of {kind}")
            value = str(item["id"]).lower() if unique == "email" else str(item["id"])
            properties = {**(item.get("properties") or {}), str(unique): value}
            stage = properties.get("dealstage")
            if kind == "deals" and self.deal_stages is not None and stage not in self.deal_stages:
                return _error(
                    400,
                    "VALIDATION_ERROR",
                    f'Property values were not valid: [{{"isValid":false,"message":"{stage} was not one '
                    f'of the allowed options","name":"dealstage"}}]',
                )
            record = self._by_email(value) if unique == "email" else self._by_unique(kind, unique, value)
            new = record is None
            if record is None:
                record = self._new(kind, properties)
            else:
                self._write(kind, record, properties)
            results.append(self._view(record, new))
        return self._batch(results)

    def _by_unique(self, kind: str, name: str, value: str) -> dict[str, Any] | None:
        for record in self.store[kind].values():
            if not record["archived"] and record["properties"].get(name) == value:
                return record
        return None

    @route("POST", r"/crm/v3/objects/(?P<kind>contacts|companies|deals|notes|calls)/batch/update")
    def batch_update(self, call: Call, kind: str) -> Answer:
        inputs = self._inputs(call)
        if isinstance(inputs, Answer):
            return inputs
        for item in inputs:
            record = self.store[kind].get(str(item.get("id")))
            if record is None or record["archived"]:
                return _error(
                    404,
                    "OBJECT_NOT_FOUND",
                    f"Could not get some {kind} objects, they may be deleted or not exist.",
                )
            email = (item.get("properties") or {}).get("email")
            other = self._by_email(email) if kind == "contacts" and email else None
            if other is not None and other["id"] != record["id"]:
                return _error(
                    409,
                    "CONFLICT",
                    f"A contact with the email '{email}' already exists. Existing ID: {other['id']}",
                )
        results = []
        for item in inputs:
            record = self.store[kind][str(item["id"])]
            self._write(kind, record, item.get("properties") or {})
            results.append(self._view(record))
        return self._batch(results)

    @route("POST", r"/crm/v3/objects/(?P<kind>contacts|companies|deals)/batch/read")
    def batch_read(self, call: Call, kind: str) -> Answer:
        inputs = self._inputs(call)
        if isinstance(inputs, Answer):
            return inputs
        found = [self.store[kind].get(str(item.get("id"))) for item in inputs]
        return self._batch([self._view(r) for r in found if r is not None and not r["archived"]])

    @route("POST", r"/crm/v3/objects/contacts/search")
    def search(self, call: Call) -> Answer:
        body = call.json() or {}
        records = [r for r in self.store["contacts"].values() if not r["archived"]]
        for group in body.get("filterGroups") or []:
            for rule in group.get("filters") or []:
                if rule.get("propertyName") == "lastmodifieddate" and rule.get("operator") in ("GT", "GTE"):
                    bound = _parse(rule.get("value"))
                    if bound is None:
                        return _error(400, "VALIDATION_ERROR", "lastmodifieddate needs a time")
                    strict = rule["operator"] == "GT"
                    records = [
                        r
                        for r in records
                        if (m := _parse(r["properties"]["lastmodifieddate"])) is not None
                        and (m > bound if strict else m >= bound)
                    ]
        records.sort(key=lambda r: (r["properties"]["lastmodifieddate"], int(r["id"])))
        limit = min(int(body.get("limit") or 10), 200)
        wanted = body.get("properties") or []
        results = []
        for record in records[:limit]:
            view = self._view(record)
            if wanted:
                view["properties"] = {
                    k: v for k, v in view["properties"].items() if k in wanted or k == "hs_object_id"
                }
            results.append(view)
        return Answer(200, {"total": len(records), "results": results})

    @route("POST", r"/crm/v3/objects/contacts/gdpr-delete")
    def gdpr_delete(self, call: Call) -> Answer:
        body = call.json() or {}
        object_id = str(body.get("objectId") or "")
        record = (
            self._by_email(object_id)
            if body.get("idProperty") == "email"
            else self.store["contacts"].get(object_id)
        )
        if record is None or record["archived"]:
            return _error(404, "OBJECT_NOT_FOUND", "Object not found.")
        del self.store["contacts"][record["id"]]
        self.associations = [a for a in self.associations if record["id"] not in (a[1], a[3])]
        self.erased.append(record["id"])
        return Answer(204, b"", content_type="text/plain")

    @route("POST", r"/crm/v4/associations/(?P<from_type>\w+)/(?P<to_type>\w+)/batch/associate/default")
    def associate_default(self, call: Call, from_type: str, to_type: str) -> Answer:
        inputs = self._inputs(call)
        if isinstance(inputs, Answer):
            return inputs
        results = []
        for item in inputs:
            source, target = str(item["from"]["id"]), str(item["to"]["id"])
            if source not in self.store.get(from_type, {}) or target not in self.store.get(to_type, {}):
                return _error(
                    400, "VALIDATION_ERROR", f"{from_type} {source} or {to_type} {target} does not exist"
                )
            if (from_type, source, to_type, target) not in self.associations:  # associating twice: no-op
                self.associations.append((from_type, source, to_type, target))
            results.append(
                {
                    "from": {"id": source},
                    "to": {"id": target},
                    "associationSpec": {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 1},
                }
            )
        return self._batch(results)

    @route("GET", r"/crm/v3/properties/(?P<kind>\w+)/(?P<name>\w+)")
    def property_by_name(self, call: Call, kind: str, name: str) -> Answer:
        found = self.properties.get(kind, {}).get(name)
        if found is None:
            return _error(404, "OBJECT_NOT_FOUND", f"Unable to find property {name} on {kind}")
        return Answer(200, found)

    @route("POST", r"/crm/v3/properties/(?P<kind>\w+)/groups")
    def create_group(self, call: Call, kind: str) -> Answer:
        name = str((call.json() or {}).get("name") or "")
        if kind not in self.groups or not name:
            return _error(400, "VALIDATION_ERROR", "a group has a name")
        if name in self.groups[kind]:
            return _error(409, "CONFLICT", f"A group named {name} already exists")
        self.groups[kind].add(name)
        return Answer(201, {"name": name, "label": (call.json() or {}).get("label") or name})

    @route("POST", r"/crm/v3/properties/(?P<kind>\w+)")
    def create_property(self, call: Call, kind: str) -> Answer:
        body = call.json() or {}
        name = str(body.get("name") or "")
        if kind not in self.properties or not name or not body.get("type") or not body.get("fieldType"):
            return _error(400, "VALIDATION_ERROR", "a property has a name, type and fieldType")
        if body.get("groupName") not in self.groups[kind] | {f"{kind[:-1]}information"}:
            return _error(400, "VALIDATION_ERROR", f"no property group {body.get('groupName')}")
        if name in self.properties[kind]:
            return _error(409, "CONFLICT", f"A property named {name} already exists")
        self.properties[kind][name] = dict(body)
        return Answer(201, dict(body))

    @route("GET", r"/crm/v3/owners/?")
    def owners_page(self, call: Call) -> Answer:
        email = call.arg("email")
        found = [o for o in self.owners if email is None or o["email"] == email]
        return Answer(200, {"results": found})
