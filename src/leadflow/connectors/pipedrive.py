"""Pipedrive (API v2 where it has one, v1 for notes and the current user) over ``httpx``.

The credentials: ``api_token`` (sent as ``x-api-token``) or an OAuth ``access_token``. The options
(:data:`OPTIONS`, not secret: shown and changed like the mapping; a connector made before options
existed has them in its credentials, still read there): ``pipeline_id`` and ``stage_id`` — where a new
deal goes (else Pipedrive's default pipeline's first stage); ``stages`` — leadflow's deal stage ids →
Pipedrive stage ids. The host is the company's API URL (``https://<company>.pipedrive.com``; default
``https://api.pipedrive.com``).

- People: a record written before goes by its id (``PATCH /api/v2/persons/{id}``), so an email change
  updates the same person. A first write searches persons by the exact email (``GET
  /api/v2/persons/search?fields=email&exact_match=true``): none → ``POST /api/v2/persons``; one → that
  person updated; several → a **conflict** with the candidates (never a guess, never a new person).
  Remote fields: ``email`` and ``phone`` (written as the primary of ``emails``/``phones``), ``name``,
  ``first_name``, ``last_name``, ``owner_id``, ``job_title``…; a 40-hex custom field key goes into
  ``custom_fields``. A new person without a name is named after its email (Pipedrive requires one).
  The contact's company is its organisation (``org_id``).
- Organisations (``/api/v2/organizations``), deals (``/api/v2/deals``: ``person_id``, ``org_id``,
  the pipeline and stage, status open/won/lost) updated by id once written; activities as notes
  (``POST /api/v1/notes`` on the person).
- Exactly once: a first write whose answer was lost (a timeout after Pipedrive applied it, a lease that
  ran out mid-write) must not make a second record. An organisation or deal carries leadflow's id in a
  custom field :data:`ID_FIELD` (found by name in ``organizationFields``/``dealFields``, created when
  missing) and a first write searches it (``/api/v2/{deals,organizations}/search?fields=custom_fields
  &exact_match=true``) before creating; a note ends with the line ``[leadflow <id>]`` and a first
  write looks for it among the person's notes (``GET /api/v1/notes?person_id=``).
- Limits: Pipedrive counts requests per token in 2-second windows and writes per day; every answer's
  ``x-ratelimit-limit``/``-remaining``/``-reset`` and ``x-daily-requests-left`` are read into
  :attr:`rate_seen` (the fewer of the window's and the day's remainders); ``429`` waits its
  ``Retry-After`` (the window's reset, or Pipedrive's penalty; without one, ``x-ratelimit-reset``),
  uncounted. Search (``*/search``) has its own window on top of the general one (10 requests per
  2 s): the worker's bucket paces the general limit (:meth:`calls` counts every request), and the
  searches are paced here, waiting with ``pause`` on ``clock`` before one that would make more than
  :data:`SEARCH_LIMIT` in any :data:`SEARCH_SPAN` seconds — the vendor interface has no way to express a
  second limit to the worker. Not a token bucket: a bucket safe against a 2-s window (burst + 2 s of
  refill ≤ 10) could only spend half the window; a log of the last searches' times spends all of it
  whether Pipedrive's window is fixed or rolling (the span has a margin for the request's way there).
- Pull: ``GET /api/v2/persons?updated_since=&sort_by=update_time`` (oldest first).
- Erasure: ``DELETE /api/v2/persons/{id}`` (already gone counts as erased).
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import httpx

from leadflow.connectors import options as opts
from leadflow.connectors.rest import Rest, each
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

HOST = "https://api.pipedrive.com"
OPTIONS: dict[str, opts.Check] = {
    "pipeline_id": opts.positive_id,
    "stage_id": opts.positive_id,
    "stages": opts.mapping_of(opts.positive_id, "Pipedrive stage ids"),
}
WINDOW_S = 2.0
SEARCH_LIMIT = 10  # search requests per 2-s window (on top of the general window)
SEARCH_SPAN = WINDOW_S + 0.1  # the window and a margin for the way there
CUSTOM_KEY = re.compile(r"^[0-9a-f]{40}$")
ID_FIELD = "leadflow id"  # the custom field holding leadflow's id on organisations and deals
PERSON_FIELDS = frozenset({"name", "first_name", "last_name", "owner_id", "org_id", "job_title", "birthday"})
PERSON_FIELDS |= {"visible_to", "label_ids", "marketing_status"}
STATUSES = ("open", "won", "lost")
DEFAULT_MAPPING: list[dict[str, Any]] = [
    {"from": "email", "to": "email"},
    {"from": "first_name", "to": "first_name"},
    {"from": "last_name", "to": "last_name"},
    {"from": "phone", "to": "phone", "transform": "e164"},
]


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.strip().isdigit() else None


def _time(value: Any) -> datetime | None:
    """Pipedrive's v2 (RFC 3339) or v1 (``2026-03-02 09:00:00``, UTC) time."""
    if not isinstance(value, str) or not value:
        return None
    with contextlib.suppress(ValueError):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def _day(value: Any) -> date | None:
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    return value if isinstance(value, date) else None


def _message(body: Any) -> str:
    return str(body.get("error") or "") if isinstance(body, dict) else ""


def _primary(points: Any) -> str | None:
    """The primary value of a v2 ``emails``/``phones`` list (else the first)."""
    if not isinstance(points, list) or not points:
        return None
    chosen = next((p for p in points if isinstance(p, dict) and p.get("primary")), points[0])
    value = chosen.get("value") if isinstance(chosen, dict) else chosen
    return str(value) if value else None


def _id(value: Any) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


class PipedriveVendor:
    """One Pipedrive company account."""

    name: ClassVar[str] = "pipedrive"
    batch_size: ClassVar[int] = 50
    rate: ClassVar[float] = 20.0  # half the Professional plan's 80 requests per 2 s token window
    burst: ClassVar[float] = 40.0
    kinds: ClassVar[frozenset[str]] = frozenset({CONTACT, COMPANY, DEAL, ACTIVITY})
    match_field: ClassVar[str] = "email"

    def __init__(
        self,
        credentials: Mapping[str, Any],
        host: str | None,
        network: Network,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        token, oauth = credentials.get("api_token"), credentials.get("access_token")
        if isinstance(token, str) and token:
            headers = {"x-api-token": token}
        elif isinstance(oauth, str) and oauth:
            headers = {"Authorization": f"Bearer {oauth}"}
        else:
            raise VendorError("Pipedrive needs an api_token or an access_token", retry=False)
        chosen = opts.merged(OPTIONS, options, credentials)
        stages = chosen["stages"] or {}
        self.stages = {str(k): _id(v) for k, v in stages.items()} if isinstance(stages, Mapping) else {}
        self.pipeline_id = _id(chosen["pipeline_id"])
        self.stage_id = _id(chosen["stage_id"])
        self.rate_seen: RateSeen | None = None
        self._id_keys: dict[str, str] = {}
        self._clock = network.clock
        self.searched: deque[float] = deque()  # when the last searches went out (clock seconds)
        self.http = Rest(
            "Pipedrive",
            host or HOST,
            network,
            headers=headers,
            default_wait=timedelta(seconds=WINDOW_S),
            message_of=_message,
            on_answer=self._note,
        )

    def _note(self, headers: httpx.Headers) -> None:
        remaining = _int(headers.get("x-ratelimit-remaining"))
        daily = _int(headers.get("x-daily-requests-left"))
        if remaining is None and daily is None:
            return
        left = min(v for v in (remaining, daily) if v is not None)
        self.rate_seen = RateSeen(_int(headers.get("x-ratelimit-limit")), left, WINDOW_S)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call; a ``429`` without ``Retry-After`` waits the window's ``x-ratelimit-reset``. A search
        first waits until it fits the search window."""
        if path.endswith("/search"):
            self._search_slot()
        try:
            return self.http.call(method, path, **kwargs)
        except VendorError as exc:
            headers = self.http.last_headers
            reset = _int(headers.get("x-ratelimit-reset"))
            if exc.status == 429 and "retry-after" not in headers and reset:
                exc.retry_after = timedelta(seconds=reset)
            raise

    def _search_slot(self) -> None:
        """Wait until a search keeps the last :data:`SEARCH_SPAN` seconds at :data:`SEARCH_LIMIT` or
        fewer, and note it."""
        while True:
            now = self._clock.monotonic()
            while self.searched and self.searched[0] <= now - SEARCH_SPAN:
                self.searched.popleft()
            if len(self.searched) < SEARCH_LIMIT:
                self.searched.append(now)
                return
            self._clock.sleep(max(0.001, self.searched[0] + SEARCH_SPAN - now))  # never a zero wait: a loop

    def _data(self, method: str, path: str, **kwargs: Any) -> Any:
        body = self._call(method, path, **kwargs)
        return body.get("data") if isinstance(body, dict) else None

    # --- the interface ----------------------------------------------------------------------------

    def check(self) -> None:
        self._call("GET", "/api/v1/users/me")

    def calls(self, kind: str, records: Sequence[Record]) -> int:
        return sum(1 if r.remote_id else 2 for r in records)  # a first write searches first

    def write(self, kind: str, records: Sequence[Record]) -> list[Written]:
        if kind == CONTACT:
            return each(records, self._person)
        if kind == ACTIVITY:
            return each(records, self._note_of)
        plural = "organizations" if kind == COMPANY else "deals"
        return each(records, lambda record: self._object(plural, kind, record))

    def _person_body(self, record: Record, *, creating: bool) -> dict[str, Any]:
        body: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for name, value in record.properties.items():
            if name == "email":
                body["emails"] = [{"value": str(value), "primary": True, "label": "work"}]
            elif name == "phone":
                body["phones"] = [{"value": str(value), "primary": True, "label": "work"}]
            elif CUSTOM_KEY.match(name):
                custom[name] = value
            elif name in PERSON_FIELDS:
                body[name] = value
        if custom:
            body["custom_fields"] = custom
        company = next(iter(record.associations.get(COMPANY) or ()), None)
        if company and _id(company) is not None:
            body["org_id"] = _id(company)
        if creating and not (body.get("name") or body.get("first_name") or body.get("last_name")):
            body["name"] = record.match or str(record.properties.get("email") or record.local_id)
        return body

    def _person(self, record: Record) -> Written:
        if record.remote_id:
            return self._update("persons", record, self._person_body(record, creating=False))
        email = record.match or record.properties.get("email")
        if not email:
            return Written(record.local_id, FAILED, error="no email to search the person by")
        found = self._data(
            "GET",
            "/api/v2/persons/search",
            params={"term": str(email), "fields": "email", "exact_match": "true", "limit": 10},
        )
        items = [item.get("item") or {} for item in (found or {}).get("items") or []]
        ids = sorted({str(item["id"]) for item in items if item.get("id") is not None}, key=int)
        if len(ids) > 1:
            return Written(
                record.local_id,
                CONFLICT,
                error=f"{len(ids)} Pipedrive persons have this email",
                candidates=tuple(ids),
            )
        if ids:
            known = Record(
                CONTACT, record.local_id, record.properties, ids[0], record.match, record.associations
            )
            return self._update("persons", known, self._person_body(record, creating=False))
        made = self._data("POST", "/api/v2/persons", json=self._person_body(record, creating=True))
        return Written(record.local_id, OK, str(made["id"]), _time(made.get("update_time")))

    def _update(self, plural: str, record: Record, body: dict[str, Any]) -> Written:
        try:
            made = self._data("PATCH", f"/api/v2/{plural}/{record.remote_id}", json=body)
        except VendorError as exc:
            if exc.status != 404:
                raise
            return Written(record.local_id, FAILED, error=f"{exc} (deleted in Pipedrive)")
        return Written(record.local_id, OK, str(made["id"]), _time(made.get("update_time")))

    def _object(self, plural: str, kind: str, record: Record) -> Written:
        body = dict(record.properties)
        person = next(iter(record.associations.get(CONTACT) or ()), None)
        company = next(iter(record.associations.get(COMPANY) or ()), None)
        if kind == DEAL:
            if person:
                body["person_id"] = _id(person)
            if company:
                body["org_id"] = _id(company)
        if record.remote_id:
            return self._update(plural, record, body)
        key = self._id_key(kind)
        found = self._data(
            "GET",
            f"/api/v2/{plural}/search",
            params={"term": record.local_id, "fields": "custom_fields", "exact_match": "true", "limit": 2},
        )
        ids = [str((i.get("item") or {}).get("id")) for i in (found or {}).get("items") or []]
        if ids:  # written before, its answer lost: that record, updated
            known = Record(kind, record.local_id, record.properties, ids[0], None, record.associations)
            return self._update(plural, known, body)
        body["custom_fields"] = {key: record.local_id}
        made = self._data("POST", f"/api/v2/{plural}", json=body)
        return Written(record.local_id, OK, str(made["id"]), _time(made.get("update_time")))

    def _id_key(self, kind: str) -> str:
        """The key of the custom field holding leadflow's id on organisations or deals (made if missing)."""
        listing = "organizationFields" if kind == COMPANY else "dealFields"
        if listing not in self._id_keys:
            fields = self._data("GET", f"/api/v1/{listing}") or []
            key = next((str(f["key"]) for f in fields if f.get("name") == ID_FIELD), None)
            if key is None:
                made = self._data(
                    "POST", f"/api/v1/{listing}", json={"name": ID_FIELD, "field_type": "varchar"}
                )
                key = str(made["key"])
            self._id_keys[listing] = key
        return self._id_keys[listing]

    def _note_of(self, record: Record) -> Written:
        person = next(iter(record.associations.get(CONTACT) or ()), None)
        if person is None:
            return Written(record.local_id, FAILED, error="a note needs its person")
        marker = f"[leadflow {record.local_id}]"
        if not record.remote_id:
            notes = self._data("GET", "/api/v1/notes", params={"person_id": _id(person), "limit": 500}) or []
            for note in notes:  # written before, its answer lost
                if str(note.get("content") or "").endswith(marker):
                    return Written(record.local_id, OK, str(note["id"]), _time(note.get("update_time")))
        content = f"{record.properties.get('content') or ''}\n\n{marker}"
        made = self._data("POST", "/api/v1/notes", json={"content": content, "person_id": _id(person)})
        return Written(record.local_id, OK, str(made["id"]), _time(made.get("update_time")))

    def erase(self, remote_ids: Sequence[str]) -> list[Written]:
        done: list[Written] = []
        for remote_id in remote_ids:
            self._call("DELETE", f"/api/v2/persons/{remote_id}", missing_ok=True)  # gone: erased
            done.append(Written(remote_id, OK, remote_id))
        return done

    def changes(self, since: datetime | None, fields: Sequence[str], limit: int) -> list[Change]:
        params: dict[str, Any] = {
            "sort_by": "update_time",
            "sort_direction": "asc",
            "limit": max(1, min(limit, 500)),
        }
        if since is not None:
            params["updated_since"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        found: list[Change] = []
        for person in self._data("GET", "/api/v2/persons", params=params) or []:
            modified = _time(person.get("update_time"))
            if modified is None:
                continue
            email = _primary(person.get("emails"))
            properties = {k: v for k, v in person.items() if k not in ("emails", "phones", "custom_fields")}
            properties |= dict(person.get("custom_fields") or {})
            properties |= {"email": email, "phone": _primary(person.get("phones"))}
            found.append(Change(str(person["id"]), email, properties, modified))
        return found

    def owners(self) -> dict[str, str]:
        return {}  # the token's user owns what it creates (owner_id in a mapping may set another)

    def properties(self, kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
        if kind == COMPANY:
            found: dict[str, Any] = {"name": row.get("name")}
        elif kind == DEAL:
            status = str(row.get("status") or "open")
            close = _day(row.get("expected_close"))
            value = row.get("value")
            found = {
                "title": row.get("title"),
                "value": float(value) if value is not None else None,
                "currency": row.get("currency"),
                "status": status if status in STATUSES else "open",
                "expected_close_date": close.isoformat() if close else None,
                "pipeline_id": self.pipeline_id,
                "stage_id": self.stages.get(str(row.get("stage_id"))) or self.stage_id,
            }
        else:
            text = "\n\n".join(str(v) for v in (row.get("subject"), row.get("body")) if v)
            found = {"content": text or str(row.get("kind") or "note"), "kind": row.get("kind")}
        return {k: v for k, v in found.items() if v is not None}

    def close(self) -> None:
        self.http.close()
