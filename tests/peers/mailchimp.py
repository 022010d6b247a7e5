"""A local Mailchimp Marketing API (v3) for the connector tests: ``/3.0/...`` with Basic auth
(``anystring:<api key>``) or a Bearer token.

What it keeps, as the vendor does: audiences (lists) with merge fields; members keyed by the MD5 of the
lower-cased e-mail (``PUT .../members/{hash}`` upserts: ``status_if_new`` for a new member, ``status``
for any; ``POST .../members`` of an existing member is ``400 Member Exists``), their merge fields, tags
(given when the member is added, or through ``POST .../members/{hash}/tags``), status (subscribed,
unsubscribed, cleaned, pending, transactional, archived) and ``last_changed`` (for pulls with
``since_last_changed``). ``DELETE`` archives a member (a later ``PUT`` brings it back);
``actions/delete-permanent`` forgets it, and the e-mail can no longer be added by the API. Batch subscribe
``POST /3.0/lists/{list_id}`` takes at most 500 members with ``update_existing``.

Its habits: errors are ``application/problem+json`` ``{"type", "title", "status", "detail",
"instance"}`` (plus ``errors`` for field errors); at most 10 simultaneous connections per key, over it
``429`` (no ``Retry-After``: Mailchimp sends none); a bad key is ``401 API Key Invalid``.

A test reads members with :meth:`MailchimpPeer.member`, changes one "remotely" (an unsubscribe in
Mailchimp, an edited merge field) with :meth:`change_remotely`, and can hold requests in flight by
holding ``peer.lock`` (requests queue for it while counted in ``peer.in_flight``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tests.peers.saas import Answer, Call, SaasPeer, route

API_KEY = "0123456789abcdef0123456789abcdef-us21"
LIST_ID = "a1b2c3d4e5"
BATCH_MAX = 500
ERRORS_DOC = "https://mailchimp.com/developer/marketing/docs/errors/"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
STATUSES = {"subscribed", "unsubscribed", "cleaned", "pending", "transactional"}
DEFAULT_MERGE_FIELDS = (
    ("FNAME", "First Name", "text"),
    ("LNAME", "Last Name", "text"),
    ("PHONE", "Phone", "phone"),
)


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def problem(status: int, title: str, detail: str, errors: list[dict[str, str]] | None = None) -> Answer:
    body: dict[str, Any] = {
        "type": ERRORS_DOC,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": str(uuid.uuid4()),
    }
    if errors is not None:
        body["errors"] = errors
    return Answer(status, body, content_type="application/problem+json")


def invalid(detail: str, field_name: str = "", message: str = "") -> Answer:
    errors = [{"field": field_name, "message": message}] if field_name else None
    return problem(400, "Invalid Resource", detail, errors)


def missing() -> Answer:
    return problem(404, "Resource Not Found", "The requested resource could not be found.")


@dataclass
class Member:
    email: str
    status: str
    signed_up: datetime
    last_changed: datetime
    merge_fields: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, datetime] = field(default_factory=dict)  # tag name -> date added
    web_id: int = 0

    @property
    def hash(self) -> str:
        return subscriber_hash(self.email)


@dataclass
class Audience:
    id: str
    name: str
    merge_fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # tag -> definition
    members: dict[str, Member] = field(default_factory=dict)  # subscriber hash -> member
    forgotten: set[str] = field(default_factory=set)  # hashes permanently deleted


class MailchimpPeer(SaasPeer):
    """``MailchimpPeer(max_connections=10)``: one audience ``LIST_ID`` exists from the start."""

    def __init__(self, *, api_key: str = API_KEY, max_connections: int = 10, **base: Any) -> None:
        super().__init__(**base)
        self.api_key = api_key
        self.max_connections = max_connections
        self.audiences: dict[str, Audience] = {}
        self.tag_ids: dict[str, int] = {}
        self._ids = 0
        self.add_audience(LIST_ID, "leadflow test audience")

    # ---- what a test asks or changes --------------------------------------------------------------
    def add_audience(self, list_id: str, name: str) -> Audience:
        with self.lock:
            audience = Audience(list_id, name)
            for tag, label, kind in DEFAULT_MERGE_FIELDS:
                self._add_merge_field(audience, tag, label, kind)
            self.audiences[list_id] = audience
            return audience

    def member(self, email: str, list_id: str = LIST_ID) -> Member | None:
        with self.lock:
            return self.audiences[list_id].members.get(subscriber_hash(email))

    def count(self, list_id: str = LIST_ID, *, status: str | None = None) -> int:
        with self.lock:
            members = self.audiences[list_id].members.values()
            return sum(1 for m in members if status is None or m.status == status)

    def change_remotely(
        self, email: str, *, list_id: str = LIST_ID, status: str | None = None, **merge_fields: Any
    ) -> Member:
        """Edit a member as a Mailchimp user (or the member, unsubscribing) would: ``last_changed`` moves."""
        with self.lock:
            found = self.member(email, list_id)
            assert found is not None, f"no member {email}"
            if status is not None:
                found.status = status
            found.merge_fields.update(merge_fields)
            found.last_changed = self.now()
            return found

    # ---- the vendor's habits ----------------------------------------------------------------------
    def auth(self, call: Call) -> Answer | None:
        header = call.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        key = ""
        if scheme.lower() == "basic":
            try:
                key = base64.b64decode(value).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                key = ""
        elif scheme.lower() in ("bearer", "apikey"):
            key = value
        if key != self.api_key:
            detail = "Your API key may be invalid, or you've attempted to access the wrong datacenter."
            return problem(401, "API Key Invalid", detail)
        return None

    def limited(self, call: Call) -> Answer | None:
        """Simultaneous connections, not a rate: the requests read and not yet answered (this one too)."""
        if self.in_flight > self.max_connections:
            return self.too_many(call, 0)
        return None

    def not_found(self, call: Call) -> Answer:
        return missing()

    def too_many(self, call: Call, retry_after: int) -> Answer:
        detail = f"You have exceeded the limit of {self.max_connections} simultaneous connections."
        return problem(429, "Too Many Requests", detail)

    def server_error(self, call: Call, status: int) -> Answer:
        return problem(status, "Internal Server Error", "An unexpected internal error has occurred.")

    # ---- routes -----------------------------------------------------------------------------------
    @route("GET", r"/3\.0/ping")
    def ping(self, call: Call) -> Answer:
        return Answer(200, {"health_status": "Everything's Chimpy!"})

    @route("GET", r"/3\.0/lists/(?P<list_id>\w+)")
    def read_list(self, call: Call, list_id: str) -> Answer:
        audience = self.audiences.get(list_id)
        if audience is None:
            return missing()
        stats = {"member_count": sum(1 for m in audience.members.values() if m.status == "subscribed")}
        return Answer(200, {"id": audience.id, "name": audience.name, "stats": stats})

    @route("GET", r"/3\.0/lists/(?P<list_id>\w+)/merge-fields")
    def merge_fields(self, call: Call, list_id: str) -> Answer:
        audience = self.audiences.get(list_id)
        if audience is None:
            return missing()
        fields = list(audience.merge_fields.values())
        return Answer(200, {"merge_fields": fields, "list_id": list_id, "total_items": len(fields)})

    @route("POST", r"/3\.0/lists/(?P<list_id>\w+)/merge-fields")
    def add_merge_field(self, call: Call, list_id: str) -> Answer:
        audience = self.audiences.get(list_id)
        if audience is None:
            return missing()
        data = call.json() or {}
        if not data.get("name") or not data.get("type"):
            return invalid(
                "The resource submitted could not be validated.", "name", "This value should not be blank."
            )
        tag = str(data.get("tag") or re.sub(r"[^A-Z0-9]", "", str(data["name"]).upper())[:10])
        if tag in audience.merge_fields:
            return invalid(f'A Merge Field with the tag "{tag}" already exists for this list.')
        return Answer(200, self._add_merge_field(audience, tag, str(data["name"]), str(data["type"])))

    @route("POST", r"/3\.0/lists/(?P<list_id>\w+)")
    def batch(self, call: Call, list_id: str) -> Answer:
        audience = self.audiences.get(list_id)
        if audience is None:
            return missing()
        data = call.json() or {}
        members = data.get("members")
        if not isinstance(members, list):
            return invalid(
                "The resource submitted could not be validated.", "members", "Schema describes array."
            )
        if len(members) > BATCH_MAX:
            return invalid(
                f"You can only add or update a maximum of {BATCH_MAX} members in a single request."
            )
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        errors: list[dict[str, str]] = []
        for item in members:
            email = str(item.get("email_address") or "").strip()
            error = self._batch_one(
                audience, item, email, bool(data.get("update_existing")), created, updated
            )
            if error:
                errors.append(
                    {
                        "email_address": email,
                        "error": error[1],
                        "error_code": error[0],
                        "field": "",
                        "field_message": "",
                    }
                )
        body = {
            "new_members": created,
            "updated_members": updated,
            "errors": errors,
            "total_created": len(created),
            "total_updated": len(updated),
            "error_count": len(errors),
        }
        return Answer(200, body)

    @route("GET", r"/3\.0/lists/(?P<list_id>\w+)/members")
    def members(self, call: Call, list_id: str) -> Answer:
        audience = self.audiences.get(list_id)
        if audience is None:
            return missing()
        found = list(audience.members.values())
        status = call.arg("status")
        found = (
            [m for m in found if m.status == status]
            if status
            else [m for m in found if m.status != "archived"]
        )
        if since := call.arg("since_last_changed"):
            try:
                moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
            except ValueError:
                return invalid(
                    "The resource submitted could not be validated.", "since_last_changed", "Invalid date"
                )
            moment = moment if moment.tzinfo else moment.replace(tzinfo=self.now().tzinfo)
            found = [m for m in found if m.last_changed > moment]
        if call.arg("sort_field") == "last_changed":
            found.sort(key=lambda m: m.last_changed, reverse=call.arg("sort_dir") == "DESC")
        count, offset = min(int(call.arg("count") or 10), 1000), int(call.arg("offset") or 0)
        page = [self._out(list_id, m) for m in found[offset : offset + count]]
        return Answer(200, {"members": page, "list_id": list_id, "total_items": len(found)})

    @route("POST", r"/3\.0/lists/(?P<list_id>\w+)/members")
    def create(self, call: Call, list_id: str) -> Answer:
        audience = self.audiences.get(list_id)
        if audience is None:
            return missing()
        data = call.json() or {}
        email = str(data.get("email_address") or "").strip()
        if not EMAIL.match(email):
            return invalid("Please provide a valid email address.", "email_address", "Invalid email")
        existing = audience.members.get(subscriber_hash(email))
        if existing is not None and existing.status != "archived":
            detail = f"{email} is already a list member. Use PUT to insert or update list members."
            return problem(400, "Member Exists", detail)
        if subscriber_hash(email) in audience.forgotten:
            return self._forgotten(email)
        if data.get("status") not in STATUSES - {"cleaned"}:
            return invalid("The resource submitted could not be validated.", "status", "Invalid status")
        member = self._add(audience, email, str(data["status"]), data)
        return Answer(200, self._out(list_id, member))

    @route("GET", r"/3\.0/lists/(?P<list_id>\w+)/members/(?P<key>[^/]+)")
    def read(self, call: Call, list_id: str, key: str) -> Answer:
        audience = self.audiences.get(list_id)
        member = audience.members.get(self._hash(key)) if audience else None
        return Answer(200, self._out(list_id, member)) if audience and member else missing()

    @route("PUT", r"/3\.0/lists/(?P<list_id>\w+)/members/(?P<key>[^/]+)")
    def upsert(self, call: Call, list_id: str, key: str) -> Answer:
        return self._write(call, list_id, key, upsert=True)

    @route("PATCH", r"/3\.0/lists/(?P<list_id>\w+)/members/(?P<key>[^/]+)")
    def patch(self, call: Call, list_id: str, key: str) -> Answer:
        return self._write(call, list_id, key, upsert=False)

    @route("DELETE", r"/3\.0/lists/(?P<list_id>\w+)/members/(?P<key>[^/]+)")
    def archive(self, call: Call, list_id: str, key: str) -> Answer:
        audience = self.audiences.get(list_id)
        member = audience.members.get(self._hash(key)) if audience else None
        if member is None or member.status == "archived":
            return missing()
        member.status, member.last_changed = "archived", self.now()
        return Answer(204)

    @route("POST", r"/3\.0/lists/(?P<list_id>\w+)/members/(?P<key>[^/]+)/actions/delete-permanent")
    def delete_permanent(self, call: Call, list_id: str, key: str) -> Answer:
        audience = self.audiences.get(list_id)
        if audience is None or audience.members.pop(self._hash(key), None) is None:
            return missing()
        audience.forgotten.add(self._hash(key))
        return Answer(204)

    @route("GET", r"/3\.0/lists/(?P<list_id>\w+)/members/(?P<key>[^/]+)/tags")
    def read_tags(self, call: Call, list_id: str, key: str) -> Answer:
        audience = self.audiences.get(list_id)
        member = audience.members.get(self._hash(key)) if audience else None
        if member is None:
            return missing()
        tags = [{"id": self._tag_id(n), "name": n, "date_added": iso(d)} for n, d in member.tags.items()]
        return Answer(200, {"tags": tags, "total_items": len(tags)})

    @route("POST", r"/3\.0/lists/(?P<list_id>\w+)/members/(?P<key>[^/]+)/tags")
    def write_tags(self, call: Call, list_id: str, key: str) -> Answer:
        audience = self.audiences.get(list_id)
        member = audience.members.get(self._hash(key)) if audience else None
        if member is None:
            return missing()
        tags = (call.json() or {}).get("tags")
        if not isinstance(tags, list):  # the vendor answers 204 and changes nothing
            return Answer(204)
        if any(not isinstance(t, dict) or not t.get("name") for t in tags):
            return invalid(
                "The resource submitted could not be validated.", "tags", "Schema describes array."
            )
        for tag in tags:
            if tag.get("status") == "inactive":
                member.tags.pop(str(tag["name"]), None)
            else:
                member.tags.setdefault(str(tag["name"]), self.now())
        return Answer(204)

    # ---- internals --------------------------------------------------------------------------------
    def _write(self, call: Call, list_id: str, key: str, *, upsert: bool) -> Answer:
        audience = self.audiences.get(list_id)
        if audience is None:
            return missing()
        data = call.json() or {}
        digest = self._hash(key)
        member = audience.members.get(digest)
        email = str(data.get("email_address") or (member.email if member else "")).strip()
        if data.get("status") is not None and data["status"] not in STATUSES - {"cleaned"}:
            return invalid("The resource submitted could not be validated.", "status", "Invalid status")
        if member is None or member.status == "archived":
            if not upsert:
                return missing()
            if not EMAIL.match(email):
                return invalid("Please provide a valid email address.", "email_address", "Invalid email")
            if subscriber_hash(email) != digest:
                return invalid("The email address does not match the subscriber hash in the URL.")
            if digest in audience.forgotten:
                return self._forgotten(email)
            status = data.get("status") or data.get("status_if_new")
            if status not in STATUSES - {"cleaned"}:
                return invalid(
                    "The resource submitted could not be validated.",
                    "status_if_new",
                    "Required for a new member",
                )
            if member is not None:  # archived: back on the list
                member.status, member.last_changed = str(status), self.now()
                member.merge_fields.update(self._merge_fields(audience, data))
                return Answer(200, self._out(list_id, member))
            return Answer(200, self._out(list_id, self._add(audience, email, str(status), data)))
        if email and subscriber_hash(email) != digest:  # an e-mail change of an existing member
            if not EMAIL.match(email):
                return invalid("Please provide a valid email address.", "email_address", "Invalid email")
            if subscriber_hash(email) in audience.members:
                return problem(400, "Member Exists", f"{email} is already a list member.")
            del audience.members[digest]
            member.email = email
            audience.members[member.hash] = member
        if data.get("status"):
            member.status = str(data["status"])
        member.merge_fields.update(self._merge_fields(audience, data))
        member.last_changed = self.now()
        return Answer(200, self._out(list_id, member))

    def _batch_one(
        self,
        audience: Audience,
        item: dict[str, Any],
        email: str,
        update_existing: bool,
        created: list[dict[str, Any]],
        updated: list[dict[str, Any]],
    ) -> tuple[str, str] | None:
        """One member of a batch subscribe: None when done, else (error_code, error)."""
        if not EMAIL.match(email):
            return "ERROR_GENERIC", f"{email} looks fake or invalid, please enter a real email address."
        if subscriber_hash(email) in audience.forgotten:
            return "ERROR_GENERIC", f"{email} was permanently deleted and cannot be re-imported."
        status = item.get("status") or item.get("status_if_new")
        member = audience.members.get(subscriber_hash(email))
        if member is None or member.status == "archived":
            if status not in STATUSES - {"cleaned"}:
                return "ERROR_GENERIC", "The status is invalid or missing."
            if member is not None:
                member.status, member.last_changed = str(status), self.now()
            member = member or self._add(audience, email, str(status), item)
            created.append(self._out(audience.id, member))
            return None
        if not update_existing:
            message = f"{email} is already a list member, do you want to update?"
            message += " please provide update_existing:true"
            return "ERROR_CONTACT_EXISTS", message
        if item.get("status") in STATUSES - {"cleaned"}:
            member.status = str(item["status"])
        member.merge_fields.update(self._merge_fields(audience, item))
        member.last_changed = self.now()
        updated.append(self._out(audience.id, member))
        return None

    def _add(self, audience: Audience, email: str, status: str, data: dict[str, Any]) -> Member:
        """A new member; ``tags`` (names) only count when a member is added, as with the vendor."""
        self._ids += 1
        now = self.now()
        member = Member(email, status, now, now, self._merge_fields(audience, data), web_id=self._ids)
        member.tags = {str(name): now for name in data.get("tags") or []}
        audience.members[member.hash] = member
        return member

    def _merge_fields(self, audience: Audience, data: dict[str, Any]) -> dict[str, Any]:
        """Only the audience's merge fields are kept (an unknown tag is dropped)."""
        given = data.get("merge_fields") or {}
        return {tag: value for tag, value in given.items() if tag in audience.merge_fields}

    def _add_merge_field(self, audience: Audience, tag: str, name: str, kind: str) -> dict[str, Any]:
        self._ids += 1
        definition = {"merge_id": self._ids, "tag": tag, "name": name, "type": kind, "list_id": audience.id}
        audience.merge_fields[tag] = definition
        return definition

    def _forgotten(self, email: str) -> Answer:
        detail = (
            f"{email} was permanently deleted and cannot be re-imported. "
            "The contact must re-subscribe to get back on the list."
        )
        return problem(400, "Forgotten Email Not Subscribed", detail)

    def _tag_id(self, name: str) -> int:
        return self.tag_ids.setdefault(name, len(self.tag_ids) + 1)

    @staticmethod
    def _hash(key: str) -> str:
        """The path's member key: the subscriber hash, or (as the vendor also accepts) the e-mail."""
        return subscriber_hash(key) if "@" in key else key.lower()

    def _out(self, list_id: str, member: Member) -> dict[str, Any]:
        first, last = member.merge_fields.get("FNAME", ""), member.merge_fields.get("LNAME", "")
        return {
            "id": member.hash,
            "email_address": member.email,
            "unique_email_id": member.hash[:10],
            "contact_id": member.hash[10:],
            "full_name": f"{first} {last}".strip(),
            "web_id": member.web_id,
            "email_type": "html",
            "status": member.status,
            "merge_fields": {
                tag: member.merge_fields.get(tag, "") for tag in self.audiences[list_id].merge_fields
            },
            "interests": {},
            "timestamp_signup": iso(member.signed_up),
            "timestamp_opt": iso(member.signed_up),
            "last_changed": iso(member.last_changed),
            "source": "API - Generic",
            "tags_count": len(member.tags),
            "tags": [{"id": self._tag_id(name), "name": name} for name in member.tags],
            "list_id": list_id,
        }
