"""HubSpot (CRM v3 objects, v4 associations) through ``hubspot-api-client``.

- People: a first write upserts by email (``POST /crm/v3/objects/contacts/batch/upsert``,
  ``idProperty=email``), 100 per call; a record written before goes by its id (``batch/update``), so
  an email change updates the same HubSpot contact. A contact's company is associated (v4 default).
- Companies and deals: ``batch/upsert`` by :data:`UNIQUE_ID` (a custom property holding leadflow's id,
  with ``hasUniqueValue``; made in a ``leadflow`` property group by the first write to an object type
  that lacks it: ``/crm/v3/properties/{type}``) the first time, ``batch/update`` by id after; a deal
  is associated with its contact and company (v4 ``batch/associate/default``).
- Activities: notes and calls (``/crm/v3/objects/notes``, ``calls``; the other kinds are written as
  notes) upserted by :data:`UNIQUE_ID`, then associated with the contact (v4 default).
- Exactly once: a first write whose answer is lost (a timeout after HubSpot applied it, a lease that
  ran out mid-write) is repeated as the same upsert, which finds the record made the first time.
- Owners: ``GET /crm/v3/owners`` maps an owner's email to the HubSpot owner id.
- Pull: ``POST /crm/v3/objects/contacts/search`` on ``lastmodifieddate`` (greater than the cursor,
  oldest first).
- Erasure: ``POST /crm/v3/objects/contacts/gdpr-delete`` by id.
- Limits: 100 requests per fixed 10-s window (:attr:`HubSpotVendor.window`: the worker paces it with a
  log of its last requests' times, never more than 100 in any 10.25 s — a token bucket earning 10 a
  second and holding 100 let up to ~200 into one window, each one over answered ``429``); the answers'
  ``X-HubSpot-RateLimit-Remaining``/``-Max``/``-Interval-Milliseconds`` (or ``-Secondly`` …) are read
  back and lower the log's allowance; ``429 {"errorType": "RATE_LIMIT", "policyName": "SECONDLY"|"DAILY"}``
  waits ``Retry-After`` (else 10 s, or an hour for the daily cap).

Network: every API of the client sends through one
:class:`~leadflow.kernel.netguard_urllib3.GuardedPoolManager` (each connection, redirect hops too,
resolved and judged by the network guard at connect time, then made to the checked address).

The token only travels in the ``Authorization`` header the client sets; it is never logged, and an
error's text is built from the status and HubSpot's ``message``, not from the request.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import urllib3
from hubspot import HubSpot as Client
from hubspot.discovery.discovery_base import DiscoveryBase
from urllib3.util.retry import Retry

from leadflow.connectors.vendor import (
    ACTIVITY,
    COMPANY,
    CONFLICT,
    CONTACT,
    DEAL,
    FAILED,
    OK,
    Change,
    Network,
    RateSeen,
    Record,
    VendorError,
    Written,
)
from leadflow.kernel.netguard_urllib3 import GuardedPoolManager
from leadflow.kernel.retry import parse_retry_after

HOST = "https://api.hubapi.com"
OBJECTS = {CONTACT: "contacts", COMPANY: "companies", DEAL: "deals"}
NOTE_TO_CONTACT, CALL_TO_CONTACT = 202, 194
UNIQUE_ID = "leadflow_id"  # the unique custom property non-person records are upserted by
DAILY_WAIT = timedelta(hours=1)
SECONDLY_WAIT = timedelta(seconds=10)
EXCERPT = 300
REFUSALS = frozenset({400, 404, 409})
EXISTING = re.compile(r"Existing ID: (\d+)")
#: Lifecycle stages: leadflow's → HubSpot's internal values.
STAGES = {
    "visitor": "subscriber",
    "lead": "lead",
    "mql": "marketingqualifiedlead",
    "sql": "salesqualifiedlead",
    "customer": "customer",
    "advocate": "evangelist",
}
DEAL_STAGES = {"open": "appointmentscheduled", "won": "closedwon", "lost": "closedlost"}
DEFAULT_MAPPING: list[dict[str, Any]] = [
    {"from": "email", "to": "email"},
    {"from": "first_name", "to": "firstname"},
    {"from": "last_name", "to": "lastname"},
    {"from": "phone", "to": "phone", "transform": "e164"},
    {"from": "lifecycle_stage", "to": "lifecyclestage", "transform": {"enum": STAGES}},
    {"from": "owner.email", "to": "hubspot_owner_id", "transform": "owner"},
    {"from": "company.name", "to": "company"},
]


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
        if value.isdigit():
            return datetime.fromtimestamp(int(value) / 1000, UTC)
    return None


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def rate_of(headers: Mapping[str, str]) -> RateSeen | None:
    """What HubSpot's rate headers say (the 10-second window's, else the per-second one's)."""
    lower = {k.lower(): v for k, v in headers.items()}
    remaining = _int(lower.get("x-hubspot-ratelimit-remaining"))
    if remaining is not None:
        window = _int(lower.get("x-hubspot-ratelimit-interval-milliseconds"))
        limit = _int(lower.get("x-hubspot-ratelimit-max"))
        return RateSeen(limit, remaining, window / 1000 if window else 10.0)
    remaining = _int(lower.get("x-hubspot-ratelimit-secondly-remaining"))
    if remaining is not None:
        return RateSeen(_int(lower.get("x-hubspot-ratelimit-secondly")), remaining, 1.0)
    return None


def _guarded_factory(pool: urllib3.PoolManager) -> Callable[[Any, str, dict[str, Any]], Any]:
    """The client's API factory, every API made as the client would and then put on ``pool`` (the
    guarded pool manager: the client's own would connect to whatever the name resolves to then)."""

    def make(package: Any, name: str, config: dict[str, Any]) -> Any:
        api = DiscoveryBase._default_api_factory(package, name, config)
        rest = api.api_client.rest_client
        rest.pool_manager.clear()
        rest.pool_manager = pool
        return api

    return make


def _email_of(result: Any) -> str:
    return str((result.get("properties") or {}).get("email", "")).lower()


def _body(raw: Any) -> dict[str, Any]:
    if isinstance(raw, bytes | str) and raw:
        with contextlib.suppress(ValueError):
            found = json.loads(raw)
            return found if isinstance(found, dict) else {}
    return {}


class HubSpotVendor:
    """One HubSpot account (a private app's access token)."""

    name: ClassVar[str] = "hubspot"
    batch_size: ClassVar[int] = 100
    rate: ClassVar[float] = 10.0
    burst: ClassVar[float] = 100.0
    window: ClassVar[float] = 10.0  # the burst is counted in fixed 10-s windows (a log, not a bucket)
    kinds: ClassVar[frozenset[str]] = frozenset({CONTACT, COMPANY, DEAL, ACTIVITY})
    match_field: ClassVar[str] = "email"

    def __init__(
        self,
        credentials: Mapping[str, Any],
        host: str | None,
        network: Network,
        options: Mapping[str, Any] | None = None,  # none: every setting of this vendor is its credentials
    ) -> None:
        token = credentials.get("access_token")
        if not isinstance(token, str) or not token:
            raise VendorError("HubSpot needs an access_token", retry=False)
        self.host = (host or HOST).rstrip("/")
        self.network = network
        extra: dict[str, Any] = {"ssl_ca_cert": network.ca_file} if network.ca_file else {}
        # one pool for every API of the client, each connection checked by the guard at connect time
        self._pool = GuardedPoolManager(
            network.policy,
            num_pools=4,
            maxsize=4,
            cert_reqs="CERT_REQUIRED",
            ca_certs=network.ca_file,
            retries=Retry(total=0),
        )
        self._client = Client(
            access_token=token,
            host=self.host,
            retry=Retry(total=0),
            api_factory=_guarded_factory(self._pool),
            **extra,
        )
        crm = self._client.crm
        self._batch = {
            CONTACT: crm.contacts.batch_api,
            COMPANY: crm.companies.batch_api,
            DEAL: crm.deals.batch_api,
            "notes": crm.objects.notes.batch_api,
            "calls": crm.objects.calls.batch_api,
        }
        self._contacts = crm.contacts.basic_api
        self._search = crm.contacts.search_api
        self._associations = crm.associations.v4.batch_api
        self._owners = crm.owners.owners_api
        self._properties = crm.properties.core_api
        self._groups = crm.properties.groups_api
        self._unique_made: set[str] = set()  # object types known to have UNIQUE_ID
        self.rate_seen: RateSeen | None = None

    # --- one call -------------------------------------------------------------------------------

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run one client call; its answer's JSON (rate headers noted); failures as VendorError."""
        self.network.check(self.host)
        try:
            answer = method(*args, _preload_content=False, _request_timeout=self.network.timeout, **kwargs)
        except urllib3.exceptions.HTTPError as exc:
            raise VendorError(f"HubSpot unreachable: {type(exc).__name__}", retry=True) from None
        except Exception as exc:  # the client's ApiException of each sub-package
            status = getattr(exc, "status", None)
            if not isinstance(status, int):
                raise
            raise self._refusal(
                status, getattr(exc, "headers", None) or {}, getattr(exc, "body", None)
            ) from None
        self._note(answer.headers)
        return _body(answer.data)

    def _note(self, headers: Mapping[str, str]) -> None:
        seen = rate_of(headers)
        if seen is not None:
            self.rate_seen = seen

    def _refusal(self, status: int, headers: Mapping[str, str], raw: Any) -> VendorError:
        self._note(headers)
        body = _body(raw)
        message = str(body.get("message") or body.get("category") or "")[:EXCERPT]
        text = f"HubSpot {status}: {message}" if message else f"HubSpot {status}"
        if status == 0:  # the client's own failure (TLS)
            return VendorError(text, retry=True)
        if status == 429:
            policy = str(body.get("policyName") or "")
            asked = parse_retry_after(
                {k.lower(): v for k, v in headers.items()}.get("retry-after"), datetime.now(UTC)
            )
            wait = asked or (DAILY_WAIT if policy == "DAILY" else SECONDLY_WAIT)
            return VendorError(
                f"HubSpot 429 rate limit ({policy or 'unknown'})",
                retry=True,
                status=429,
                retry_after=wait,
                rate_limited=True,
            )
        return VendorError(text, retry=status >= 500 or status == 408, status=status)

    # --- the interface ----------------------------------------------------------------------------

    def check(self) -> None:
        self._call(self._contacts.get_page, limit=1)

    def calls(self, kind: str, records: Sequence[Record]) -> int:
        known = any(r.remote_id for r in records)
        new = any(not r.remote_id for r in records)
        linked = any(r.associations for r in records)
        if kind == ACTIVITY:  # an upsert and an association per object type (calls, notes)
            return 2 * len({r.properties.get("kind") == "call" for r in records})
        return int(known) + int(new) + (2 if linked else 0)

    def write(self, kind: str, records: Sequence[Record]) -> list[Written]:
        if kind == ACTIVITY:
            return self._activities(records)
        found = self._guarded([r for r in records if r.remote_id], lambda rs: self._by_id(rs, kind))
        fresh = [r for r in records if not r.remote_id]
        if fresh:
            found += self._guarded(
                fresh, self._upsert if kind == CONTACT else lambda rs: self._create(rs, kind)
            )
        self._associate(kind, records, found)
        return found

    def _guarded(
        self, records: Sequence[Record], batch: Callable[[Sequence[Record]], list[Written]]
    ) -> list[Written]:
        """A batch HubSpot refuses as a whole (400, 404, 409: one bad record) is written record by record,
        so the others go through: a contact whose new email another HubSpot contact holds is a
        ``CONFLICT`` naming it (a human merges them), one deleted in HubSpot since is upserted again by
        email, any other refusal is that record's ``FAILED``."""
        if not records:
            return []
        try:
            return batch(records)
        except VendorError as exc:
            if exc.retry or exc.status not in REFUSALS:
                raise
            if len(records) > 1:
                return [w for record in records for w in self._guarded([record], batch)]
            return [self._refused(records[0], exc)]

    def _refused(self, record: Record, exc: VendorError) -> Written:
        existing = EXISTING.search(str(exc))
        if exc.status == 409 and existing:
            return Written(record.local_id, CONFLICT, error=str(exc), candidates=(existing.group(1),))
        if exc.status == 404 and record.kind == CONTACT and record.remote_id and record.match:
            fresh = Record(
                record.kind, record.local_id, record.properties, None, record.match, record.associations
            )
            return self._guarded([fresh], self._upsert)[0]
        return Written(record.local_id, FAILED, error=str(exc))

    def _results(
        self, records: Sequence[Record], answer: dict[str, Any], key: Callable[[Any], str]
    ) -> list[Written]:
        by_key = {key(result): result for result in answer.get("results") or []}
        written: list[Written] = []
        for record in records:
            result = by_key.get(record.remote_id or record.match or record.local_id)
            if result is None:
                written.append(Written(record.local_id, FAILED, error=self._error_for(answer, record)))
                continue
            modified = _time(result.get("updatedAt")) or _time(
                (result.get("properties") or {}).get("lastmodifieddate")
            )
            written.append(Written(record.local_id, OK, str(result["id"]), modified))
        return written

    @staticmethod
    def _error_for(answer: dict[str, Any], record: Record) -> str:
        for error in answer.get("errors") or []:
            ids = {str(v) for v in (error.get("context") or {}).get("ids", [])}
            if not ids or record.remote_id in ids or record.match in ids:
                return f"HubSpot: {str(error.get('message') or error.get('category'))[:EXCERPT]}"
        return "HubSpot returned no result for this record"

    def _by_id(self, records: Sequence[Record], kind: str) -> list[Written]:
        if not records:
            return []
        inputs = [{"id": r.remote_id, "properties": dict(r.properties)} for r in records]
        answer = self._call(self._batch[kind].update, {"inputs": inputs})
        return self._results(records, answer, lambda result: str(result.get("id")))

    def _upsert(self, records: Sequence[Record]) -> list[Written]:
        inputs = [
            {"idProperty": "email", "id": r.match, "properties": {**r.properties, "email": r.match}}
            for r in records
            if r.match
        ]
        missing = [Written(r.local_id, FAILED, error="no email to upsert by") for r in records if not r.match]
        if not inputs:
            return missing
        answer = self._call(self._batch[CONTACT].upsert, {"inputs": inputs})
        key = _email_of
        lowered = [
            Record(r.kind, r.local_id, r.properties, None, (r.match or "").lower())
            for r in records
            if r.match
        ]
        return self._results(lowered, answer, key) + missing

    def _create(self, records: Sequence[Record], kind: str, api: str | None = None) -> list[Written]:
        """A first write of a company, deal or activity: an upsert by :data:`UNIQUE_ID`, so a repeat
        (its answer lost the first time) finds the record instead of making a second."""
        inputs = [
            {
                "idProperty": UNIQUE_ID,
                "id": r.local_id,
                "properties": {k: v for k, v in r.properties.items() if k != "kind"}
                | {UNIQUE_ID: r.local_id},
                "objectWriteTraceId": r.local_id,
            }
            for r in records
        ]
        self._unique(api or OBJECTS[kind])
        answer = self._call(self._batch[api or kind].upsert, {"inputs": inputs})
        keyed = [Record(r.kind, r.local_id, r.properties, None, r.local_id) for r in records]
        return self._results(
            keyed, answer, lambda result: str((result.get("properties") or {}).get(UNIQUE_ID))
        )

    def _unique(self, object_type: str) -> None:
        """Make :data:`UNIQUE_ID` on this object type unless it is there (once per client)."""
        if object_type in self._unique_made:
            return
        try:
            self._call(self._properties.get_by_name, object_type, UNIQUE_ID)
        except VendorError as exc:
            if exc.status != 404:
                raise
            group = {"name": "leadflow", "label": "leadflow"}
            with contextlib.suppress(VendorError):  # 409: made before
                self._call(self._groups.create, object_type, group)
            prop: dict[str, Any] = {
                "name": UNIQUE_ID,
                "label": "leadflow id",
                "type": "string",
                "fieldType": "text",
            }
            prop |= {"groupName": "leadflow", "hasUniqueValue": True}
            try:
                self._call(self._properties.create, object_type, prop)
            except VendorError as made:
                if made.status != 409:  # made meanwhile
                    raise
        self._unique_made.add(object_type)

    def _associate(self, kind: str, records: Sequence[Record], written: Sequence[Written]) -> None:
        """Default (unlabelled) v4 associations of the records just written with their linked objects."""
        remote = {w.local_id: w.remote_id for w in written if w.outcome == OK and w.remote_id}
        pairs: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            source = remote.get(record.local_id)
            for other, ids in record.associations.items():
                if source is None or other not in OBJECTS:
                    continue
                for target in ids:
                    pairs.setdefault(other, []).append({"from": {"id": source}, "to": {"id": target}})
        for other, inputs in sorted(pairs.items()):
            self._call(self._associations.create_default, OBJECTS[kind], OBJECTS[other], {"inputs": inputs})

    def _activities(self, records: Sequence[Record]) -> list[Written]:
        written: list[Written] = []
        for api in ("calls", "notes"):  # associated by default: types 194 and 202
            mine = [r for r in records if (r.properties.get("kind") == "call") == (api == "calls")]
            if not mine:
                continue
            found = self._create(mine, ACTIVITY, api)
            written += found
            remote = {w.local_id: w.remote_id for w in found if w.outcome == OK and w.remote_id}
            inputs = [
                {"from": {"id": remote[r.local_id]}, "to": {"id": target}}
                for r in mine
                if r.local_id in remote
                for target in r.associations.get(CONTACT, ())
            ]
            if inputs:
                self._call(self._associations.create_default, api, OBJECTS[CONTACT], {"inputs": inputs})
        return written

    def erase(self, remote_ids: Sequence[str]) -> list[Written]:
        done: list[Written] = []
        for remote_id in remote_ids:
            try:
                self._call(self._contacts.purge, {"objectId": remote_id})
            except VendorError as exc:
                if exc.status != 404:  # already gone: erased
                    raise
            done.append(Written(remote_id, OK, remote_id))
        return done

    def changes(self, since: datetime | None, fields: Sequence[str], limit: int) -> list[Change]:
        filters = (
            [{"propertyName": "lastmodifieddate", "operator": "GT", "value": str(_ms(since))}]
            if since
            else []
        )
        request = {
            "filterGroups": [{"filters": filters}] if filters else [],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": sorted({*fields, "email", "lastmodifieddate"}),
            "limit": min(limit, 200),
        }
        answer = self._call(self._search.do_search, request)
        found: list[Change] = []
        for result in answer.get("results") or []:
            properties = result.get("properties") or {}
            modified = _time(properties.get("lastmodifieddate")) or _time(result.get("updatedAt"))
            if modified is None:
                continue
            email = properties.get("email")
            found.append(
                Change(str(result["id"]), email if isinstance(email, str) else None, properties, modified)
            )
        return found

    def owners(self) -> dict[str, str]:
        answer = self._call(self._owners.get_page, limit=500)
        return {
            str(owner["email"]).lower(): str(owner["id"])
            for owner in answer.get("results") or []
            if owner.get("email") and owner.get("id") is not None
        }

    def properties(self, kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
        if kind == COMPANY:
            found = {"name": row.get("name"), "domain": row.get("domain"), "industry": row.get("industry")}
        elif kind == DEAL:
            status = row.get("status")
            found = {
                "dealname": row.get("title"),
                "amount": str(row.get("value")) if row.get("value") is not None else None,
                "deal_currency_code": row.get("currency"),
                "pipeline": "default",
                "dealstage": DEAL_STAGES.get(str(status), DEAL_STAGES["open"]),
                "closedate": str(row["expected_close"]) if row.get("expected_close") else None,
            }
        else:
            moment = row.get("occurred_at")
            stamp = _ms(moment) if isinstance(moment, datetime) else None
            text = "\n\n".join(str(v) for v in (row.get("subject"), row.get("body")) if v)
            if row.get("kind") == "call":
                found = {
                    "kind": "call",
                    "hs_timestamp": stamp,
                    "hs_call_title": row.get("subject"),
                    "hs_call_body": row.get("body"),
                }
            else:
                found = {"kind": "note", "hs_timestamp": stamp, "hs_note_body": text or None}
        return {k: v for k, v in found.items() if v is not None}

    def close(self) -> None:
        apis: tuple[Any, ...] = (self._contacts, self._search, self._associations, self._owners)
        apis += (self._properties, self._groups)
        for api in (*self._batch.values(), *apis):
            with contextlib.suppress(Exception):
                api.api_client.close()
        self._pool.clear()
