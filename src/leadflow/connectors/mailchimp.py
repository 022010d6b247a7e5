"""Mailchimp Marketing API v3 (``httpx``): the members of one audience, their merge fields, tags and status.

The credentials: ``api_key`` (its ``-us21`` suffix names the data center). The audience is the option
``list_id`` (a connector made before options existed has it in its credentials, still read there).

- People: ``PUT /3.0/lists/{list}/members/{hash}`` upserts, the hash being the MD5 of the lower-cased
  email for a first write and the stored remote id (the member's hash as last written) after it. An
  email change is that ``PUT`` on the *old* hash with the new ``email_address``: Mailchimp moves the
  member, which keeps its history, and answers its new hash (the link follows it).
- A backfill — :data:`BATCH_MIN` new people or more in a batch — is one batch subscribe
  (``POST /3.0/lists/{list}``, at most 500 members, ``update_existing``), an error per member mapped
  to that record.
- Remote fields of the mapping: ``email_address``; ``status`` (leadflow's ``subscription_status``);
  ``tags`` (a list or comma-separated names, ``POST .../members/{hash}/tags``); any other name is a merge
  field (its tag, created as a text merge field when the audience lacks it).
- Status in step with leadflow's subscription: ``unsubscribed`` in leadflow sets ``status:
  unsubscribed``; ``subscribed`` only sets ``status_if_new`` — a member who unsubscribed in Mailchimp is
  never subscribed again by a write (Mailchimp wants the person's own opt-in), and the pull brings that
  unsubscribe into leadflow (``cleaned`` is read as ``unsubscribed``; ``pending``, ``transactional`` and
  ``archived`` are not read back).
- Pull: ``GET .../members?since_last_changed=`` sorted by ``last_changed``.
- Erasure: ``POST .../members/{hash}/actions/delete-permanent``.
- Limits: at most 10 simultaneous connections per key (this client uses one); over it a ``429`` with
  no ``Retry-After`` (waited :data:`BUSY_WAIT`). Errors are ``application/problem+json``; a member
  refused (``Member Exists``, ``Forgotten Email Not Subscribed``, an invalid value) is ``FAILED`` with
  Mailchimp's title and detail.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from leadflow.connectors import options as opts
from leadflow.connectors.rest import Rest, each, names_of, text_of
from leadflow.connectors.vendor import (
    CONTACT,
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

EMAIL, STATUS, TAGS = "email_address", "status", "tags"
BATCH_MIN = 20
BATCH_MAX = 500
#: not secret (shown and changed like the mapping); a connector made before options existed has the
#: audience in its credentials, still read there
OPTIONS: dict[str, opts.Check] = {"list_id": opts.text(r"[A-Za-z0-9]{1,64}", "the audience's id")}
BUSY_WAIT = timedelta(seconds=5)
READ_BACK = {"subscribed": "subscribed", "unsubscribed": "unsubscribed", "cleaned": "unsubscribed"}
DEFAULT_MAPPING: list[dict[str, Any]] = [
    {"from": "email", "to": EMAIL},
    {"from": "first_name", "to": "FNAME"},
    {"from": "last_name", "to": "LNAME"},
    {"from": "phone", "to": "PHONE", "transform": "e164"},
    {"from": "subscription_status", "to": STATUS},
]


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode(), usedforsecurity=False).hexdigest()  # the member key


def _time(value: Any) -> datetime | None:
    if isinstance(value, str) and value:
        with contextlib.suppress(ValueError):
            found = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (found if found.tzinfo else found.replace(tzinfo=UTC)).astimezone(UTC)
    return None


def _message(body: Any) -> str:
    if not isinstance(body, Mapping):
        return ""
    title, detail = str(body.get("title") or ""), str(body.get("detail") or "")
    return f"{title}: {detail}" if title and detail else title or detail


class MailchimpVendor:
    """One Mailchimp audience: ``{"api_key": "<key>-<dc>", "list_id": "<audience id>"}``."""

    name: ClassVar[str] = "mailchimp"
    batch_size: ClassVar[int] = BATCH_MAX
    rate: ClassVar[float] = 10.0
    burst: ClassVar[float] = 50.0
    kinds: ClassVar[frozenset[str]] = frozenset({CONTACT})
    match_field: ClassVar[str] = EMAIL

    def __init__(
        self,
        credentials: Mapping[str, Any],
        host: str | None,
        network: Network,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        key = credentials.get("api_key")
        list_id = opts.merged(OPTIONS, options, credentials)["list_id"]
        if not isinstance(key, str) or not key:
            raise VendorError("Mailchimp needs an api_key", retry=False)
        if not isinstance(list_id, str) or not list_id:
            raise VendorError("Mailchimp needs the audience's list_id (an option)", retry=False)
        center = key.rpartition("-")[2] if "-" in key else "us1"
        self.members = f"/3.0/lists/{list_id}/members"
        self.list_path = f"/3.0/lists/{list_id}"
        self.rate_seen: RateSeen | None = None
        self.http = Rest(
            "Mailchimp",
            host or f"https://{center}.api.mailchimp.com",
            network,
            auth=("leadflow", key),
            max_connections=1,  # well under the 10 simultaneous connections allowed
            default_wait=BUSY_WAIT,
            message_of=_message,
        )
        self._merge: set[str] | None = None

    # --- merge fields --------------------------------------------------------------------------------

    def merge_tags(self, names: Sequence[str]) -> None:
        """Make sure the audience has these merge fields (created as text when missing)."""
        if self._merge is None:
            body = self.http.call("GET", f"{self.list_path}/merge-fields", params={"count": 1000})
            self._merge = {str(f["tag"]) for f in body.get("merge_fields") or []}
        for name in names:
            if name not in self._merge:
                field = {"name": name, "tag": name, "type": "text"}
                made = self.http.call("POST", f"{self.list_path}/merge-fields", json=field)
                self._merge.add(str(made.get("tag") or name))

    def _member(self, record: Record) -> dict[str, Any]:
        props = record.properties
        merge = {k: v for k, v in props.items() if k not in (EMAIL, STATUS, TAGS)}
        self.merge_tags(sorted(merge))
        unsubscribed = str(props.get(STATUS)) == "unsubscribed"
        member: dict[str, Any] = {
            EMAIL: str(props.get(EMAIL) or record.match or ""),
            "status_if_new": "unsubscribed" if unsubscribed else "subscribed",
            "merge_fields": {k: text_of(v) for k, v in merge.items()},
        }
        if unsubscribed:
            member[STATUS] = "unsubscribed"
        return member

    # --- the interface ---------------------------------------------------------------------------------

    def check(self) -> None:
        self.http.call("GET", "/3.0/ping")

    def calls(self, kind: str, records: Sequence[Record]) -> int:
        lookup = int(self._merge is None)
        fresh = [r for r in records if not r.remote_id]
        known = [r for r in records if r.remote_id]
        per = sum(1 + int(bool(names_of(r.properties.get(TAGS)))) for r in known)
        if len(fresh) >= BATCH_MIN:
            return lookup + math.ceil(len(fresh) / BATCH_MAX) + per
        return lookup + per + sum(1 + int(bool(names_of(r.properties.get(TAGS)))) for r in fresh)

    def write(self, kind: str, records: Sequence[Record]) -> list[Written]:
        if kind != CONTACT:
            return [Written(r.local_id, FAILED, error="not synced by Mailchimp") for r in records]
        fresh = [r for r in records if not r.remote_id and (r.match or r.properties.get(EMAIL))]
        missing = [
            Written(r.local_id, FAILED, error="no email")
            for r in records
            if not r.remote_id and not (r.match or r.properties.get(EMAIL))
        ]
        known = [r for r in records if r.remote_id]
        written = self._batch(fresh) if len(fresh) >= BATCH_MIN else each(fresh, self._put)
        return written + each(known, self._put) + missing

    def _put(self, record: Record) -> Written:
        member = self._member(record)
        key = record.remote_id or subscriber_hash(member[EMAIL])
        answer = self.http.call("PUT", f"{self.members}/{key}", json=member)
        remote_id = str(answer.get("id") or subscriber_hash(str(answer.get(EMAIL) or member[EMAIL])))
        self._tag(remote_id, record.properties.get(TAGS))
        return Written(record.local_id, OK, remote_id, _time(answer.get("last_changed")))

    def _tag(self, remote_id: str, tags: Any) -> None:
        names = names_of(tags)
        if names:
            body = {"tags": [{"name": name, "status": "active"} for name in names]}
            self.http.call("POST", f"{self.members}/{remote_id}/tags", json=body)

    def _batch(self, records: Sequence[Record]) -> list[Written]:
        written: list[Written] = []
        for start in range(0, len(records), BATCH_MAX):
            chunk = records[start : start + BATCH_MAX]
            members = [{**self._member(r), TAGS: names_of(r.properties.get(TAGS))} for r in chunk]
            answer = self.http.call(
                "POST", self.list_path, json={"members": members, "update_existing": True}
            )
            done = {
                str(m.get(EMAIL, "")).lower(): m
                for m in (answer.get("new_members") or []) + (answer.get("updated_members") or [])
            }
            updated = {str(m.get(EMAIL, "")).lower() for m in answer.get("updated_members") or []}
            errors = {str(e.get(EMAIL, "")).lower(): e for e in answer.get("errors") or []}
            for record, member in zip(chunk, members, strict=True):
                email = str(member[EMAIL]).lower()
                if email in done:
                    found = done[email]
                    remote_id = str(found.get("id") or subscriber_hash(email))
                    if email in updated:  # tags given in a batch only reach new members
                        self._tag(remote_id, member[TAGS])
                    written.append(Written(record.local_id, OK, remote_id, _time(found.get("last_changed"))))
                elif email in errors:
                    error = errors[email]
                    text = f"Mailchimp: {error.get('error') or error.get('error_code')}"
                    written.append(Written(record.local_id, FAILED, error=text[:300]))
                else:
                    written.append(
                        Written(record.local_id, RETRY, error="Mailchimp: no answer for this member")
                    )
        return written

    def erase(self, remote_ids: Sequence[str]) -> list[Written]:
        done = []
        for remote_id in remote_ids:
            # gone already (deleted, or never there): erased all the same
            self.http.call("POST", f"{self.members}/{remote_id}/actions/delete-permanent", missing_ok=True)
            done.append(Written(remote_id, OK, remote_id))
        return done

    def changes(self, since: datetime | None, fields: Sequence[str], limit: int) -> list[Change]:
        params: dict[str, Any] = {
            "count": min(limit, 1000),
            "sort_field": "last_changed",
            "sort_dir": "ASC",
        }
        if since is not None:
            params["since_last_changed"] = since.astimezone(UTC).isoformat(timespec="seconds")
        body = self.http.call("GET", self.members, params=params)
        found: list[Change] = []
        for member in body.get("members") or []:
            modified = _time(member.get("last_changed"))
            if modified is None:
                continue
            props: dict[str, Any] = {EMAIL: member.get(EMAIL), **(member.get("merge_fields") or {})}
            status = READ_BACK.get(str(member.get(STATUS)))
            if status is not None:
                props[STATUS] = status
            email = member.get(EMAIL)
            found.append(
                Change(str(member["id"]), email if isinstance(email, str) else None, props, modified)
            )
        return found

    def owners(self) -> dict[str, str]:
        return {}

    def properties(self, kind: str, row: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        self.http.close()
