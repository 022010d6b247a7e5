"""Salesforce REST as a test can meet it: a stateful peer over TLS (simple-salesforce always builds
``https://`` URLs), speaking ``/services/data/vXX.X/...``:

- ``PATCH sobjects/<Obj>/<ExtIdField>/<value>``: upsert by external id → ``201 {"id","success":true,
  "errors":[],"created":true}``; one match updated → ``200`` with ``"created": false`` (API ≥ 46; ``204``
  before); several matches → **``300``** with the list of the matching records' URLs, nothing written;
  an unknown external-id field → ``404 NOT_FOUND``; ``?updateOnly=true`` never creates (``404``). The body
  may not carry ``Id`` or the external-id field (as documented).
- ``PATCH composite/sobjects/<Obj>/<ExtIdField>`` (sObject Collections upsert): ``{"allOrNone", "records":
  [{"attributes": {"type"}, ...}]}``, at most 200 records (over → ``400 EXCEEDED_ID_LIMIT``), one
  ``{"id","success","errors":[{"statusCode","message","fields"}],"created"}`` per record, in order; several
  matches → that record's ``DUPLICATE_EXTERNAL_ID``; the same key twice → ``DUPLICATE_VALUE``;
  ``allOrNone: true`` writes nothing when one fails (the others ``ALL_OR_NONE_OPERATION_ROLLED_BACK``).
  ``POST composite/sobjects`` creates up to 200 records of any types, ``PATCH composite/sobjects``
  updates up to 200 by their ``Id`` (an unknown one: that record's ``ENTITY_IS_DELETED``).
- ``POST sobjects/<Obj>/``, ``GET``/``PATCH`` (204)/``DELETE`` (204) ``sobjects/<Obj>/<Id>``, ``GET
  sobjects/<Obj>/<ExtIdField>/<value>`` (300 likewise), ``GET sobjects/<Obj>/describe``, ``GET limits``.
- ``GET query?q=`` / ``queryAll`` with :mod:`tests.peers.salesforce_soql` (``WHERE LastModifiedDate >
  2026-01-01T00:00:00Z``, ``WHERE Email = '...'``, ``ORDER BY``, ``LIMIT``, ``COUNT()``), pages of
  ``page_size`` records with ``nextRecordsUrl`` (``GET query/<locator>``).
- Objects Lead, Contact, Account, Opportunity, Task with their standard fields (an unknown standard field →
  ``400 INVALID_FIELD``; any ``__c`` custom field is accepted), required fields on create
  (``REQUIRED_FIELD_MISSING``: a Lead needs ``LastName`` and ``Company``), read-only fields refused
  (``INVALID_FIELD_FOR_INSERT_UPDATE``), emails checked (``INVALID_EMAIL_ADDRESS``), references checked
  (``INVALID_CROSS_REFERENCE_KEY``), ``CreatedDate``/``LastModifiedDate``/``SystemModstamp`` kept from
  ``peer.now()``.
- Every answer carries ``Sforce-Limit-Info: api-usage=N/LIMIT``; each authenticated request counts; over
  ``daily_limit`` → ``403 REQUEST_LIMIT_EXCEEDED`` ("TotalRequests Limit exceeded."), reset when ``now()``
  reaches a new UTC day. An injected burst (``faults.burst_429``) is Salesforce's transient limit answer:
  ``403 REQUEST_LIMIT_EXCEEDED`` "ConcurrentRequests ... Limit exceeded." with usage still under the limit
  (Salesforce sends no 429 and no ``Retry-After``). Injected 5xx: ``500 UNKNOWN_EXCEPTION``,
  ``503 SERVER_UNAVAILABLE``.
- A bad bearer token → ``401 INVALID_SESSION_ID``. Errors are ``[{"message","errorCode","fields"}]``.

A test plays the salesperson with :meth:`SalesforcePeer.seed` (a record written directly, e.g. duplicates
sharing an external id) and :meth:`SalesforcePeer.remote_update`, and counts with
:meth:`SalesforcePeer.count` / :meth:`SalesforcePeer.find`.
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import requests
from simple_salesforce.api import Salesforce

from tests.peers.saas import Answer, Call, SaasPeer, route
from tests.peers.salesforce_soql import SoqlError, field_value, parse, sort_key

SESSION_ID = "00Dleadflow!peer.session.token"
API = r"/services/data/v(?P<version>\d+\.\d)"
PREFIXES = {"Account": "001", "Contact": "003", "Opportunity": "006", "Lead": "00Q", "Task": "00T"}
SYSTEM = {"Id", "CreatedDate", "LastModifiedDate", "SystemModstamp", "CreatedById", "LastModifiedById"}
SYSTEM |= {"IsDeleted", "OwnerId"}
FIELDS: dict[str, set[str]] = {
    "Lead": {
        "FirstName", "LastName", "Salutation", "Name", "Company", "Title", "Email", "Phone", "MobilePhone",
        "Street", "City", "State", "PostalCode", "Country", "Website", "LeadSource", "Status", "Industry",
        "Rating", "AnnualRevenue", "NumberOfEmployees", "HasOptedOutOfEmail", "DoNotCall", "Description",
        "IsConverted", "ConvertedContactId", "ConvertedAccountId",
    },
    "Contact": {
        "FirstName", "LastName", "Salutation", "Name", "AccountId", "Title", "Email", "Phone", "MobilePhone",
        "MailingStreet", "MailingCity", "MailingState", "MailingPostalCode", "MailingCountry", "Birthdate",
        "LeadSource", "Department", "HasOptedOutOfEmail", "DoNotCall", "Description",
    },
    "Account": {
        "Name", "Website", "Phone", "Industry", "Type", "BillingStreet", "BillingCity", "BillingState",
        "BillingPostalCode", "BillingCountry", "NumberOfEmployees", "AnnualRevenue", "Description",
    },
    "Opportunity": {
        "Name", "AccountId", "ContactId", "StageName", "CloseDate", "Amount", "Probability", "Type",
        "LeadSource", "Description", "IsClosed", "IsWon",
    },
    "Task": {
        "Subject", "WhoId", "WhatId", "Status", "Priority", "ActivityDate", "Description", "TaskSubtype",
        "Type", "CallDurationInSeconds",
    },
}  # fmt: skip
READ_ONLY = {"Lead": {"Name", "IsConverted"}, "Contact": {"Name"}, "Opportunity": {"IsClosed", "IsWon"}}
REQUIRED = {"Lead": ["LastName", "Company"], "Contact": ["LastName"], "Account": ["Name"]}
REQUIRED |= {"Opportunity": ["Name", "StageName", "CloseDate"], "Task": []}
REFERENCES = {
    "AccountId": ("Account",),
    "ContactId": ("Contact",),
    "WhoId": ("Lead", "Contact"),
    "WhatId": ("Account", "Opportunity"),
}
EXTERNAL_IDS = {  # the fields usable for upsert (idLookup / External ID), per object
    "Lead": {"Email", "Leadflow_Id__c"},
    "Contact": {"Email", "Leadflow_Id__c"},
    "Account": {"Leadflow_Id__c"},
    "Opportunity": {"Leadflow_Id__c"},
    "Task": {"Leadflow_Id__c"},
}
PEER_USER = "005000000000001AAA"  # the integration user (our writes)
SALES_USER = "005000000000002AAA"  # a salesperson (remote_update)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_RECORDS = 200


def sf_time(moment: datetime) -> str:
    """``2026-01-01T09:00:00.000+0000``, as Salesforce writes datetimes."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def error(status: int, code: str, message: str, fields: list[str] | None = None) -> Answer:
    body: list[dict[str, Any]] = [{"message": message, "errorCode": code}]
    if fields is not None:
        body[0]["fields"] = fields
    return Answer(status, body)


class Invalid(Exception):
    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.fields = code, message, fields or []


class SalesforcePeer(SaasPeer):
    """``with SalesforcePeer() as sf:`` then ``sf.client()`` (a ``simple_salesforce.Salesforce`` trusting the
    peer) or any client given ``sf.url``, ``SESSION_ID`` and ``sf.requests_session()``."""

    error_statuses = (500, 503)

    def __init__(
        self,
        *,
        tls: bool = True,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
        daily_limit: int = 100_000,
        page_size: int = 2000,
    ) -> None:
        super().__init__(tls=tls, seed=seed, clock=clock, now=now)
        self.tokens = {SESSION_ID}
        self.daily_limit = daily_limit
        self.api_used = 0
        self.page_size = page_size
        self.records: dict[str, dict[str, dict[str, Any]]] = {obj: {} for obj in PREFIXES}
        self.external_ids = copy.deepcopy(EXTERNAL_IDS)
        self._ids = itertools.count(1)
        self._day = self.now().date()
        self._cursors: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        self._index: dict[tuple[str, str], dict[str, set[str]]] = {}

    # ---- for tests --------------------------------------------------------------------------------
    def client(self, session_id: str = SESSION_ID, version: str = "59.0") -> Salesforce:
        session: requests.Session = self.requests_session()
        return Salesforce(instance_url=self.url, session_id=session_id, session=session, version=version)

    def reset(self) -> None:
        """Forget every record, cursor and the API usage (a module-scoped peer between tests)."""
        with self.lock:
            for records in self.records.values():
                records.clear()
            self._cursors.clear()
            self._index.clear()
            self.api_used = 0

    def seed(self, obj: str, **fields: Any) -> str:
        """Write a record directly (no checks, no API usage), as data already in the org: its id."""
        with self.lock:
            return self._insert(obj, fields, SALES_USER)

    def remote_update(self, obj: str, record_id: str, **fields: Any) -> dict[str, Any]:
        """A salesperson edits a record in Salesforce: fields set, modification times moved to now()."""
        with self.lock:
            record = self.records[obj][record_id]
            self._modify(obj, record, fields, SALES_USER)
            return copy.deepcopy(record)

    def get(self, obj: str, record_id: str) -> dict[str, Any] | None:
        with self.lock:
            record = self.records[obj].get(record_id)
            return copy.deepcopy(record) if record else None

    def find(self, obj: str, **where: Any) -> list[dict[str, Any]]:
        """The records whose fields equal ``where`` (text case-insensitively), in creation order."""
        with self.lock:
            return [copy.deepcopy(r) for r in self.records[obj].values() if _matches(r, where)]

    def count(self, obj: str, **where: Any) -> int:
        with self.lock:
            return sum(1 for r in self.records[obj].values() if _matches(r, where))

    # ---- the vendor's habits ----------------------------------------------------------------------
    def auth(self, call: Call) -> Answer | None:
        header = call.headers.get("authorization", "")
        token = header[7:] if header.lower().startswith("bearer ") else header
        if token not in self.tokens:
            return error(401, "INVALID_SESSION_ID", "Session expired or invalid")
        return None

    def limited(self, call: Call) -> Answer | None:
        today = self.now().date()
        if today != self._day:
            self._day, self.api_used = today, 0
        if self.api_used >= self.daily_limit:
            return error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        self.api_used += 1
        return None

    def rate_headers(self, call: Call) -> dict[str, str]:
        return {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.daily_limit}"}

    def not_found(self, call: Call) -> Answer:
        return error(404, "NOT_FOUND", "The requested resource does not exist")

    def too_many(self, call: Call, retry_after: int) -> Answer:
        return error(
            403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentRequests (Concurrent API Requests) Limit exceeded."
        )

    def server_error(self, call: Call, status: int) -> Answer:
        if status == 503:
            return error(503, "SERVER_UNAVAILABLE", "Server temporarily unavailable, please retry")
        return error(500, "UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId")

    # ---- sObject rows -----------------------------------------------------------------------------
    @route("POST", API + r"/sobjects/(?P<obj>\w+)/?")
    def create(self, call: Call, version: str, obj: str) -> Answer:
        if obj not in self.records:
            return self.not_found(call)
        try:
            fields = self._body(call)
            self._check(obj, fields, creating=True)
        except Invalid as exc:
            return error(400, exc.code, exc.message, exc.fields)
        return Answer(201, {"id": self._insert(obj, fields, PEER_USER), "success": True, "errors": []})

    @route("GET", API + r"/sobjects/(?P<obj>\w+)/describe/?")
    def describe(self, call: Call, version: str, obj: str) -> Answer:
        if obj not in self.records:
            return self.not_found(call)
        names = sorted(SYSTEM | FIELDS[obj] | self.external_ids[obj])
        fields = [
            {
                "name": name,
                "externalId": name.endswith("__c") and name in self.external_ids[obj],
                "idLookup": name in self.external_ids[obj] or name == "Id",
                "updateable": name not in SYSTEM and name not in READ_ONLY.get(obj, set()),
                "nillable": name not in REQUIRED[obj],
                "custom": name.endswith("__c"),
            }
            for name in names
        ]
        return Answer(200, {"name": obj, "keyPrefix": PREFIXES[obj], "fields": fields})

    @route("GET", API + r"/sobjects/(?P<obj>\w+)/(?P<record_id>\w+)/?")
    def read(self, call: Call, version: str, obj: str, record_id: str) -> Answer:
        record = self._by_id(obj, record_id)
        if record is None:
            return self.not_found(call)
        wanted = (call.arg("fields") or "").split(",")
        return Answer(200, self._shape(obj, record, version, [f for f in wanted if f] or None))

    @route("PATCH", API + r"/sobjects/(?P<obj>\w+)/(?P<record_id>\w+)/?")
    def update(self, call: Call, version: str, obj: str, record_id: str) -> Answer:
        record = self._by_id(obj, record_id)
        if record is None:
            return self.not_found(call)
        try:
            fields = self._body(call)
            self._check(obj, fields, creating=False)
        except Invalid as exc:
            return error(400, exc.code, exc.message, exc.fields)
        self._modify(obj, record, fields, PEER_USER)
        return Answer(204)

    @route("DELETE", API + r"/sobjects/(?P<obj>\w+)/(?P<record_id>\w+)/?")
    def delete(self, call: Call, version: str, obj: str, record_id: str) -> Answer:
        record = self._by_id(obj, record_id)
        if record is None:
            return error(404, "ENTITY_IS_DELETED", "entity is deleted")
        self._unindex(obj, record)
        del self.records[obj][record["Id"]]
        return Answer(204)

    @route("GET", API + r"/sobjects/(?P<obj>\w+)/(?P<field>\w+)/(?P<value>.+)")
    def read_by_external_id(self, call: Call, version: str, obj: str, field: str, value: str) -> Answer:
        matches, answer = self._lookup(call, version, obj, field, unquote(value))
        if answer is not None:
            return answer
        if not matches:
            return self.not_found(call)
        return Answer(200, self._shape(obj, matches[0], version))

    @route("PATCH", API + r"/sobjects/(?P<obj>\w+)/(?P<field>\w+)/(?P<value>.+)")
    def upsert(self, call: Call, version: str, obj: str, field: str, value: str) -> Answer:
        value = unquote(value)  # the record created keeps the decoded value (an email sent as %40)
        matches, answer = self._lookup(call, version, obj, field, value)
        if answer is not None:
            return answer
        try:
            fields = self._body(call)
            for name in ("Id", field):
                if any(key.lower() == name.lower() for key in fields):
                    raise Invalid("INVALID_FIELD", f"Unable to create/update fields: {name}.", [name])
            self._check(obj, fields if matches else {**fields, field: value}, creating=not matches)
        except Invalid as exc:
            return error(400, exc.code, exc.message, exc.fields)
        if matches:
            self._modify(obj, matches[0], fields, PEER_USER)
            result = {"id": matches[0]["Id"], "success": True, "errors": [], "created": False}
            return Answer(200, result) if float(version) >= 46 else Answer(204)
        if call.arg("updateOnly") == "true":
            return self.not_found(call)
        record_id = self._insert(obj, {**fields, field: value}, PEER_USER)
        return Answer(201, {"id": record_id, "success": True, "errors": [], "created": True})

    # ---- sObject Collections ----------------------------------------------------------------------
    @route("PATCH", API + r"/composite/sobjects/(?P<obj>\w+)/(?P<field>\w+)/?")
    def collection_upsert(self, call: Call, version: str, obj: str, field: str) -> Answer:
        if obj not in self.records:
            return self.not_found(call)
        if field not in self.external_ids[obj]:
            return error(
                404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {field}"
            )
        records, all_or_none, answer = self._collection(call)
        if answer is not None:
            return answer
        keys = [str(field_value(r, field) or "").lower() for r in records]
        plans: list[tuple[str, dict[str, Any], dict[str, Any] | None] | Invalid] = []
        for record, key in zip(records, keys, strict=True):
            try:
                fields = {k: v for k, v in record.items() if k != "attributes"}
                if (record.get("attributes") or {}).get("type") != obj:
                    raise Invalid("INVALID_TYPE", f"This request only accepts records of type {obj}", [])
                if not key:
                    raise Invalid("MISSING_ARGUMENT", f"{field} not specified", [field])
                if keys.count(key) > 1:
                    value = field_value(record, field)
                    raise Invalid("DUPLICATE_VALUE", f"Duplicate external id specified: {value}", [field])
                if "Id" in fields:
                    raise Invalid("INVALID_FIELD", "Unable to create/update fields: Id.", ["Id"])
                found = self._matching(obj, field, key)
                if len(found) > 1:
                    ids = ", ".join(r["Id"] for r in found)
                    message = f"{field}: more than one record found for external id field: [{ids}]"
                    raise Invalid("DUPLICATE_EXTERNAL_ID", message, [field])
                self._check(obj, fields, creating=not found)
                plans.append((key, fields, found[0] if found else None))
            except Invalid as exc:
                plans.append(exc)
        failed = any(isinstance(plan, Invalid) for plan in plans)
        results: list[dict[str, Any]] = []
        for plan in plans:
            if isinstance(plan, Invalid):
                results.append(_failure(plan.code, plan.message, plan.fields))
            elif failed and all_or_none:
                results.append(_rolled_back())
            elif plan[2] is not None:
                self._modify(obj, plan[2], plan[1], PEER_USER)
                results.append({"id": plan[2]["Id"], "success": True, "errors": [], "created": False})
            else:
                record_id = self._insert(obj, plan[1], PEER_USER)
                results.append({"id": record_id, "success": True, "errors": [], "created": True})
        return Answer(200, results)

    @route("POST", API + r"/composite/sobjects/?")
    def collection_create(self, call: Call, version: str) -> Answer:
        records, all_or_none, answer = self._collection(call)
        if answer is not None:
            return answer
        plans: list[tuple[str, dict[str, Any]] | Invalid] = []
        for record in records:
            obj = (record.get("attributes") or {}).get("type", "")
            fields = {k: v for k, v in record.items() if k != "attributes"}
            try:
                if obj not in self.records:
                    raise Invalid("INVALID_TYPE", f"sObject type '{obj}' is not supported.", [])
                if "Id" in fields:
                    raise Invalid("INVALID_FIELD", "Unable to create/update fields: Id.", ["Id"])
                self._check(obj, fields, creating=True)
                plans.append((obj, fields))
            except Invalid as exc:
                plans.append(exc)
        failed = any(isinstance(plan, Invalid) for plan in plans)
        results: list[dict[str, Any]] = []
        for plan in plans:
            if isinstance(plan, Invalid):
                results.append(
                    {"success": False, "errors": _failure(plan.code, plan.message, plan.fields)["errors"]}
                )
            elif failed and all_or_none:
                results.append({"success": False, "errors": _rolled_back()["errors"]})
            else:
                results.append(
                    {"id": self._insert(plan[0], plan[1], PEER_USER), "success": True, "errors": []}
                )
        return Answer(200, results)

    @route("PATCH", API + r"/composite/sobjects/?")
    def collection_update(self, call: Call, version: str) -> Answer:
        """sObject Collections update: up to 200 records of any types, each by its ``Id``."""
        records, all_or_none, answer = self._collection(call)
        if answer is not None:
            return answer
        plans: list[tuple[str, dict[str, Any], dict[str, Any]] | Invalid] = []
        for record in records:
            obj = (record.get("attributes") or {}).get("type", "")
            fields = {k: v for k, v in record.items() if k not in ("attributes", "Id", "id")}
            try:
                if obj not in self.records:
                    raise Invalid("INVALID_TYPE", f"sObject type '{obj}' is not supported.", [])
                found = self._by_id(obj, str(record.get("Id") or record.get("id") or ""))
                if found is None:
                    raise Invalid("ENTITY_IS_DELETED", "entity is deleted", [])
                self._check(obj, fields, creating=False)
                plans.append((obj, found, fields))
            except Invalid as exc:
                plans.append(exc)
        failed = any(isinstance(plan, Invalid) for plan in plans)
        results: list[dict[str, Any]] = []
        for plan in plans:
            if isinstance(plan, Invalid):
                results.append(
                    {"success": False, "errors": _failure(plan.code, plan.message, plan.fields)["errors"]}
                )
            elif failed and all_or_none:
                results.append({"id": plan[1]["Id"], "success": False, "errors": _rolled_back()["errors"]})
            else:
                self._modify(plan[0], plan[1], plan[2], PEER_USER)
                results.append({"id": plan[1]["Id"], "success": True, "errors": []})
        return Answer(200, results)

    # ---- query ------------------------------------------------------------------------------------
    @route("GET", API + r"/(?P<endpoint>query|queryAll)/?")
    def query(self, call: Call, version: str, endpoint: str) -> Answer:
        try:
            soql = parse(call.arg("q") or "")
        except SoqlError as exc:
            return error(400, "MALFORMED_QUERY", str(exc))
        obj = soql.obj
        if obj not in self.records:
            return error(400, "INVALID_TYPE", f"sObject type '{obj}' is not supported.")
        known = {name.lower() for name in SYSTEM | FIELDS[obj]}
        for name in soql.fields:
            if name.lower() not in known and not name.endswith("__c"):
                return error(400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj}'.")
        rows = [r for r in self.records[obj].values() if soql.where(r)]
        for name, descending in reversed(soql.order):
            rows.sort(key=functools.partial(_sort_key, name), reverse=descending)
        if soql.limit is not None:
            rows = rows[: soql.limit]
        if soql.count:
            return Answer(200, {"totalSize": len(rows), "done": True, "records": []})
        shaped = [self._shape(obj, r, version, soql.fields) for r in rows]
        return Answer(200, self._page(version, shaped, len(shaped)))

    @route("GET", API + r"/(?:query|queryAll)/(?P<locator>[\w-]+)")
    def query_more(self, call: Call, version: str, locator: str) -> Answer:
        cursor = self._cursors.pop(locator, None)
        if cursor is None:
            return error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return Answer(200, self._page(version, cursor[1], int(cursor[0])))

    @route("GET", API + r"/limits/?")
    def limits(self, call: Call, version: str) -> Answer:
        remaining = self.daily_limit - self.api_used
        return Answer(200, {"DailyApiRequests": {"Max": self.daily_limit, "Remaining": remaining}})

    # ---- inside -----------------------------------------------------------------------------------
    def _page(self, version: str, rows: list[dict[str, Any]], total: int) -> dict[str, Any]:
        page, rest = rows[: self.page_size], rows[self.page_size :]
        body: dict[str, Any] = {"totalSize": total, "done": not rest, "records": page}
        if rest:
            locator = f"01g{next(self._ids):015d}-{self.page_size}"
            self._cursors[locator] = (str(total), rest)
            body["nextRecordsUrl"] = f"/services/data/v{version}/query/{locator}"
        return body

    def _collection(self, call: Call) -> tuple[list[dict[str, Any]], bool, Answer | None]:
        try:
            body = call.json()
        except ValueError:
            return [], False, error(400, "JSON_PARSER_ERROR", "The request body is not valid JSON")
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            return [], False, error(400, "JSON_PARSER_ERROR", "records: a list of sObjects is required")
        records = body["records"]
        if len(records) > MAX_RECORDS:
            message = f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call"
            return [], False, error(400, "EXCEEDED_ID_LIMIT", message, [])
        if not all(isinstance(r, dict) for r in records):
            return [], False, error(400, "JSON_PARSER_ERROR", "records: each record is an object")
        return records, bool(body.get("allOrNone")), None

    def _lookup(
        self, call: Call, version: str, obj: str, field: str, value: str
    ) -> tuple[list[dict[str, Any]], Answer | None]:
        if obj not in self.records:
            return [], self.not_found(call)
        if field not in self.external_ids[obj]:
            message = f"Provided external ID field does not exist or is not accessible: {field}"
            return [], error(404, "NOT_FOUND", message)
        matches = self._matching(obj, field, value)
        if len(matches) > 1:
            return matches, Answer(
                300, [f"/services/data/v{version}/sobjects/{obj}/{r['Id']}" for r in matches]
            )
        return matches, None

    def _by_id(self, obj: str, record_id: str) -> dict[str, Any] | None:
        if obj not in self.records or len(record_id) not in (15, 18):
            return None
        if len(record_id) == 18:
            return self.records[obj].get(record_id)
        for key, record in self.records[obj].items():
            if key[:15] == record_id[:15]:
                return record
        return None

    def _body(self, call: Call) -> dict[str, Any]:
        try:
            body = call.json()
        except ValueError:
            raise Invalid("JSON_PARSER_ERROR", "The request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise Invalid("JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from a non-object")
        return body

    def _check(self, obj: str, fields: dict[str, Any], *, creating: bool) -> None:
        known = FIELDS[obj] | {"OwnerId"}
        for name in fields:
            if name not in known and not name.endswith("__c"):
                message = f"No such column '{name}' on sobject of type {obj}"
                raise Invalid("INVALID_FIELD", message, [name])
            if name in SYSTEM - {"OwnerId"} or name in READ_ONLY.get(obj, set()):
                message = f"Unable to create/update fields: {name}. Check the field's security settings."
                raise Invalid("INVALID_FIELD_FOR_INSERT_UPDATE", message, [name])
        email = fields.get("Email")
        if email not in (None, "") and not (isinstance(email, str) and EMAIL.match(email)):
            raise Invalid("INVALID_EMAIL_ADDRESS", f"Email: invalid email address: {email}", ["Email"])
        for name, types in REFERENCES.items():
            target = fields.get(name)
            if name in known and target and not any(self._by_id(t, str(target)) for t in types):
                raise Invalid("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id: {target}", [name])
        if creating:
            missing = [name for name in REQUIRED[obj] if fields.get(name) in (None, "")]
            if missing:
                raise Invalid(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(missing)}]", missing
                )
        else:
            blanked = [name for name in REQUIRED[obj] if name in fields and fields[name] in (None, "")]
            if blanked:
                raise Invalid(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{', '.join(blanked)}]", blanked
                )

    def _insert(self, obj: str, fields: dict[str, Any], user: str) -> str:
        record_id = f"{PREFIXES[obj]}5g0{next(self._ids):09d}AAA"
        stamp = sf_time(self.now())
        record = {"Id": record_id, "OwnerId": PEER_USER, **fields}
        record |= {"CreatedDate": stamp, "CreatedById": user, "IsDeleted": False}
        self.records[obj][record_id] = record
        self._touch(obj, record, user)
        self._reindex(obj, record)
        return record_id

    def _modify(self, obj: str, record: dict[str, Any], fields: dict[str, Any], user: str) -> None:
        self._unindex(obj, record)
        record.update(fields)
        self._touch(obj, record, user)
        self._reindex(obj, record)

    def _matching(self, obj: str, field: str, value: Any) -> list[dict[str, Any]]:
        """The records whose ``field`` equals ``value`` (any case), oldest first, through an index kept
        per external-id field (10,000-record chaos runs look up every record)."""
        if value is None:
            return []
        ids = self._field_index(obj, field).get(str(value).lower(), set())
        return [self.records[obj][record_id] for record_id in sorted(ids)]

    def _field_index(self, obj: str, field: str) -> dict[str, set[str]]:
        key = (obj, field.lower())
        if key not in self._index:
            index: dict[str, set[str]] = {}
            for record in self.records[obj].values():
                value = field_value(record, field)
                if value is not None:
                    index.setdefault(str(value).lower(), set()).add(record["Id"])
            self._index[key] = index
        return self._index[key]

    def _unindex(self, obj: str, record: dict[str, Any]) -> None:
        for (indexed, field), index in self._index.items():
            value = field_value(record, field) if indexed == obj else None
            if value is not None:
                index.get(str(value).lower(), set()).discard(record["Id"])

    def _reindex(self, obj: str, record: dict[str, Any]) -> None:
        for (indexed, field), index in self._index.items():
            value = field_value(record, field) if indexed == obj else None
            if value is not None:
                index.setdefault(str(value).lower(), set()).add(record["Id"])

    def _touch(self, obj: str, record: dict[str, Any], user: str) -> None:
        stamp = sf_time(self.now())
        record |= {"LastModifiedDate": stamp, "SystemModstamp": stamp, "LastModifiedById": user}
        if obj in ("Lead", "Contact"):
            record["Name"] = " ".join(str(p) for p in (record.get("FirstName"), record.get("LastName")) if p)
        if obj == "Opportunity":
            stage = str(record.get("StageName") or "")
            record["IsClosed"] = stage.startswith("Closed")
            record["IsWon"] = stage == "Closed Won"

    def _shape(
        self, obj: str, record: dict[str, Any], version: str, fields: list[str] | None = None
    ) -> dict[str, Any]:
        attributes = {"type": obj, "url": f"/services/data/v{version}/sobjects/{obj}/{record['Id']}"}
        if fields is None:
            names = sorted(SYSTEM | FIELDS[obj] | {k for k in record if k.endswith("__c")})
            return {"attributes": attributes, **{name: record.get(name) for name in names}}
        return {"attributes": attributes, **{name: field_value(record, name) for name in fields}}


def _sort_key(name: str, record: dict[str, Any]) -> tuple[int, Any]:
    return sort_key(field_value(record, name))


def _matches(record: dict[str, Any], where: dict[str, Any]) -> bool:
    for name, wanted in where.items():
        value = field_value(record, name)
        if isinstance(wanted, str) and isinstance(value, str):
            if value.lower() != wanted.lower():
                return False
        elif value != wanted:
            return False
    return True


def _failure(code: str, message: str, fields: list[str]) -> dict[str, Any]:
    return {
        "success": False,
        "errors": [{"statusCode": code, "message": message, "fields": fields}],
        "created": False,
    }


def _rolled_back() -> dict[str, Any]:
    message = (
        "Record rolled back because not all records were valid and the request was using AllOrNone header"
    )
    return _failure("ALL_OR_NONE_OPERATION_ROLLED_BACK", message, [])
