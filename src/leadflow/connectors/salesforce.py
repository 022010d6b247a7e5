"""Salesforce (REST, sObjects and sObject Collections) through ``simple-salesforce``.

The credentials (one sealed object): ``session_id`` (or ``access_token``, an OAuth access token is a
session id) with the instance URL as the connector's host, or ``username``, ``password``,
``security_token`` for a login. The options (:data:`OPTIONS`, not secret: shown and changed like the
mapping; a connector made before options existed has them in its credentials, still read there):
``domain`` (the login's: ``login``/``test``); ``object`` — the people object, ``Lead`` (default) or
``Contact``; ``external_id`` — the field a first write upserts by, ``Email`` (default) or a custom
External ID field such as ``Leadflow_Id__c`` (given leadflow's contact id); ``link_field`` (below);
``stages`` — leadflow's deal stage ids → ``StageName`` (else open → ``Prospecting``, won →
``Closed Won``, lost → ``Closed Lost``); ``version`` (``59.0``).

- People: a first write upserts by the external id — one record ``PATCH sobjects/<Obj>/<Field>/<value>``,
  several ``PATCH composite/sobjects/<Obj>/<Field>`` (sObject Collections, 200 a call) with one result
  per record. A ``300`` ("several records match", or a collection's ``DUPLICATE_EXTERNAL_ID``) is a
  **conflict** with the candidates' ids: nothing is written and nothing created, a human decides. A record
  written before goes by its id (``PATCH sobjects/<Obj>/<Id>``): an email change updates the same record.
  A Lead needs ``LastName`` and ``Company`` (a Contact ``LastName``): when Salesforce answers
  ``REQUIRED_FIELD_MISSING`` to an upsert (it was creating), the record is upserted again with
  ``[not provided]`` in the missing fields (as Web-to-Lead does); an existing record is never
  overwritten with the placeholder. A Contact gets its company's Account as ``AccountId``; a Lead keeps
  the company's name in ``Company`` (the mapping).
- Accounts (companies), Opportunities (deals: ``AccountId``, and ``ContactId`` when people are
  Contacts) and Tasks (activities: ``WhoId`` the person, completed) are created with ``POST
  composite/sobjects`` (200 a call) and updated by id; with ``link_field`` (an External ID field such
  as ``Leadflow_Id__c`` on all three objects) they are upserted by leadflow's id instead, so a write
  repeated after a crash (the answer lost before the link was kept) creates nothing twice. Several
  records known by id (a backlog of changes) are updated with ``PATCH composite/sobjects`` (200 a
  call), one alone with its own PATCH.
- Limits: the daily API budget from every answer's ``Sforce-Limit-Info: api-usage=N/M`` (into
  :attr:`rate_seen`); every request is counted (``requests_made``) so the worker charges its bucket for
  the ones :meth:`calls` could not foresee (a collection sent again with the placeholder);
  ``403 REQUEST_LIMIT_EXCEEDED`` is retried later, never dead: an hour for the daily total, 30 s for the
  concurrency limit. ``401 INVALID_SESSION_ID`` is not retryable (reconnect).
- Pull: SOQL on ``LastModifiedDate`` (greater than the cursor, oldest first).
- Erasure: ``DELETE sobjects/<Obj>/<Id>`` (already deleted counts as erased).

Every request goes through the network guard (checked in the session before it is sent). Tests give a
CA bundle (:attr:`Network.ca_file`): the session then trusts it alone and ignores the environment's
``REQUESTS_CA_BUNDLE``; without one, TLS is the library's default verification. Credentials travel in
headers only and are never logged; errors are built from the status and Salesforce's ``errorCode``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import requests
from simple_salesforce.api import Salesforce
from simple_salesforce.exceptions import SalesforceError, SalesforceMoreThanOneRecord

from leadflow.connectors import options as opts
from leadflow.connectors.salesforce_rest import (
    GuardedSession,
    candidates_of,
    duplicate_ids,
    errors_of,
    fields_of,
    first_error,
    parse_time,
    soql_time,
)
from leadflow.connectors.vendor import (
    ACTIVITY,
    COMPANY,
    CONFLICT,
    CONTACT,
    DEAL,
    FAILED,
    OK,
    RETRY,
    Change,
    Network,
    RateSeen,
    Record,
    VendorError,
    Written,
)
from leadflow.kernel.netpolicy import Blocked

VERSION = "59.0"
MAX_COLLECTION = 200
PLACEHOLDER = "[not provided]"
REQUIRED = {"Lead": ("LastName", "Company"), "Contact": ("LastName",)}
OPTIONS: dict[str, opts.Check] = {
    "object": opts.one_of("Lead", "Contact"),
    "external_id": opts.text(r"[A-Za-z][A-Za-z0-9_]*", "a field name (Email, Leadflow_Id__c)"),
    "link_field": opts.text(r"\w+__c", "a custom External ID field (Leadflow_Id__c)"),
    "stages": opts.mapping_of(opts.text(r".{1,120}", "a StageName"), "StageName values"),
    "version": opts.text(r"\d{2,3}\.\d", "an API version (59.0)"),
    "domain": opts.text(r"[A-Za-z0-9][A-Za-z0-9.-]{0,99}", "login, test or the My Domain's name"),
}
OBJECTS = {COMPANY: "Account", DEAL: "Opportunity", ACTIVITY: "Task"}
DAILY_WAIT = timedelta(hours=1)
CONCURRENT_WAIT = timedelta(seconds=30)
RETRYABLE = {"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "UNKNOWN_EXCEPTION", "REQUEST_LIMIT_EXCEEDED"}
DEFAULT_MAPPING: list[dict[str, Any]] = [
    {"from": "email", "to": "Email"},
    {"from": "first_name", "to": "FirstName"},
    {"from": "last_name", "to": "LastName"},
    {"from": "phone", "to": "Phone", "transform": "e164"},
    {"from": "company.name", "to": "Company"},
]


class SalesforceVendor:
    """One Salesforce org."""

    name: ClassVar[str] = "salesforce"
    batch_size: ClassVar[int] = MAX_COLLECTION
    rate: ClassVar[float] = 20.0  # no per-second limit is documented: the daily budget and 25 concurrent
    burst: ClassVar[float] = 25.0
    kinds: ClassVar[frozenset[str]] = frozenset({CONTACT, COMPANY, DEAL, ACTIVITY})
    match_field: ClassVar[str] = "email"

    def __init__(
        self,
        credentials: Mapping[str, Any],
        host: str | None,
        network: Network,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        chosen = opts.merged(OPTIONS, options, credentials)
        self.object = str(chosen["object"] or "Lead")
        if self.object not in REQUIRED:
            raise VendorError("Salesforce object is Lead or Contact", retry=False)
        self.external_id = str(chosen["external_id"] or "Email")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", self.external_id):
            raise VendorError("Salesforce external_id is a field name", retry=False)
        link = chosen["link_field"]
        self.link_field = str(link) if isinstance(link, str) and re.fullmatch(r"\w+__c", link) else None
        stages = chosen["stages"] or {}
        self.stages = {str(k): str(v) for k, v in stages.items()} if isinstance(stages, Mapping) else {}
        self.network = network
        self.session = GuardedSession(network)
        self.rate_seen: RateSeen | None = None
        # requests sent: a collection of new Leads missing a required field is sent again with the
        # placeholder, a second request calls() could not foresee; the worker charges its bucket for it
        self.requests_made = 0
        version = str(chosen["version"] or VERSION)
        token = credentials.get("session_id") or credentials.get("access_token")
        try:
            if isinstance(token, str) and token:
                if not host:
                    raise VendorError("Salesforce needs the instance URL as the host", retry=False)
                self.client = Salesforce(
                    instance_url=host, session_id=token, session=self.session, version=version
                )
            elif credentials.get("username") and credentials.get("password"):
                self.client = Salesforce(
                    username=str(credentials["username"]),
                    password=str(credentials["password"]),
                    security_token=str(credentials.get("security_token") or ""),
                    domain=str(chosen["domain"] or "login"),
                    session=self.session,
                    version=version,
                )
            else:
                raise VendorError("Salesforce needs a session_id or a username and password", retry=False)
        except (VendorError, Blocked):
            raise
        except SalesforceError as exc:
            raise self._refusal(exc) from None
        except requests.RequestException as exc:
            raise VendorError(f"Salesforce unreachable: {type(exc).__name__}", retry=True) from None
        except Exception as exc:  # the login's own failure (SalesforceAuthenticationFailed, bad XML)
            raise VendorError(f"Salesforce login failed: {type(exc).__name__}", retry=False) from None

    # --- one call -------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, per_record: bool = False, **kwargs: Any) -> Any:
        """One REST call: its JSON (``None`` for 204); rate headers noted; failures as VendorError
        (``per_record``: a 300 and a 400 pass through as :class:`SalesforceError` for the caller to
        judge one record by)."""
        self.requests_made += 1
        try:
            answer = self.client.restful(path, method=method, **kwargs)
        except SalesforceError as exc:
            if per_record and exc.status in (300, 400):
                raise
            raise self._refusal(exc) from None
        except requests.RequestException as exc:
            raise VendorError(f"Salesforce unreachable: {type(exc).__name__}", retry=True) from None
        self._note()
        return answer

    def _note(self) -> None:
        usage = self.client.api_usage.get("api-usage")
        used, total = getattr(usage, "used", None), getattr(usage, "total", None)
        if isinstance(used, int) and isinstance(total, int):
            self.rate_seen = RateSeen(total, max(total - used, 0), 86_400.0)

    def _refusal(self, exc: SalesforceError) -> VendorError:
        code, message = first_error(errors_of(exc.content))
        text = f"Salesforce {exc.status} {code}: {message}".rstrip(": ")
        if code == "REQUEST_LIMIT_EXCEEDED":
            daily = "TotalRequests" in message
            if daily:
                self.rate_seen = RateSeen(self.rate_seen.limit if self.rate_seen else None, 0, 86_400.0)
            return VendorError(
                text,
                retry=True,
                status=exc.status,
                retry_after=DAILY_WAIT if daily else CONCURRENT_WAIT,
                rate_limited=True,
            )
        if code == "INVALID_SESSION_ID" or exc.status == 401:
            return VendorError(f"{text} (reconnect: the session is not valid)", retry=False, status=401)
        return VendorError(text, retry=exc.status >= 500 or code in RETRYABLE, status=exc.status)

    # --- the interface ----------------------------------------------------------------------------

    def check(self) -> None:
        self._call("GET", "limits/")

    def calls(self, kind: str, records: Sequence[Record]) -> int:
        """One call per 200 known records and per 200 new ones (a record alone: its own call)."""
        known = sum(1 for r in records if r.remote_id)
        return -(-known // MAX_COLLECTION) + -(-(len(records) - known) // MAX_COLLECTION)

    def write(self, kind: str, records: Sequence[Record]) -> list[Written]:
        obj = self.object if kind == CONTACT else OBJECTS[kind]
        bodies = {r.local_id: self._body(kind, r) for r in records}
        known = [r for r in records if r.remote_id]
        fresh = [r for r in records if not r.remote_id]
        if len(known) == 1:
            found = [self._update(obj, known[0], bodies[known[0].local_id])]
        else:
            found = self._collection(obj, "PATCH", known, bodies)
        if not fresh:
            return found
        if kind != CONTACT and self.link_field:  # idempotent: a repeat after a crash creates nothing
            return found + self._upsert_many(obj, self.link_field, fresh, bodies)
        if kind != CONTACT:
            return found + self._collection(obj, "POST", fresh, bodies)
        if len(fresh) == 1:
            return [*found, self._upsert_one(fresh[0], bodies[fresh[0].local_id])]
        return found + self._upsert_many(self.object, self.external_id, fresh, bodies)

    def _body(self, kind: str, record: Record) -> dict[str, Any]:
        body = dict(record.properties)
        contact = next(iter(record.associations.get(CONTACT) or ()), None)
        company = next(iter(record.associations.get(COMPANY) or ()), None)
        if kind == CONTACT and self.object == "Contact":
            body.pop("Company", None)  # a Contact's company is its Account
            if company:
                body["AccountId"] = company
        elif kind == DEAL:
            if company:
                body["AccountId"] = company
            if contact and self.object == "Contact":
                body["ContactId"] = contact
        elif kind == ACTIVITY and contact:
            body["WhoId"] = contact
        return body

    def _key(self, record: Record) -> str | None:
        """The external-id value a first write upserts by (the email, or leadflow's contact id)."""
        return record.match if self.external_id.lower() == "email" else record.local_id

    def _placeheld(self, body: Mapping[str, Any]) -> dict[str, Any]:
        filled = dict(body)
        for name in REQUIRED[self.object]:
            if filled.get(name) in (None, ""):
                filled[name] = PLACEHOLDER
        return filled

    def _update(self, obj: str, record: Record, body: dict[str, Any]) -> Written:
        try:
            self._call("PATCH", f"sobjects/{obj}/{record.remote_id}", json=body, per_record=True)
        except SalesforceError as exc:
            code, message = first_error(errors_of(exc.content))
            return Written(record.local_id, FAILED, error=f"Salesforce {exc.status} {code}: {message}")
        except VendorError as exc:
            if exc.status != 404:
                raise
            return Written(record.local_id, FAILED, error=f"{exc} (the {obj} was deleted in Salesforce)")
        return Written(record.local_id, OK, record.remote_id)

    def _upsert_one(self, record: Record, body: dict[str, Any], *, filled: bool = False) -> Written:
        key = self._key(record)
        if not key:
            return Written(record.local_id, FAILED, error=f"no {self.external_id} to upsert by")
        field = self.external_id
        sent = {k: v for k, v in body.items() if k.lower() not in (field.lower(), "id")}
        try:
            answer = self._call(
                "PATCH", f"sobjects/{self.object}/{field}/{quote(key, safe='')}", json=sent, per_record=True
            )
        except SalesforceMoreThanOneRecord as exc:
            found = candidates_of(exc.content)
            return Written(
                record.local_id,
                CONFLICT,
                error=f"{len(found)} Salesforce {self.object}s have this {field}",
                candidates=found,
            )
        except SalesforceError as exc:
            code, message = first_error(errors_of(exc.content))
            if code == "REQUIRED_FIELD_MISSING" and not filled:
                return self._upsert_one(record, self._placeheld(body), filled=True)
            return Written(record.local_id, FAILED, error=f"Salesforce {exc.status} {code}: {message}")
        remote = answer.get("id") if isinstance(answer, dict) else None
        if not remote:  # an API before 46 answers an update with 204 and no id
            remote = self._id_of(field, key)
        return Written(record.local_id, OK, remote) if remote else Written(record.local_id, RETRY)

    def _id_of(self, field: str, key: str) -> str | None:
        found = self._call(
            "GET", f"sobjects/{self.object}/{field}/{quote(key, safe='')}", params={"fields": "Id"}
        )
        return str(found["Id"]) if isinstance(found, dict) and found.get("Id") else None

    def _upsert_many(
        self,
        obj: str,
        field: str,
        records: Sequence[Record],
        bodies: Mapping[str, dict[str, Any]],
        *,
        filled: bool = False,
    ) -> list[Written]:
        """sObject Collections upsert by ``field`` (200 a call), one result per record."""
        keyed = [(r, self._key(r) if obj == self.object else r.local_id) for r in records]
        written = [
            Written(r.local_id, FAILED, error=f"no {field} to upsert by") for r, key in keyed if not key
        ]
        keyed = [(r, key) for r, key in keyed if key]
        again: list[Record] = []
        for start in range(0, len(keyed), MAX_COLLECTION):
            chunk = keyed[start : start + MAX_COLLECTION]
            payload = {
                "allOrNone": False,
                "records": [
                    {
                        "attributes": {"type": obj},
                        **{
                            k: v
                            for k, v in bodies[r.local_id].items()
                            if k.lower() not in (field.lower(), "id")
                        },
                        field: key,
                    }
                    for r, key in chunk
                ],
            }
            try:
                answer = self._call(
                    "PATCH", f"composite/sobjects/{obj}/{field}", json=payload, per_record=True
                )
            except SalesforceError as exc:  # the whole collection refused (a 400): nothing was written
                code, message = first_error(errors_of(exc.content))
                raise VendorError(
                    f"Salesforce {exc.status} {code}: {message}", retry=False, status=400
                ) from None
            results = answer if isinstance(answer, list) else []
            for index, (record, _) in enumerate(chunk):
                result = results[index] if index < len(results) else {}
                code, message = first_error(result.get("errors") or [])
                if result.get("success") and result.get("id"):
                    written.append(Written(record.local_id, OK, str(result["id"])))
                elif code == "DUPLICATE_EXTERNAL_ID":
                    found = duplicate_ids(message)
                    error = f"{len(found) or 'several'} Salesforce {obj}s have this {field}"
                    written.append(Written(record.local_id, CONFLICT, error=error, candidates=found))
                elif code == "REQUIRED_FIELD_MISSING" and not filled and obj == self.object:
                    again.append(record)
                else:
                    outcome = RETRY if code in RETRYABLE or not result else FAILED
                    written.append(Written(record.local_id, outcome, error=f"Salesforce {code}: {message}"))
        if again:
            more = {r.local_id: self._placeheld(bodies[r.local_id]) for r in again}
            written += self._upsert_many(obj, field, again, more, filled=True)
        return written

    def _collection(
        self, obj: str, method: str, records: Sequence[Record], bodies: Mapping[str, dict[str, Any]]
    ) -> list[Written]:
        """sObject Collections, 200 a call: ``POST`` creates, ``PATCH`` updates by ``Id``."""
        written: list[Written] = []
        for start in range(0, len(records), MAX_COLLECTION):
            chunk = records[start : start + MAX_COLLECTION]
            ids = [{"Id": r.remote_id} if r.remote_id else {} for r in chunk]
            payload = {
                "allOrNone": False,
                "records": [
                    {"attributes": {"type": obj}, **known, **bodies[r.local_id]}
                    for r, known in zip(chunk, ids, strict=True)
                ],
            }
            try:
                answer = self._call(method, "composite/sobjects", json=payload, per_record=True)
            except SalesforceError as exc:
                code, message = first_error(errors_of(exc.content))
                raise VendorError(
                    f"Salesforce {exc.status} {code}: {message}", retry=False, status=400
                ) from None
            results = answer if isinstance(answer, list) else []
            for index, record in enumerate(chunk):
                result = results[index] if index < len(results) else {}
                if result.get("success") and result.get("id"):
                    written.append(Written(record.local_id, OK, str(result["id"])))
                    continue
                code, message = first_error(result.get("errors") or [])
                outcome = RETRY if code in RETRYABLE or not result else FAILED
                gone = f" (the {obj} was deleted in Salesforce)" if code == "ENTITY_IS_DELETED" else ""
                error = f"Salesforce {code}: {message}{gone}"
                written.append(Written(record.local_id, outcome, error=error))
        return written

    def erase(self, remote_ids: Sequence[str]) -> list[Written]:
        done: list[Written] = []
        for remote_id in remote_ids:
            try:
                self._call("DELETE", f"sobjects/{self.object}/{remote_id}")
            except VendorError as exc:
                if exc.status != 404:  # already deleted: erased
                    raise
            done.append(Written(remote_id, OK, remote_id))
        return done

    def changes(self, since: datetime | None, fields: Sequence[str], limit: int) -> list[Change]:
        names = sorted({*(f for f in fields if re.fullmatch(r"\w+", f)), "Id", "Email", "LastModifiedDate"})
        where = f" WHERE LastModifiedDate > {soql_time(since)}" if since else ""
        soql = (
            f"SELECT {', '.join(names)} FROM {self.object}{where}"
            f" ORDER BY LastModifiedDate ASC, Id ASC LIMIT {max(1, min(limit, 2000))}"
        )
        answer = self._call("GET", "query/", params={"q": soql})
        found: list[Change] = []
        for row in (answer or {}).get("records") or []:
            modified = parse_time(row.get("LastModifiedDate"))
            if modified is None:
                continue
            properties = {k: v for k, v in row.items() if k != "attributes"}
            email = row.get("Email")
            found.append(
                Change(str(row["Id"]), email if isinstance(email, str) else None, properties, modified)
            )
        return found

    def owners(self) -> dict[str, str]:
        return {}  # owners are not mapped to Salesforce users (yet): OwnerId stays the integration user's

    def properties(self, kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
        return fields_of(kind, row, self.stages)

    def close(self) -> None:
        self.session.close()
