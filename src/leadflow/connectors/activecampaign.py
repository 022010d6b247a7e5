"""ActiveCampaign (API v3, ``httpx``): contacts, custom fields, tags, lists, deals and notes.

- People: a first write upserts by email (``POST /api/3/contact/sync``); a record written before goes by
  its id (``PUT /api/3/contacts/{id}``), so an email change keeps the same ActiveCampaign contact (one
  deleted there is synced again by email). A backfill — :data:`BULK_MIN` new people or more in a batch —
  goes through ``POST /api/3/import/bulk_import`` (at most 250 a request), polled with
  ``GET /api/3/import/info`` within the same write (bounded: :data:`POLLS`); the imported people's ids
  are then read back newest first (``filters[updated_after]`` the import's start, ``orders[id]=desc``,
  100 a page, stopping once every one is found: 3 pages for 250 new people, not the previous chunk's
  too), and a person the import reports as failed is ``FAILED`` on its own. An import still running
  after the polls is remembered by its people's emails: its records are ``RETRY`` and the next write of
  the same people polls that import again instead of queueing a second one. A chunk costs what
  ActiveCampaign counts — import, one poll, the pages (:meth:`calls`); a further poll comes a second
  later, and the worker's bucket follows ``RateLimit-Remaining`` after the write.
- Remote fields of the mapping: ``email``, ``firstName``, ``lastName``, ``phone`` are the contact's own;
  ``tags`` (a list or comma-separated names) are created when missing and applied (``contactTags``);
  ``list:<name>`` holds leadflow's subscription (``subscribed``/``unsubscribed``) and sets the
  membership of that list (``contactLists`` status 1/2; a list missing is created); any other name is a
  custom field, found by its title or personalisation tag (``%PERSTAG%`` or ``PERSTAG``), created as a
  text field when missing, and written through ``fieldValues``. Field, tag and list ids are looked up
  once per connector and cached.
- Deals (``/api/3/deals``: value in cents, status 0 open, 1 won, 2 lost) with their contact; activities
  as notes on the contact (``/api/3/notes``, ``reltype: Subscriber``). Exactly once: a deal's
  ``description`` and the end of a note's text hold ``[leadflow <id>]``, and a first write looks for it
  among the contact's deals or notes (``GET /api/3/contacts/{id}/deals|notes``) before creating, so a
  write whose answer was lost (a timeout after ActiveCampaign applied it) is not made twice.
- Pull: ``GET /api/3/contacts?filters[updated_after]=`` (by ``udate``), each changed person's custom
  fields and list memberships read when the mapping pulls them.
- Erasure: ``DELETE /api/3/contacts/{id}``.
- Limits: 5 requests a second per account (the bucket), ``RateLimit-Limit``/``RateLimit-Remaining``
  read back; ``429`` waits ``Retry-After``; a wrong token is ``403``.

:data:`EVENT_REGISTRATION` is the shipped mapping preset of the badge business's registration profile;
it, the remote field names and the answers read live in :mod:`leadflow.connectors.activecampaign_fields`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from leadflow.connectors.activecampaign_fields import (
    DEAL_STATUS,
    LIST,
    STANDARD,
    SUBSCRIBED,
    TAGS,
    UNSUBSCRIBED,
    field_key,
    int_of,
    message_of,
    time_of,
)
from leadflow.connectors.activecampaign_fields import DEFAULT_MAPPING as DEFAULT_MAPPING
from leadflow.connectors.activecampaign_fields import EVENT_REGISTRATION as EVENT_REGISTRATION
from leadflow.connectors.activecampaign_fields import PRESETS as PRESETS
from leadflow.connectors.rest import Rest, each, names_of, server_time, text_of
from leadflow.connectors.vendor import (
    ACTIVITY,
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

BULK_MIN = 20  # new people in one batch from which the bulk import is cheaper than one sync each
BULK_MAX = 250
PAGE = 100
POLLS = 30
WAIT = timedelta(seconds=1)  # people cut from a write to fit the limit: the next second's write
RETRY_RUNNING = timedelta(seconds=5)  # an import still running after the polls: looked at again then
POLL_PAUSE = 1.0  # seconds between two polls of an import not finished yet


class ActiveCampaignVendor:
    """One ActiveCampaign account: ``{"api_token"}``; the host is the account's API URL
    (``https://<account>.api-us1.com``), given as the connector's host or ``api_url``."""

    name: ClassVar[str] = "activecampaign"
    batch_size: ClassVar[int] = BULK_MAX
    rate: ClassVar[float] = 5.0
    burst: ClassVar[float] = 5.0
    kinds: ClassVar[frozenset[str]] = frozenset({CONTACT, DEAL, ACTIVITY})
    match_field: ClassVar[str] = "email"

    def __init__(
        self,
        credentials: Mapping[str, Any],
        host: str | None,
        network: Network,
        options: Mapping[str, Any] | None = None,  # none: the account's API URL is the connector's host
    ) -> None:
        token = credentials.get("api_token")
        base = host or credentials.get("api_url")
        if not isinstance(token, str) or not token:
            raise VendorError("ActiveCampaign needs an api_token", retry=False)
        if not isinstance(base, str) or not base:
            raise VendorError("ActiveCampaign needs the account's API URL as the host", retry=False)
        self.rate_seen: RateSeen | None = None
        self.http = Rest(
            "ActiveCampaign",
            base,
            network,
            headers={"Api-Token": token},
            max_connections=2,
            message_of=message_of,
            on_answer=self._note,
        )
        self._clock = network.clock
        self._fields: dict[str, str] | None = None  # title / PERSTAG (upper-cased) → field id
        self._tags: dict[str, str] = {}  # name (lower-cased) → tag id
        self._lists: dict[str, str] | None = None  # name (lower-cased) → list id
        self._running: dict[frozenset[str], tuple[str, datetime]] = {}  # emails → (batch id, started)

    def _note(self, headers: Mapping[str, str]) -> None:
        remaining = int_of(headers.get("ratelimit-remaining"))
        if remaining is not None:
            self.rate_seen = RateSeen(int_of(headers.get("ratelimit-limit")), remaining, 1.0)

    # --- ids looked up once ---------------------------------------------------------------------------

    def _pages(self, path: str, name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            body = self.http.call("GET", path, params={"limit": PAGE, "offset": len(found)})
            items = body.get(name) or []
            found += items
            total = int_of(str((body.get("meta") or {}).get("total", ""))) or 0
            if not items or len(found) >= total:
                return found

    def field_ids(self, names: Sequence[str]) -> dict[str, str]:
        """The ids of these custom fields (by title or perstag), created when missing."""
        if self._fields is None:
            self._fields = {}
            for item in self._pages("/api/3/fields", "fields"):
                self._fields[str(item["title"]).lower()] = str(item["id"])
                self._fields[field_key(str(item.get("perstag") or ""))] = str(item["id"])
        for name in names:
            if name.lower() not in self._fields and field_key(name) not in self._fields:
                made = self.http.call(
                    "POST", "/api/3/fields", json={"field": {"title": name, "type": "text"}}
                )
                self._fields[name.lower()] = str(made["field"]["id"])
        return {name: self._fields.get(name.lower()) or self._fields[field_key(name)] for name in names}

    def tag_ids(self, names: Sequence[str]) -> dict[str, str]:
        for name in names:
            if name.lower() in self._tags:
                continue
            body = self.http.call("GET", "/api/3/tags", params={"search": name, "limit": PAGE})
            for item in body.get("tags") or []:
                self._tags[str(item["tag"]).lower()] = str(item["id"])
            if name.lower() not in self._tags:
                tag = {"tag": name, "tagType": "contact", "description": "leadflow"}
                made = self.http.call("POST", "/api/3/tags", json={"tag": tag})
                self._tags[name.lower()] = str(made["tag"]["id"])
        return {name: self._tags[name.lower()] for name in names}

    def list_ids(self, names: Sequence[str]) -> dict[str, str]:
        if self._lists is None:
            self._lists = {str(i["name"]).lower(): str(i["id"]) for i in self._pages("/api/3/lists", "lists")}
        for name in names:
            if name.lower() not in self._lists:
                made = self.http.call("POST", "/api/3/lists", json={"list": {"name": name}})
                self._lists[name.lower()] = str(made["list"]["id"])
        return {name: self._lists[name.lower()] for name in names}

    # --- the interface ----------------------------------------------------------------------------------

    def check(self) -> None:
        self.http.call("GET", "/api/3/users", params={"limit": 1})

    @staticmethod
    def _extras(record: Record) -> int:
        lists = sum(1 for key in record.properties if key.startswith(LIST))
        return len(names_of(record.properties.get(TAGS))) + lists

    def _lookups(self, records: Sequence[Record]) -> int:
        """The id lookups a write of these records makes first (custom fields, lists; once cached, 0)."""
        keys = {k for r in records for k in r.properties}
        custom = any(k not in STANDARD and k != TAGS and not k.startswith(LIST) for k in keys)
        lists = any(k.startswith(LIST) for k in keys)
        return int(custom and self._fields is None) + int(lists and self._lists is None)

    def _first_cut(
        self, records: Sequence[Record], fresh: Sequence[Record]
    ) -> tuple[Sequence[Record], Sequence[Record]]:
        """The new people imported by this write, and those left for the next one: while the field and
        list ids are still to be looked up, the first import is cut so that the lookups, the import, its
        poll and the pages fit one second of the account's limit (the rest waits a second, uncounted)."""
        lookups = self._lookups(records)
        if not lookups:
            return fresh, ()
        size = max(PAGE, (int(self.burst) - 2 - lookups) * PAGE)
        return fresh[:size], fresh[size:]

    def calls(self, kind: str, records: Sequence[Record]) -> int:
        """The requests ActiveCampaign counts for this write: for a backfill, per chunk of 250 the
        import, one status poll and its new people's ids read back 100 a page."""
        if kind != CONTACT:  # a first write looks for the record first
            return sum(1 if r.remote_id else 2 for r in records)
        lookups = self._lookups(records)
        fresh = [r for r in records if not r.remote_id and r.match]
        known = [r for r in records if r.remote_id]
        if len(fresh) >= BULK_MIN:
            fresh = list(self._first_cut(records, fresh)[0])
            chunks = [fresh[i : i + BULK_MAX] for i in range(0, len(fresh), BULK_MAX)]
            bulk = sum(2 + math.ceil(len(chunk) / PAGE) for chunk in chunks)
            return lookups + bulk + sum(1 + self._extras(r) for r in known)
        return lookups + sum(1 + self._extras(r) for r in records)

    def write(self, kind: str, records: Sequence[Record]) -> list[Written]:
        if kind == DEAL:
            return each(records, self._deal)
        if kind == ACTIVITY:
            return each(records, self._note_of)
        if kind != CONTACT:
            return [Written(r.local_id, FAILED, error="not synced by ActiveCampaign") for r in records]
        fresh = [r for r in records if not r.remote_id and r.match]
        missing = [
            Written(r.local_id, FAILED, error="no email to sync by")
            for r in records
            if not r.remote_id and not r.match
        ]
        known = [r for r in records if r.remote_id]
        if len(fresh) < BULK_MIN:
            return each(fresh, self._contact) + each(known, self._contact) + missing
        now, later = self._first_cut(records, fresh)
        waiting = [
            Written(
                r.local_id, RETRY, error="waiting for the rate limit", retry_after=WAIT, rate_limited=True
            )
            for r in later
        ]
        return self._import(now) + each(known, self._contact) + missing + waiting

    # --- people one by one --------------------------------------------------------------------------------

    def _body(self, record: Record) -> dict[str, Any]:
        props = record.properties
        custom = [k for k in props if k not in STANDARD and k != TAGS and not k.startswith(LIST)]
        ids = self.field_ids(custom) if custom else {}
        body: dict[str, Any] = {k: text_of(props[k]) for k in STANDARD if k in props}
        body["fieldValues"] = [{"field": ids[k], "value": text_of(props[k])} for k in custom]
        return body

    def _contact(self, record: Record) -> Written:
        body = self._body(record)
        answer = None
        if record.remote_id:
            answer = self.http.call(
                "PUT", f"/api/3/contacts/{record.remote_id}", json={"contact": body}, missing_ok=True
            )
        if answer is None:  # new, or deleted in ActiveCampaign: upserted by email
            body.setdefault("email", record.match or "")
            answer = self.http.call("POST", "/api/3/contact/sync", json={"contact": body})
        contact = answer["contact"]
        remote_id = str(contact["id"])
        self._memberships(remote_id, record.properties)
        return Written(record.local_id, OK, remote_id, time_of(contact.get("udate")))

    def _memberships(self, remote_id: str, props: Mapping[str, Any]) -> None:
        tags = names_of(props.get(TAGS))
        for tag_id in self.tag_ids(tags).values():
            self.http.call(
                "POST", "/api/3/contactTags", json={"contactTag": {"contact": remote_id, "tag": tag_id}}
            )
        lists = {k.removeprefix(LIST): v for k, v in props.items() if k.startswith(LIST)}
        for name, list_id in self.list_ids(sorted(lists)).items():
            status = UNSUBSCRIBED if str(lists[name]) == "unsubscribed" else SUBSCRIBED
            member = {"list": list_id, "contact": remote_id, "status": status}
            self.http.call("POST", "/api/3/contactLists", json={"contactList": member})

    # --- people in bulk -----------------------------------------------------------------------------------

    def _import(self, records: Sequence[Record]) -> list[Written]:
        written: list[Written] = []
        for start in range(0, len(records), BULK_MAX):
            written += self._import_chunk(records[start : start + BULK_MAX])
        return written

    def _import_item(self, record: Record) -> dict[str, Any]:
        props = record.properties
        custom = [k for k in props if k not in STANDARD and k != TAGS and not k.startswith(LIST)]
        ids = self.field_ids(custom) if custom else {}
        lists = {k.removeprefix(LIST): v for k, v in props.items() if k.startswith(LIST)}
        list_ids = self.list_ids(sorted(lists)) if lists else {}
        item: dict[str, Any] = {"email": record.match}
        item.update(
            {STANDARD[k]: text_of(props[k]) for k in ("firstName", "lastName", "phone") if k in props}
        )
        item["fields"] = [{"id": ids[k], "value": text_of(props[k])} for k in custom]
        item["tags"] = names_of(props.get(TAGS))
        item["subscribe"] = [{"listid": list_ids[n]} for n, v in lists.items() if str(v) != "unsubscribed"]
        item["unsubscribe"] = [{"listid": list_ids[n]} for n, v in lists.items() if str(v) == "unsubscribed"]
        return item

    def _import_chunk(self, records: Sequence[Record]) -> list[Written]:
        emails = frozenset(str(r.match).lower() for r in records)
        running = self._running.get(emails)
        if running is None:  # never a second import of people whose import is still running
            items = [self._import_item(r) for r in records]
            queued = self.http.call("POST", "/api/3/import/bulk_import", json={"contacts": items})
            started = server_time(self.http.last_headers) or self._clock.now()
            running = self._running[emails] = (str(queued.get("batchId") or ""), started)
        batch_id, started = running
        info: dict[str, Any] = {}
        for poll in range(POLLS):
            if poll:
                self._clock.sleep(POLL_PAUSE)  # one poll a second leaves the rest of the 5 a second to others
            info = self.http.call("GET", "/api/3/import/info", params={"batchId": batch_id})
            if info.get("status") not in (False, None, "", "pending", "processing"):
                break
        else:
            return [
                Written(
                    r.local_id,
                    RETRY,
                    error="ActiveCampaign import still running",
                    retry_after=RETRY_RUNNING,
                    rate_limited=True,
                )
                for r in records
            ]
        del self._running[emails]
        failed = {str(e).lower() for e in info.get("failure") or []}
        ids = self._ids_since(started - timedelta(seconds=1), set(emails) - failed)
        written = []
        for record in records:
            email = str(record.match).lower()
            if email in failed:
                written.append(
                    Written(record.local_id, FAILED, error="ActiveCampaign: the import refused this contact")
                )
            elif email in ids:
                written.append(Written(record.local_id, OK, ids[email][0], ids[email][1]))
            else:
                written.append(
                    Written(record.local_id, RETRY, error="ActiveCampaign: imported contact not found yet")
                )
        return written

    def _ids_since(self, since: datetime, emails: set[str]) -> dict[str, tuple[str, datetime | None]]:
        """The ids of these people, changed since ``since`` (the import just made): newest first, 100 a
        page, until every one is found (an import's new people have the newest ids)."""
        found: dict[str, tuple[str, datetime | None]] = {}
        offset = 0
        while emails - set(found):
            params = {
                "filters[updated_after]": since.isoformat(timespec="seconds"),
                "orders[id]": "DESC",
                "limit": PAGE,
                "offset": offset,
            }
            page = self.http.call("GET", "/api/3/contacts", params=params).get("contacts") or []
            for contact in page:
                email = str(contact.get("email") or "").lower()
                if email in emails:
                    found[email] = (str(contact["id"]), time_of(contact.get("udate")))
            if len(page) < PAGE:
                break
            offset += PAGE
        return found

    # --- deals and notes ------------------------------------------------------------------------------------

    def _deal(self, record: Record) -> Written:
        contact = next(iter(record.associations.get(CONTACT, ())), None)
        marker = f"[leadflow {record.local_id}]"
        deal = {**record.properties, "description": marker, **({"contact": contact} if contact else {})}
        answer = None
        remote_id = record.remote_id or self._made(contact, "deals", "description", marker)
        if remote_id:
            answer = self.http.call("PUT", f"/api/3/deals/{remote_id}", json={"deal": deal}, missing_ok=True)
        if answer is None:
            answer = self.http.call("POST", "/api/3/deals", json={"deal": deal})
        return Written(record.local_id, OK, str(answer["deal"]["id"]), time_of(answer["deal"].get("mdate")))

    def _note_of(self, record: Record) -> Written:
        contact = next(iter(record.associations.get(CONTACT, ())), None)
        marker = f"[leadflow {record.local_id}]"
        found = self._made(contact, "notes", "note", marker) if not record.remote_id else None
        if found:  # written before, its answer lost
            return Written(record.local_id, OK, found)
        text = f"{record.properties.get('note') or ''}\n\n{marker}"
        note = {**record.properties, "note": text, "relid": contact, "reltype": "Subscriber"}
        answer = self.http.call("POST", "/api/3/notes", json={"note": note})
        return Written(record.local_id, OK, str(answer["note"]["id"]), time_of(answer["note"].get("mdate")))

    def _made(self, contact: str | None, kind: str, name: str, marker: str) -> str | None:
        """The id of the contact's deal or note whose ``name`` ends with ``marker`` (made by an earlier
        write whose answer was lost), if any."""
        if not contact:
            return None
        answer = self.http.call("GET", f"/api/3/contacts/{contact}/{kind}") or {}
        for found in answer.get(kind) or []:
            if str(found.get(name) or "").endswith(marker):
                return str(found["id"])
        return None

    def properties(self, kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
        if kind == DEAL:
            value = row.get("value")
            cents = int(Decimal(str(value)) * 100) if value is not None else 0
            found = {
                "title": row.get("title"),
                "value": cents,
                "currency": str(row.get("currency") or "usd").lower(),
                "status": DEAL_STATUS.get(str(row.get("status")), 0),
            }
        elif kind == ACTIVITY:
            text = "\n\n".join(str(v) for v in (row.get("subject"), row.get("body")) if v)
            found = {"note": text or str(row.get("kind") or "activity")}
        else:
            found = {"name": row.get("name")}
        return {k: v for k, v in found.items() if v is not None}

    # --- erasure, pull, owners ----------------------------------------------------------------------------

    def erase(self, remote_ids: Sequence[str]) -> list[Written]:
        done = []
        for remote_id in remote_ids:
            self.http.call("DELETE", f"/api/3/contacts/{remote_id}", missing_ok=True)  # gone: erased
            done.append(Written(remote_id, OK, remote_id))
        return done

    def changes(self, since: datetime | None, fields: Sequence[str], limit: int) -> list[Change]:
        params: dict[str, Any] = {"limit": min(limit, PAGE), "orders[udate]": "ASC"}
        if since is not None:
            params["filters[updated_after]"] = since.astimezone(UTC).isoformat(timespec="seconds")
        contacts = self.http.call("GET", "/api/3/contacts", params=params).get("contacts") or []
        contacts.sort(
            key=lambda c: (time_of(c.get("udate")) or datetime.min.replace(tzinfo=UTC), int(c["id"]))
        )
        custom = [f for f in fields if f not in STANDARD and f != TAGS and not f.startswith(LIST)]
        lists = [f.removeprefix(LIST) for f in fields if f.startswith(LIST)]
        found: list[Change] = []
        for contact in contacts:
            modified = time_of(contact.get("udate"))
            if modified is None:
                continue
            props: dict[str, Any] = {k: contact.get(k) for k in STANDARD if k in contact}
            if custom or lists:
                props.update(self._related(str(contact["id"]), custom, lists))
            found.append(Change(str(contact["id"]), contact.get("email"), props, modified))
        return found

    def _related(self, remote_id: str, custom: Sequence[str], lists: Sequence[str]) -> dict[str, Any]:
        body = self.http.call("GET", f"/api/3/contacts/{remote_id}", missing_ok=True) or {}
        props: dict[str, Any] = {}
        if custom:
            ids = self.field_ids(custom)
            values = {str(v.get("field")): v.get("value") for v in body.get("fieldValues") or []}
            props.update({name: values[ids[name]] for name in custom if ids[name] in values})
        if lists:
            ids = self.list_ids(lists)
            statuses = {str(m.get("list")): int(m.get("status") or 0) for m in body.get("contactLists") or []}
            for name in lists:
                status = statuses.get(ids[name])
                if status in (SUBSCRIBED, UNSUBSCRIBED):
                    props[LIST + name] = "unsubscribed" if status == UNSUBSCRIBED else "subscribed"
        return props

    def owners(self) -> dict[str, str]:
        return {
            str(user["email"]).lower(): str(user["id"])
            for user in self._pages("/api/3/users", "users")
            if user.get("email")
        }

    def close(self) -> None:
        self.http.close()
