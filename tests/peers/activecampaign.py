"""A local ActiveCampaign (API v3) for the connector tests: ``/api/3/...`` with an ``Api-Token`` header.

What it keeps, as the vendor does: contacts (upserted by e-mail through ``contact/sync``, ``udate``
moved on every change, for pulls with ``filters[updated_after]``), custom fields and their values
(``fieldValues`` by field id), tags (which must exist before ``contactTags``), lists and list
memberships (status 1 subscribed, 2 unsubscribed), users (deal owners), deals, notes, and bulk imports
(at most 250 contacts a request, 100 imports a minute; asynchronous: ``import/info`` answers ``status:
false`` until the batch is processed, then ``completed`` with the new contacts' ids and the failed
e-mails).

Its habits: ids are strings in JSON; lists (contacts, fields, tags, lists) come 20 a page unless
``limit`` (at most 100) says otherwise, with ``meta.total``; 5 requests per second per account (all
tokens share it), over it ``429`` with ``Retry-After``; every answer carries ``RateLimit-Limit`` and
``RateLimit-Remaining``; a wrong or missing token is ``403 {"message": ...}``; validation errors are
``422 {"errors": [{"title", "detail", "code", "source": {"pointer"}}]}``; an unknown id is ``404
{"message": "No Result found for <Thing> with id N"}``.

A test reads the state with :meth:`ActiveCampaignPeer.contact` / :meth:`field_values` / :meth:`tags_of`
/ :meth:`lists_of`, changes a contact "remotely" with :meth:`change_remotely`, seeds the custom fields
with :meth:`seed_fields` (``EVENT_PROFILE_FIELDS`` is the badge business's registration profile).
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.peers.saas import Answer, Call, SaasPeer, WindowLimit, route

TOKEN = "ac-test-token-0123456789abcdef"
BULK_IMPORT_MAX = 250  # contacts in one bulk_import request (vendor reference)
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SUBSCRIBED, UNSUBSCRIBED = 1, 2
CONTACT_KEYS = {"firstName": "first_name", "lastName": "last_name", "phone": "phone"}  # contact/sync, PUT
IMPORT_KEYS = {"first_name": "first_name", "last_name": "last_name", "phone": "phone"}  # bulk_import

# The event-registration profile of the badge business: (title, ActiveCampaign field type).
EVENT_PROFILE_FIELDS: tuple[tuple[str, str], ...] = (
    ("Date of Birth", "date"),
    ("Event Participation", "textarea"),
    ("Dietary Preferences", "text"),
    ("Volunteering Interests", "textarea"),
    ("Social Media Handles", "textarea"),
    ("Badge Name", "text"),
    ("Profile Image URL", "text"),
    ("Emergency Contact Name", "text"),
    ("Emergency Contact Phone", "text"),
)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def not_found(thing: str, ident: object) -> Answer:
    return Answer(404, {"message": f"No Result found for {thing} with id {ident}"})


def invalid(title: str, code: str, pointer: str) -> Answer:
    error = {"title": title, "detail": "", "code": code, "source": {"pointer": pointer}}
    return Answer(422, {"errors": [error]})


def paged(call: Call, name: str, items: list[dict[str, Any]], **sideloads: Any) -> Answer:
    """A page as the vendor lists them: ``limit`` (default 20, at most 100) from ``offset``, and the total."""
    limit, offset = min(int(call.arg("limit") or 20), 100), int(call.arg("offset") or 0)
    meta = {"total": str(len(items)), "page_input": {"limit": limit, "offset": offset}}
    return Answer(200, {**sideloads, name: items[offset : offset + limit], "meta": meta})


def refused(reasons: list[Any], message: str = "") -> Answer:
    """A bulk import not queued."""
    message = message or "JSON payload did not pass validation. Please fix failure Reasons and retry."
    return Answer(400, {"success": 0, "message": message, "failureReasons": reasons})


@dataclass
class Contact:
    id: int
    email: str
    cdate: datetime
    udate: datetime
    first_name: str = ""
    last_name: str = ""
    phone: str = ""
    fields: dict[int, str] = field(default_factory=dict)  # custom field id -> value


@dataclass
class Import:
    batch_id: str
    contacts: list[dict[str, Any]]
    queued_at: float
    status: str | bool = False  # False until processed (the vendor's answer right after queueing)
    success: list[str] = field(default_factory=list)
    failure: list[str] = field(default_factory=list)


class ActiveCampaignPeer(SaasPeer):
    """``ActiveCampaignPeer(rate=5, window_s=1.0, import_delay_s=0.0)``: the account's rate limit and how
    long (on the peer's clock) a bulk import waits before it is processed."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        rate: int = 5,
        window_s: float = 1.0,
        import_delay_s: float = 0.0,
        **base: Any,
    ) -> None:
        super().__init__(**base)
        self.token = token
        self.window = WindowLimit(rate, window_s, clock=self.clock)
        self.import_window = WindowLimit(100, 60.0, clock=self.clock)
        self.import_delay_s = import_delay_s
        self.fail_import_emails: set[str] = set()  # e-mails a bulk import reports as failed
        self.contacts: dict[int, Contact] = {}
        self.fields: dict[int, dict[str, Any]] = {}
        self.tags: dict[int, dict[str, Any]] = {}
        self.contact_tags: dict[int, dict[str, Any]] = {}  # contactTag id -> {contact, tag, cdate}
        self.lists: dict[int, dict[str, Any]] = {}
        self.contact_lists: dict[tuple[int, int], dict[str, Any]] = {}  # (contact, list) -> membership
        self.deals: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, dict[str, Any]] = {}
        self.imports: dict[str, Import] = {}
        self.users: dict[int, dict[str, Any]] = {}  # the account's users: deal owners
        self._ids = 0
        self.seed_user("admin@example.com", "Account", "Admin")

    # ---- what a test asks or changes --------------------------------------------------------------
    def contact(self, email: str) -> Contact | None:
        with self.lock:
            return next((c for c in self.contacts.values() if c.email == email.lower()), None)

    def count(self) -> int:
        with self.lock:
            return len(self.contacts)

    def field_values(self, email: str) -> dict[str, str]:
        """The contact's custom field values by field title."""
        with self.lock:
            found = self.contact(email)
            titles = {fid: f["title"] for fid, f in self.fields.items()}
            return {titles[fid]: value for fid, value in found.fields.items()} if found else {}

    def tags_of(self, email: str) -> set[str]:
        with self.lock:
            found = self.contact(email)
            owned = [ct for ct in self.contact_tags.values() if found and ct["contact"] == str(found.id)]
            return {self.tags[int(ct["tag"])]["tag"] for ct in owned}

    def lists_of(self, email: str) -> dict[str, int]:
        """List name -> status (1 subscribed, 2 unsubscribed)."""
        with self.lock:
            found = self.contact(email)
            return {
                self.lists[list_id]["name"]: m["status"]
                for (contact_id, list_id), m in self.contact_lists.items()
                if found and contact_id == found.id
            }

    def seed_fields(self, fields: Iterable[tuple[str, str]] = EVENT_PROFILE_FIELDS) -> dict[str, int]:
        """Create custom fields (title, type) as an account admin would: title -> field id."""
        with self.lock:
            return {title: int(self._add_field(title, kind)["id"]) for title, kind in fields}

    def seed_list(self, name: str) -> int:
        with self.lock:
            return int(self._add_list(name)["id"])

    def seed_user(self, email: str, first_name: str, last_name: str) -> int:
        with self.lock:
            user = {
                "username": email.split("@")[0],
                "firstName": first_name,
                "lastName": last_name,
                "email": email,
            }
            return int(self._record(self.users, user)["id"])

    def change_remotely(self, email: str, **changes: str) -> Contact:
        """Edit a contact as a user of ActiveCampaign would (first_name=..., or a field title=value)."""
        with self.lock:
            found = self.contact(email)
            assert found is not None, f"no contact {email}"
            titles = {f["title"]: fid for fid, f in self.fields.items()}
            for name, value in changes.items():
                if name in titles:
                    found.fields[titles[name]] = value
                else:
                    setattr(found, name, value)
            found.udate = self.now()
            return found

    def run_imports(self) -> None:
        """Process the bulk imports whose delay has passed (also done before every request)."""
        with self.lock:
            for batch in self.imports.values():
                if batch.status is False and self.clock() >= batch.queued_at + self.import_delay_s:
                    self._process(batch)

    # ---- the vendor's habits ----------------------------------------------------------------------
    def auth(self, call: Call) -> Answer | None:
        if call.headers.get("api-token") != self.token:
            return Answer(403, {"message": "You are not authorized to access this resource"})
        return None

    def limited(self, call: Call) -> Answer | None:
        allowed, remaining, reset_s = self.window.take()
        call.meta["remaining"] = remaining
        if not allowed:
            return Answer(
                429, {"message": "Too Many Requests"}, {"Retry-After": str(max(1, math.ceil(reset_s)))}
            )
        self.run_imports()
        return None

    def rate_headers(self, call: Call) -> dict[str, str]:
        remaining = call.meta.get("remaining")
        if remaining is None:
            remaining, _ = self.window.peek()
        return {"RateLimit-Limit": str(self.window.limit), "RateLimit-Remaining": str(remaining)}

    def not_found(self, call: Call) -> Answer:
        return Answer(404, {"message": "Not Found"})

    def too_many(self, call: Call, retry_after: int) -> Answer:
        return Answer(429, {"message": "Too Many Requests"}, {"Retry-After": str(retry_after)})

    def server_error(self, call: Call, status: int) -> Answer:
        return Answer(status, {"message": "Internal Server Error"})

    # ---- contacts ---------------------------------------------------------------------------------
    @route("POST", r"/api/3/contact/sync")
    def sync(self, call: Call) -> Answer:
        data = (call.json() or {}).get("contact") or {}
        email = str(data.get("email") or "").strip().lower()
        if not EMAIL.match(email):
            return invalid("Contact Email is not valid", "email_invalid", "/data/attributes/email")
        found = self.contact(email)
        created = found is None
        contact = found or self._new_contact(email)
        self._apply(contact, data, CONTACT_KEYS, data.get("fieldValues") or [])
        return Answer(
            201 if created else 200, {"contact": self._out(contact), "fieldValues": self._fv(contact)}
        )

    @route("GET", r"/api/3/contacts")
    def search(self, call: Call) -> Answer:
        found = sorted(self.contacts.values(), key=lambda c: c.id)
        if (email := call.arg("email")) is not None:
            found = [c for c in found if c.email == email.strip().lower()]
        if after := call.arg("filters[updated_after]"):
            try:
                since = datetime.fromisoformat(after.replace("Z", "+00:00"))
            except ValueError:
                return invalid("Invalid date", "field_invalid", "/filters/updated_after")
            since = since if since.tzinfo else since.replace(tzinfo=self.now().tzinfo)
            found = [c for c in found if c.udate > since]
        if call.arg("orders[id]", "").lower() == "desc":
            found.reverse()
        return paged(call, "contacts", [self._out(c) for c in found], scoreValues=[])

    @route("GET", r"/api/3/contacts/(?P<cid>\d+)")
    def read(self, call: Call, cid: str) -> Answer:
        contact = self.contacts.get(int(cid))
        if contact is None:
            return not_found("Subscriber", cid)
        return Answer(200, {"contact": self._out(contact), **self._related(contact.id)})

    @route("GET", r"/api/3/contacts/(?P<cid>\d+)/(?P<kind>fieldValues|contactTags|contactLists|notes|deals)")
    def read_related(self, call: Call, cid: str, kind: str) -> Answer:
        if int(cid) not in self.contacts:
            return not_found("Subscriber", cid)
        if kind == "deals":  # the contact's deals
            return Answer(200, {"deals": [d for d in self.deals.values() if d.get("contact") == cid]})
        return Answer(200, {kind: self._related(int(cid))[kind]})

    @route("PUT", r"/api/3/contacts/(?P<cid>\d+)")
    def update(self, call: Call, cid: str) -> Answer:
        contact = self.contacts.get(int(cid))
        if contact is None:
            return not_found("Subscriber", cid)
        data = (call.json() or {}).get("contact") or {}
        if "email" in data:
            email = str(data["email"]).strip().lower()
            other = self.contact(email)
            if not EMAIL.match(email):
                return invalid("Contact Email is not valid", "email_invalid", "/data/attributes/email")
            if other is not None and other.id != contact.id:
                return invalid(
                    "Email address already exists in the system", "duplicate", "/data/attributes/email"
                )
            contact.email = email
        self._apply(contact, data, CONTACT_KEYS, data.get("fieldValues") or [])
        return Answer(200, {"contact": self._out(contact), "fieldValues": self._fv(contact)})

    @route("DELETE", r"/api/3/contacts/(?P<cid>\d+)")
    def delete(self, call: Call, cid: str) -> Answer:
        contact = self.contacts.pop(int(cid), None)
        if contact is None:
            return not_found("Subscriber", cid)
        self.contact_tags = {k: t for k, t in self.contact_tags.items() if t["contact"] != str(contact.id)}
        self.contact_lists = {k: m for k, m in self.contact_lists.items() if k[0] != contact.id}
        return Answer(200, {})

    # ---- custom fields ----------------------------------------------------------------------------
    @route("GET", r"/api/3/fields")
    def list_fields(self, call: Call) -> Answer:
        fields = sorted(self.fields.values(), key=lambda f: int(f["id"]))
        return paged(call, "fields", fields, fieldOptions=[], fieldRels=[])

    @route("POST", r"/api/3/fields")
    def create_field(self, call: Call) -> Answer:
        data = (call.json() or {}).get("field") or {}
        if not data.get("title") or not data.get("type"):
            return invalid("Field title and type are required", "field_missing", "/data/attributes/title")
        return Answer(201, {"field": self._add_field(str(data["title"]), str(data["type"]))})

    # ---- tags -------------------------------------------------------------------------------------
    @route("GET", r"/api/3/tags")
    def list_tags(self, call: Call) -> Answer:
        search = (call.arg("search") or "").lower()
        tags = [
            t for t in sorted(self.tags.values(), key=lambda t: int(t["id"])) if search in t["tag"].lower()
        ]
        return paged(call, "tags", tags)

    @route("POST", r"/api/3/tags")
    def create_tag(self, call: Call) -> Answer:
        data = (call.json() or {}).get("tag") or {}
        name = str(data.get("tag") or "").strip()
        if not name:
            return invalid("Tag name is required", "field_missing", "/data/attributes/tag")
        if any(t["tag"].lower() == name.lower() for t in self.tags.values()):
            return invalid("The tag name already exists", "duplicate", "/data/attributes/tag")
        return Answer(201, {"tag": self._add_tag(name, str(data.get("description") or ""))})

    @route("POST", r"/api/3/contactTags")
    def tag_contact(self, call: Call) -> Answer:
        data = (call.json() or {}).get("contactTag") or {}
        contact_id, tag_id = int(data.get("contact") or 0), int(data.get("tag") or 0)
        if contact_id not in self.contacts:
            return not_found("Subscriber", contact_id)
        if tag_id not in self.tags:
            return not_found("Tag", tag_id)
        return Answer(201, {"contactTag": self._tag(contact_id, tag_id)})

    @route("DELETE", r"/api/3/contactTags/(?P<ctid>\d+)")
    def untag_contact(self, call: Call, ctid: str) -> Answer:
        return Answer(200, {}) if self.contact_tags.pop(int(ctid), None) else not_found("ContactTag", ctid)

    # ---- lists ------------------------------------------------------------------------------------
    @route("GET", r"/api/3/lists")
    def list_lists(self, call: Call) -> Answer:
        return paged(call, "lists", sorted(self.lists.values(), key=lambda item: int(item["id"])))

    @route("POST", r"/api/3/lists")
    def create_list(self, call: Call) -> Answer:
        data = (call.json() or {}).get("list") or {}
        if not data.get("name"):
            return invalid("List name is required", "field_missing", "/data/attributes/name")
        return Answer(201, {"list": self._add_list(str(data["name"]))})

    @route("POST", r"/api/3/contactLists")
    def subscribe(self, call: Call) -> Answer:
        data = (call.json() or {}).get("contactList") or {}
        contact_id, list_id = int(data.get("contact") or 0), int(data.get("list") or 0)
        status = int(data.get("status") or 0)
        if contact_id not in self.contacts:
            return not_found("Subscriber", contact_id)
        if list_id not in self.lists:
            return not_found("List", list_id)
        if status not in (SUBSCRIBED, UNSUBSCRIBED):
            return invalid("Status must be 1 or 2", "field_invalid", "/data/attributes/status")
        membership = self._membership(contact_id, list_id, status)
        return Answer(200, {"contacts": [self._out(self.contacts[contact_id])], "contactList": membership})

    @route("GET", r"/api/3/users")
    def list_users(self, call: Call) -> Answer:
        return paged(call, "users", sorted(self.users.values(), key=lambda user: int(user["id"])))

    # ---- deals and notes --------------------------------------------------------------------------
    @route("POST", r"/api/3/deals")
    def create_deal(self, call: Call) -> Answer:
        data = (call.json() or {}).get("deal") or {}
        for required in ("title", "value", "currency", "contact"):
            if data.get(required) in (None, ""):
                return invalid(
                    f"Deal {required} is required", "field_missing", f"/data/attributes/{required}"
                )
        if int(data["contact"]) not in self.contacts:
            return not_found("Subscriber", data["contact"])
        deal = self._record(
            self.deals, {**data, "currency": str(data["currency"]).lower(), "mdate": iso(self.now())}
        )
        return Answer(201, {"contacts": [self._out(self.contacts[int(data["contact"])])], "deal": deal})

    @route("PUT", r"/api/3/deals/(?P<did>\d+)")
    def update_deal(self, call: Call, did: str) -> Answer:
        deal = self.deals.get(int(did))
        if deal is None:
            return not_found("Deal", did)
        data = (call.json() or {}).get("deal") or {}
        deal.update({k: str(v) for k, v in data.items() if k not in ("id", "cdate")})
        deal["mdate"] = iso(self.now())
        return Answer(200, {"deal": deal})

    @route("POST", r"/api/3/notes")
    def create_note(self, call: Call) -> Answer:
        data = (call.json() or {}).get("note") or {}
        if not data.get("note"):
            return invalid("Note text is required", "field_missing", "/data/attributes/note")
        note = self._record(self.notes, {"relid": "", "reltype": "", **data, "mdate": iso(self.now())})
        return Answer(201, {"note": note})

    # ---- bulk import ------------------------------------------------------------------------------
    @route("POST", r"/api/3/import/bulk_import")
    def bulk_import(self, call: Call) -> Answer:
        contacts = (call.json() or {}).get("contacts")
        if not isinstance(contacts, list) or not contacts:
            return refused(["'contacts' is required"])
        if len(contacts) > BULK_IMPORT_MAX:
            return refused([f"Up to {BULK_IMPORT_MAX} contacts may be included in a single request"])
        reasons = [
            {"contact": i, "failureReason": "Field 'email' incorrect format"}
            for i, item in enumerate(contacts)
            if not EMAIL.match(str((item or {}).get("email") or "").strip())
        ]
        if reasons:
            return refused(reasons)
        if not self.import_window.take()[0]:
            reason = (
                "Up to 100 imports may be requested per minute. Please batch contacts into larger requests."
            )
            return refused([reason], "Rate limit exceeded.")
        batch = Import(str(uuid.uuid4()), contacts, self.clock())
        self.imports[batch.batch_id] = batch
        body = {"success": 1, "queued_contacts": len(contacts), "batchId": batch.batch_id}
        return Answer(200, {**body, "message": "Contact import queued"})

    @route("GET", r"/api/3/import/info")
    def import_info(self, call: Call) -> Answer:
        batch_id = call.arg("batchId")
        if not batch_id:
            return Answer(400, {"success": 0, "message": "'batchId' is a required field."})
        batch = self.imports.get(batch_id)
        if batch is None:
            return not_found("Batch", batch_id)
        return Answer(200, {"status": batch.status, "success": batch.success, "failure": batch.failure})

    # ---- internals --------------------------------------------------------------------------------
    def _process(self, batch: Import) -> None:
        for item in batch.contacts:
            email = str(item["email"]).strip().lower()
            if email in self.fail_import_emails:
                batch.failure.append(email)
                continue
            contact = self.contact(email)
            if contact is None:
                contact = self._new_contact(email)
                batch.success.append(str(contact.id))
            self._apply(contact, item, IMPORT_KEYS, [])
            self._set_fields(
                contact, [{"field": f.get("id"), "value": f.get("value")} for f in item.get("fields") or []]
            )
            for name in item.get("tags") or []:
                tag = next((t for t in self.tags.values() if t["tag"].lower() == str(name).lower()), None)
                self._tag(contact.id, int((tag or self._add_tag(str(name), ""))["id"]))
            for sub in item.get("subscribe") or []:
                key = (contact.id, int(sub["listid"]))
                if (
                    int(sub["listid"]) in self.lists
                    and self.contact_lists.get(key, {}).get("status") != UNSUBSCRIBED
                ):
                    self._membership(contact.id, int(sub["listid"]), SUBSCRIBED)
            for unsub in item.get("unsubscribe") or []:
                if int(unsub["listid"]) in self.lists:
                    self._membership(contact.id, int(unsub["listid"]), UNSUBSCRIBED)
            contact.udate = self.now()
        batch.status = "completed"

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _new_contact(self, email: str) -> Contact:
        contact = Contact(self._next_id(), email, self.now(), self.now())
        self.contacts[contact.id] = contact
        return contact

    def _apply(
        self, contact: Contact, data: dict[str, Any], keys: dict[str, str], values: list[dict[str, Any]]
    ) -> None:
        for key, attr in keys.items():
            if key in data:
                setattr(contact, attr, str(data[key] or ""))
        self._set_fields(contact, values)
        contact.udate = self.now()

    def _set_fields(self, contact: Contact, values: list[dict[str, Any]]) -> None:
        """Values for unknown field ids are dropped (the vendor's reference does not say; a connector must
        not rely on an error)."""
        for item in values:
            field_id = int(item.get("field") or 0)
            if field_id in self.fields:
                contact.fields[field_id] = "" if item.get("value") is None else str(item["value"])

    def _record(self, store: dict[int, dict[str, Any]], data: dict[str, Any]) -> dict[str, Any]:
        """A new record as the vendor shows it: string values, its creation date and id."""
        record_id = self._next_id()
        store[record_id] = {
            **{k: str(v) for k, v in data.items()},
            "cdate": iso(self.now()),
            "id": str(record_id),
        }
        return store[record_id]

    def _add_field(self, title: str, kind: str) -> dict[str, Any]:
        perstag = re.sub(r"[^A-Z0-9]+", "_", title.upper()).strip("_")
        return self._record(self.fields, {"title": title, "type": kind, "perstag": perstag})

    def _add_tag(self, name: str, description: str) -> dict[str, Any]:
        return self._record(self.tags, {"tagType": "contact", "tag": name, "description": description})

    def _add_list(self, name: str) -> dict[str, Any]:
        stringid = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        return self._record(self.lists, {"name": name, "stringid": stringid})

    def _tag(self, contact_id: int, tag_id: int) -> dict[str, Any]:
        pair = {"contact": str(contact_id), "tag": str(tag_id)}
        existing = [ct for ct in self.contact_tags.values() if pair.items() <= ct.items()]
        return existing[0] if existing else self._record(self.contact_tags, pair)

    def _membership(self, contact_id: int, list_id: int, status: int) -> dict[str, Any]:
        key = (contact_id, list_id)
        membership = self.contact_lists.get(key) or {"contact": str(contact_id), "list": str(list_id)}
        membership.setdefault("id", str(self._next_id()))
        membership.update({"status": status, "sdate" if status == SUBSCRIBED else "udate": iso(self.now())})
        self.contact_lists[key] = membership
        self.contacts[contact_id].udate = self.now()
        return membership

    def _related(self, contact_id: int) -> dict[str, list[dict[str, Any]]]:
        cid = str(contact_id)
        return {
            "fieldValues": self._fv(self.contacts[contact_id]),
            "contactTags": [t for t in self.contact_tags.values() if t["contact"] == cid],
            "contactLists": [m for m in self.contact_lists.values() if m["contact"] == cid],
            "notes": [n for n in self.notes.values() if n["reltype"] == "Subscriber" and n["relid"] == cid],
        }

    def _fv(self, contact: Contact) -> list[dict[str, Any]]:
        return [
            {"contact": str(contact.id), "field": str(fid), "value": value, "owner": str(contact.id)}
            for fid, value in sorted(contact.fields.items())
        ]

    def _out(self, contact: Contact) -> dict[str, Any]:
        return {
            "cdate": iso(contact.cdate),
            "email": contact.email,
            "phone": contact.phone,
            "firstName": contact.first_name,
            "lastName": contact.last_name,
            "orgid": "0",
            "hash": hashlib.md5(contact.email.encode()).hexdigest(),
            "deleted": "0",
            "anonymized": "0",
            "udate": iso(contact.udate),
            "id": str(contact.id),
            "organization": None,
        }
