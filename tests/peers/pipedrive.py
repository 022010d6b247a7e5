"""Pipedrive as a test can meet it: a stateful peer speaking API v2 where Pipedrive has it (v1 for notes,
field definitions and the current user), over plain HTTP (httpx takes any base URL).

- Auth: ``x-api-token`` header (or ``?api_token=``) or ``Authorization: Bearer``; a bad token → ``401
  {"success": false, "error": "unauthorized access", "errorCode": 401, ...}``.
- ``GET /api/v2/persons/search?term=&fields=email&exact_match=true`` → ``{"success", "data": {"items":
  [{"result_score", "item": {"id", "type", "name", "emails": [str], "phones", "organization", "owner",
  ...}}]}, "additional_data": {"next_cursor"}}`` (exact: whole value, case-insensitive; else a substring of
  ≥ 2 characters). ``search_lag_s`` delays indexing as Pipedrive's search does (0 by default).
- ``POST /api/v2/persons``, ``GET``/``PATCH``/``DELETE /api/v2/persons/{id}``, ``GET
  /api/v2/persons?updated_since=&cursor=&limit=``; the same for ``organizations`` (and their search) and
  ``deals`` (``pipeline_id``/``stage_id`` checked, ``status`` open/won/lost); ``GET /api/v2/pipelines``,
  ``GET /api/v2/stages?pipeline_id=``.
- ``POST /api/v1/notes`` (notes have no v2 endpoints), ``GET /api/v1/notes?person_id=|deal_id=|org_id=``.
- ``GET``/``POST /api/v1/personFields`` (and ``organizationFields``, ``dealFields``): custom fields have a
  40-hex ``key``; v2 bodies carry them in ``custom_fields: {key: value}``; an unknown key → ``400``.
- Rate limits per token in 2-second windows (``limit``, 80 by default: the Professional plan's api_token
  figure; search ``search_limit`` 10 on top of it); every answer carries ``x-ratelimit-limit``,
  ``x-ratelimit-remaining``, ``x-ratelimit-reset`` and (api_token) ``x-daily-requests-left`` (POST/PUT/PATCH
  per UTC day, ``daily_limit``). Over a window → ``429`` with ``Retry-After`` and a penalty: Pipedrive then
  refuses the token for ``penalty_s`` (10 s, as its community forum reports), ``x-ratelimit-reset`` says so.
- Times: v2 RFC 3339 (``2026-03-02T09:00:00Z``), v1 ``2026-03-02 09:00:00``; ``update_time`` moves on every
  write, from ``peer.now()``.

A test plays the salesperson with :meth:`PipedrivePeer.remote_update` and counts with
:meth:`PipedrivePeer.count` / :meth:`PipedrivePeer.find` (``kind`` is ``person``, ``organization``,
``deal`` or ``note``).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.peers.saas import Answer, Call, SaasPeer, WindowLimit, route

TOKEN = "pd-test-token-0123456789abcdef"
INFO = "Please check developers.pipedrive.com for more information about Pipedrive API."
KINDS = ("person", "organization", "deal", "note")
PLURAL = {"persons": "person", "organizations": "organization", "deals": "deal"}
FIELD_LISTS = {"personFields": "person", "organizationFields": "organization", "dealFields": "deal"}
OWNER = 1  # the token's user
STAGES = ["Lead In", "Contact Made", "Demo Scheduled", "Proposal Made", "Negotiations Started"]
WRITES = ("POST", "PUT", "PATCH")


def fail(status: int, message: str, **extra: Any) -> Answer:
    body = {"success": False, "error": message, "error_info": INFO, "data": None, "additional_data": None}
    return Answer(status, {**body, **extra})


def ok(data: Any, status: int = 200, **additional: Any) -> Answer:
    body: dict[str, Any] = {"success": True, "data": data}
    if additional:
        body["additional_data"] = additional
    return Answer(status, body)


def v2_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v1_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class PipedrivePeer(SaasPeer):
    """``with PipedrivePeer() as pd:`` then ``httpx.Client(base_url=pd.url, headers={"x-api-token":
    TOKEN})``."""

    def __init__(
        self,
        *,
        tls: bool = False,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
        limit: int = 80,
        search_limit: int = 10,
        daily_limit: int = 10_000,
        penalty_s: float = 10.0,
        search_lag_s: float = 0.0,
    ) -> None:
        super().__init__(tls=tls, seed=seed, clock=clock, now=now)
        self.tokens = {TOKEN}
        self.oauth_tokens: set[str] = set()
        self.limit, self.search_limit, self.daily_limit = limit, search_limit, daily_limit
        self.penalty_s = penalty_s
        self.search_lag_s = search_lag_s
        self.records: dict[str, dict[int, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.fields: dict[str, dict[str, dict[str, Any]]] = {
            kind: {} for kind in ("person", "organization", "deal")
        }
        self.pipelines: dict[int, dict[str, Any]] = {
            1: {"id": 1, "name": "Sales", "order_nr": 1, "is_deleted": False}
        }
        self.stages: dict[int, dict[str, Any]] = {
            n: {"id": n, "name": name, "pipeline_id": 1, "order_nr": n, "is_deleted": False}
            for n, name in enumerate(STAGES, start=1)
        }
        self._ids = {kind: itertools.count(1) for kind in (*KINDS, "field")}
        self._windows: dict[str, tuple[WindowLimit, WindowLimit]] = {}
        self._penalty_until: dict[str, float] = {}
        self._daily: dict[str, tuple[str, int]] = {}
        self._indexed_at: dict[tuple[str, int], float] = {}
        self._emails: dict[str, set[int]] = {}  # lower-cased email -> person ids

    # ---- for tests --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every record, field, window and budget (a module-scoped peer between tests)."""
        with self.lock:
            for records in self.records.values():
                records.clear()
            for fields in self.fields.values():
                fields.clear()
            self._windows.clear()
            self._penalty_until.clear()
            self._daily.clear()
            self._indexed_at.clear()
            self._emails.clear()

    def add_field(self, kind: str, name: str, field_type: str = "varchar") -> str:
        """A custom field of ``kind`` (person, organization, deal): its key."""
        with self.lock:
            return str(self._add_field(kind, name, field_type, None)["key"])

    def remote_update(self, kind: str, record_id: int, **fields: Any) -> dict[str, Any]:
        """A salesperson edits a record in Pipedrive: fields set, ``update_time`` moved to now()."""
        with self.lock:
            record = self.records[kind][record_id]
            self._index_emails(kind, record, add=False)
            if "emails" in fields:
                fields["emails"] = _contact_points("emails", fields["emails"])
            record.update(fields)
            record["update_time"] = self._stamp(kind)
            self._index_emails(kind, record, add=True)
            return copy.deepcopy(record)

    def get(self, kind: str, record_id: int) -> dict[str, Any] | None:
        with self.lock:
            record = self.records[kind].get(record_id)
            return copy.deepcopy(record) if record else None

    def find(self, kind: str, *, email: str | None = None, **where: Any) -> list[dict[str, Any]]:
        """The records whose fields equal ``where`` (a person's ``email`` among its emails, any case)."""
        with self.lock:
            return [copy.deepcopy(r) for r in self.records[kind].values() if _matches(r, email, where)]

    def count(self, kind: str, *, email: str | None = None, **where: Any) -> int:
        with self.lock:
            return sum(1 for r in self.records[kind].values() if _matches(r, email, where))

    # ---- the vendor's habits ----------------------------------------------------------------------
    def token_of(self, call: Call) -> str | None:
        header = call.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return header[7:] if header[7:] in self.oauth_tokens else None
        token = call.headers.get("x-api-token") or call.arg("api_token")
        return token if token in self.tokens else None

    def auth(self, call: Call) -> Answer | None:
        if self.token_of(call) is None:
            return fail(401, "unauthorized access", errorCode=401)
        return None

    def limited(self, call: Call) -> Answer | None:
        token = self.token_of(call) or ""
        general, search = self._window(token)
        now = self.clock()
        until = self._penalty_until.get(token, 0.0)
        if now < until:
            return self._over(call, general, until - now)
        allowed, remaining, reset_s = general.take()
        if allowed and call.path.endswith("/search"):
            allowed, _, reset_s = search.take()
        if not allowed:
            self._penalty_until[token] = now + max(self.penalty_s, reset_s)
            return self._over(call, general, max(self.penalty_s, reset_s))
        call.meta["rate"] = (general.limit, remaining, reset_s)
        if call.method in WRITES and token in self.tokens:
            day, used = self._daily.get(token, ("", 0))
            today = self.now().date().isoformat()
            used = used if day == today else 0
            if used >= self.daily_limit:
                midnight = datetime.fromisoformat(today).replace(tzinfo=UTC) + timedelta(days=1)
                wait = math.ceil((midnight - self.now()).total_seconds())
                return _retry_after(fail(429, "Daily request limit reached", errorCode=429), wait)
            self._daily[token] = (today, used + 1)
        return None

    def rate_headers(self, call: Call) -> dict[str, str]:
        token = self.token_of(call)
        if token is None:
            return {}
        limit, remaining, reset_s = call.meta.get("rate") or (self.limit, *self._window(token)[0].peek())
        headers = {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(remaining),
            "x-ratelimit-reset": str(math.ceil(reset_s)),
        }
        if token in self.tokens:
            day, used = self._daily.get(token, ("", 0))
            used = used if day == self.now().date().isoformat() else 0
            headers["x-daily-requests-left"] = str(max(self.daily_limit - used, 0))
        return headers

    def not_found(self, call: Call) -> Answer:
        return fail(404, "Unknown method .", errorCode=404)

    def too_many(self, call: Call, retry_after: int) -> Answer:
        return _retry_after(fail(429, "Request over limit", errorCode=429), retry_after)

    def server_error(self, call: Call, status: int) -> Answer:
        return fail(status, "Requested service is not available", errorCode=status)

    # ---- persons, organizations, deals (v2) -------------------------------------------------------
    @route("GET", r"/api/v2/(?P<plural>persons|organizations|deals)/search")
    def search(self, call: Call, plural: str) -> Answer:
        kind = PLURAL[plural]
        term = (call.arg("term") or "").strip()
        exact = (call.arg("exact_match") or "").lower() in ("true", "1")
        if len(term) < (1 if exact else 2):
            return fail(400, "Search term must be at least 2 characters long", errorCode=400)
        fields = set((call.arg("fields") or "name,email,phone,custom_fields,notes").split(","))
        wanted = term.lower()
        visible = self.clock()
        items = []
        candidates: Any = self.records[kind].values()
        if exact and kind == "person" and fields == {"email"}:  # the connector's lookup: by the index
            candidates = [self.records[kind][n] for n in sorted(self._emails.get(wanted, ()))]
        for record in candidates:
            if self._indexed_at.get((kind, record["id"]), 0.0) > visible:
                continue
            values = _searchable(kind, record, fields)
            hit = any(v == wanted for v in values) if exact else any(wanted in v for v in values)
            if hit:
                items.append({"result_score": 1.0 if exact else 0.5, "item": self._search_item(kind, record)})
        page, cursor, answer = self._paginate(call, items)
        return answer or ok({"items": page}, next_cursor=cursor)

    @route("POST", r"/api/v2/(?P<plural>persons|organizations|deals)")
    def create(self, call: Call, plural: str) -> Answer:
        kind = PLURAL[plural]
        try:
            body = _body(call)
            record = self._validated(kind, body, None)
        except Rejected as exc:
            return fail(exc.status, exc.message, errorCode=exc.status)
        record_id = next(self._ids[kind])
        stamp = self._stamp(kind)
        record = {"id": record_id, "owner_id": OWNER, "add_time": stamp, "is_deleted": False, **record}
        record["update_time"] = stamp
        self.records[kind][record_id] = record
        self._index_emails(kind, record, add=True)
        self._indexed_at[(kind, record_id)] = self.clock() + self.search_lag_s
        return ok(copy.deepcopy(record))

    @route("GET", r"/api/v2/(?P<plural>persons|organizations|deals)")
    def list_records(self, call: Call, plural: str) -> Answer:
        kind = PLURAL[plural]
        records = list(self.records[kind].values())
        since = call.arg("updated_since")
        if since:
            moment = parse_time(since)
            if moment is None:
                return fail(400, "updated_since must be an RFC 3339 datetime", errorCode=400)
            records = [r for r in records if (parse_time(r["update_time"]) or moment) >= moment]
        if call.arg("sort_by") == "update_time":
            records.sort(
                key=lambda r: (r["update_time"], r["id"]), reverse=call.arg("sort_direction") == "desc"
            )
        page, cursor, answer = self._paginate(call, [copy.deepcopy(r) for r in records])
        return answer or ok(page, next_cursor=cursor)

    @route("GET", r"/api/v2/(?P<plural>persons|organizations|deals)/(?P<record_id>\d+)")
    def read(self, call: Call, plural: str, record_id: str) -> Answer:
        record = self.records[PLURAL[plural]].get(int(record_id))
        return ok(copy.deepcopy(record)) if record else self._missing(PLURAL[plural])

    @route("PATCH", r"/api/v2/(?P<plural>persons|organizations|deals)/(?P<record_id>\d+)")
    def update(self, call: Call, plural: str, record_id: str) -> Answer:
        kind = PLURAL[plural]
        record = self.records[kind].get(int(record_id))
        if record is None:
            return self._missing(kind)
        try:
            changes = self._validated(kind, _body(call), record)
        except Rejected as exc:
            return fail(exc.status, exc.message, errorCode=exc.status)
        custom = changes.pop("custom_fields", None)
        self._index_emails(kind, record, add=False)
        record.update(changes)
        self._index_emails(kind, record, add=True)
        if custom is not None:
            record["custom_fields"] = {**record.get("custom_fields", {}), **custom}
        record["update_time"] = self._stamp(kind)
        return ok(copy.deepcopy(record))

    @route("DELETE", r"/api/v2/(?P<plural>persons|organizations|deals)/(?P<record_id>\d+)")
    def delete(self, call: Call, plural: str, record_id: str) -> Answer:
        kind = PLURAL[plural]
        record = self.records[kind].pop(int(record_id), None)
        if record is None:
            return self._missing(kind)
        self._index_emails(kind, record, add=False)
        return ok({"id": int(record_id)})

    @route("GET", r"/api/v2/pipelines")
    def list_pipelines(self, call: Call) -> Answer:
        return ok(list(self.pipelines.values()), next_cursor=None)

    @route("GET", r"/api/v2/stages")
    def list_stages(self, call: Call) -> Answer:
        pipeline = call.arg("pipeline_id")
        stages = [s for s in self.stages.values() if pipeline is None or str(s["pipeline_id"]) == pipeline]
        return ok(stages, next_cursor=None)

    # ---- v1: notes, fields, me --------------------------------------------------------------------
    @route("POST", r"/api/v1/notes")
    def create_note(self, call: Call) -> Answer:
        try:
            body = _body(call)
        except Rejected as exc:
            return fail(exc.status, exc.message, errorCode=exc.status)
        if not str(body.get("content") or "").strip():
            return fail(400, "Note content is required", errorCode=400)
        targets = {"person_id": "person", "deal_id": "deal", "org_id": "organization"}
        given = {key: body.get(key) for key in (*targets, "lead_id") if body.get(key) is not None}
        if not given:
            return fail(
                400, "One of deal_id, lead_id, org_id, person_id or project_id is required", errorCode=400
            )
        for key, kind in targets.items():
            if key in given and int(str(given[key])) not in self.records[kind]:
                return fail(400, f"{kind.capitalize()} not found", errorCode=400)
        note_id = next(self._ids["note"])
        stamp = v1_time(self.now())
        note = {"id": note_id, "content": str(body["content"]), "user_id": OWNER, "active_flag": True}
        note |= {key: given.get(key) for key in (*targets, "lead_id")}
        note |= {"add_time": stamp, "update_time": stamp}
        self.records["note"][note_id] = note
        return ok(copy.deepcopy(note), status=201)

    @route("GET", r"/api/v1/notes")
    def list_notes(self, call: Call) -> Answer:
        notes = list(self.records["note"].values())
        for key in ("person_id", "deal_id", "org_id"):
            if call.arg(key):
                notes = [n for n in notes if str(n.get(key)) == call.arg(key)]
        return ok(
            copy.deepcopy(notes), pagination={"start": 0, "limit": 100, "more_items_in_collection": False}
        )

    @route("GET", r"/api/v1/(?P<listing>personFields|organizationFields|dealFields)")
    def list_fields(self, call: Call, listing: str) -> Answer:
        fields = list(self.fields[FIELD_LISTS[listing]].values())
        return ok(
            copy.deepcopy(fields), pagination={"start": 0, "limit": 500, "more_items_in_collection": False}
        )

    @route("POST", r"/api/v1/(?P<listing>personFields|organizationFields|dealFields)")
    def create_field(self, call: Call, listing: str) -> Answer:
        try:
            body = _body(call)
        except Rejected as exc:
            return fail(exc.status, exc.message, errorCode=exc.status)
        if not body.get("name") or not body.get("field_type"):
            return fail(400, "Field name and field_type are required", errorCode=400)
        field = self._add_field(
            FIELD_LISTS[listing], str(body["name"]), str(body["field_type"]), body.get("options")
        )
        return ok(copy.deepcopy(field))

    @route("GET", r"/api/v1/users/me")
    def me(self, call: Call) -> Answer:
        user = {"id": OWNER, "name": "Integration", "email": "integration@example.com", "company_id": 1}
        return ok({**user, "company_domain": "leadflow-peer", "active_flag": True})

    # ---- inside -----------------------------------------------------------------------------------
    def _index_emails(self, kind: str, record: dict[str, Any], *, add: bool) -> None:
        if kind != "person":
            return
        for point in record.get("emails") or []:
            email = str(point["value"]).lower()
            if add:
                self._emails.setdefault(email, set()).add(record["id"])
            else:
                self._emails.get(email, set()).discard(record["id"])

    def _window(self, token: str) -> tuple[WindowLimit, WindowLimit]:
        if token not in self._windows:
            self._windows[token] = (
                WindowLimit(self.limit, 2.0, clock=self.clock),
                WindowLimit(self.search_limit, 2.0, clock=self.clock),
            )
        general, search = self._windows[token]
        general.limit, search.limit = self.limit, self.search_limit
        return general, search

    def _over(self, call: Call, general: WindowLimit, wait_s: float) -> Answer:
        call.meta["rate"] = (general.limit, 0, wait_s)
        return _retry_after(fail(429, "Request over limit", errorCode=429), math.ceil(wait_s))

    def _stamp(self, kind: str) -> str:
        return v1_time(self.now()) if kind == "note" else v2_time(self.now())

    def _missing(self, kind: str) -> Answer:
        return fail(404, f"{kind.capitalize()} not found", errorCode=404)

    def _add_field(self, kind: str, name: str, field_type: str, options: Any) -> dict[str, Any]:
        field_id = next(self._ids["field"])
        key = hashlib.sha1(f"{kind}:{field_id}:{name}".encode()).hexdigest()
        field = {"id": field_id, "key": key, "name": name, "field_type": field_type, "edit_flag": True}
        field |= {"active_flag": True, "options": options}
        self.fields[kind][key] = field
        return field

    def _paginate(self, call: Call, items: list[Any]) -> tuple[list[Any], str | None, Answer | None]:
        try:
            limit = int(call.arg("limit") or 100)
            start = int(call.arg("cursor") or 0)
        except ValueError:
            return [], None, fail(400, "Invalid cursor or limit", errorCode=400)
        if not 1 <= limit <= 500:
            return [], None, fail(400, "limit must be between 1 and 500", errorCode=400)
        page = items[start : start + limit]
        return page, (str(start + limit) if start + limit < len(items) else None), None

    def _validated(self, kind: str, body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any]:
        allowed = {
            "person": {
                "name",
                "first_name",
                "last_name",
                "owner_id",
                "org_id",
                "emails",
                "phones",
                "visible_to",
            }
            | {"label_ids", "job_title", "birthday", "custom_fields", "marketing_status"},
            "organization": {"name", "owner_id", "address", "visible_to", "label_ids", "custom_fields"},
            "deal": {
                "title",
                "owner_id",
                "person_id",
                "org_id",
                "pipeline_id",
                "stage_id",
                "value",
                "currency",
            }
            | {"status", "expected_close_date", "probability", "visible_to", "label_ids", "custom_fields"}
            | {"lost_reason", "won_time", "lost_time", "close_time"},
        }[kind]
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise Rejected(400, f"Unknown parameter(s): {', '.join(unknown)}")
        record = dict(body)
        if kind == "person":
            if existing is None and not record.get("name"):
                parts = [record.get("first_name"), record.get("last_name")]
                record["name"] = " ".join(str(p) for p in parts if p)
                if not record["name"]:
                    raise Rejected(400, "Name must be given")
            for key in ("emails", "phones"):
                if key in record:
                    record[key] = _contact_points(key, record[key])
            if existing is None:
                record.setdefault("emails", [])
                record.setdefault("phones", [])
        if kind == "organization" and existing is None and not record.get("name"):
            raise Rejected(400, "Name must be given")
        if kind == "deal":
            if existing is None and not record.get("title"):
                raise Rejected(400, "Title must be given")
            self._check_pipeline(record, existing)
            if record.get("status", "open") not in ("open", "won", "lost", "deleted"):
                raise Rejected(400, "status must be one of open, won, lost")
            if existing is None:
                record.setdefault("status", "open")
                record.setdefault("currency", "EUR")
                record.setdefault("value", 0)
        for key, target in (("org_id", "organization"), ("person_id", "person")):
            if record.get(key) is not None and int(record[key]) not in self.records[target]:
                raise Rejected(400, f"{target.capitalize()} with id {record[key]} not found")
        custom = record.get("custom_fields")
        if custom is not None:
            if not isinstance(custom, dict):
                raise Rejected(400, "custom_fields must be an object")
            unknown = sorted(set(custom) - set(self.fields[kind]))
            if unknown:
                raise Rejected(400, f"Unknown custom field key(s): {', '.join(unknown)}")
        elif existing is None:
            record["custom_fields"] = {}
        return record

    def _check_pipeline(self, record: dict[str, Any], existing: dict[str, Any] | None) -> None:
        stage_id = record.get("stage_id")
        pipeline_id = record.get("pipeline_id")
        if pipeline_id is not None and pipeline_id not in self.pipelines:
            raise Rejected(400, f"Pipeline with id {pipeline_id} not found")
        if stage_id is not None:
            stage = self.stages.get(stage_id)
            if stage is None:
                raise Rejected(400, f"Stage with id {stage_id} not found")
            if pipeline_id is not None and stage["pipeline_id"] != pipeline_id:
                raise Rejected(400, "Stage does not belong to the given pipeline")
            record["pipeline_id"] = stage["pipeline_id"]
        elif pipeline_id is not None:
            first = min(
                (s for s in self.stages.values() if s["pipeline_id"] == pipeline_id),
                key=lambda s: s["order_nr"],
            )
            record["stage_id"] = first["id"]
        elif existing is None:
            record["pipeline_id"], record["stage_id"] = 1, 1

    def _search_item(self, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        item: dict[str, Any] = {"id": record["id"], "type": kind, "name": record.get("name")}
        if kind == "person":
            org = self.records["organization"].get(record.get("org_id") or 0)
            item |= {
                "phones": [p["value"] for p in record.get("phones", [])],
                "emails": [e["value"] for e in record.get("emails", [])],
                "primary_email": next(
                    (e["value"] for e in record.get("emails", []) if e.get("primary")), None
                ),
                "organization": {"id": org["id"], "name": org["name"], "address": None} if org else None,
                "custom_fields": [],
                "notes": [],
            }
        item |= {"visible_to": record.get("visible_to", 3), "owner": {"id": record.get("owner_id", OWNER)}}
        item["update_time"] = record.get("update_time")
        return item


def _retry_after(answer: Answer, seconds: int) -> Answer:
    answer.headers["Retry-After"] = str(seconds)
    return answer


def _body(call: Call) -> dict[str, Any]:
    try:
        body = call.json()
    except ValueError:
        raise Rejected(400, "Invalid JSON in the request body") from None
    if not isinstance(body, dict):
        raise Rejected(400, "The request body must be a JSON object")
    return body


def _contact_points(key: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) and v.get("value") for v in value):
        raise Rejected(400, f"{key} must be a list of {{value, primary, label}} objects")
    points = [
        {"value": str(v["value"]), "primary": bool(v.get("primary")), "label": v.get("label") or "work"}
        for v in value
    ]
    if points and not any(p["primary"] for p in points):
        points[0]["primary"] = True
    return points


def _searchable(kind: str, record: dict[str, Any], fields: set[str]) -> list[str]:
    values: list[str] = []
    if "name" in fields and record.get("name"):
        values.append(str(record["name"]).lower())
    if "email" in fields:
        values += [str(e["value"]).lower() for e in record.get("emails", [])]
    if "phone" in fields:
        values += [str(p["value"]).lower() for p in record.get("phones", [])]
    if "custom_fields" in fields:
        values += [str(v).lower() for v in record.get("custom_fields", {}).values() if v is not None]
    return values


def _matches(record: dict[str, Any], email: str | None, where: dict[str, Any]) -> bool:
    if email is not None and email.lower() not in [str(e["value"]).lower() for e in record.get("emails", [])]:
        return False
    return all(record.get(key) == value for key, value in where.items())
