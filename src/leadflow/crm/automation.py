"""What automations (journey steps, capture flows) do to leads: set-based over a batch, in the caller's
transaction, and idempotent under retry.

- **Activities** carry their idempotency key in ``created_by`` (``journey:<step key>``,
  ``capture:<request id>``): a key already logged is skipped, so a retried step or a repeated capture
  call logs once. An automated activity touches the lead but is never its *first response* — that is a
  person's logged call, email or meeting, or a status leaving ``new``. Unless told otherwise an
  automated activity belongs to the lead's owner (a task lands in the owner's open tasks).
- **Status**: setting the status (and reason) a lead already has changes nothing and emits nothing; a
  change is audited and emits ``lead.status_changed`` under the caller's key (stored once), exactly as a
  change through the API does (:func:`leadflow.crm.leads.change_status`).
- **Owner**: likewise, with ``lead.owner_assigned``; the owner is an active user.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.crm import leads, queries, routing, rules
from leadflow.crm.models import crm_teams, crm_users
from leadflow.events import service as events
from leadflow.kernel.clock import Clock
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import chunk_size, chunked, copy_rows
from leadflow.kernel.errors import Invalid

MAX_SUBJECT = 500


@dataclass(frozen=True)
class NewActivity:
    """An activity an automation logs; ``key`` makes it idempotent (at most 64 characters)."""

    contact_id: str
    kind: str
    subject: str | None
    body: str | None
    key: str
    due_at: datetime | None = None
    owner_id: str | None = None  # None: the lead's owner


@dataclass(frozen=True)
class StatusChange:
    contact_id: str
    status: str
    reason: str | None
    key: str


@dataclass(frozen=True)
class OwnerChange:
    contact_id: str
    owner_id: str
    key: str


def check_status(status: str, reason: str | None) -> str | None:
    """The reason a change to ``status`` keeps (rules of the API: a reason for unqualified and lost
    only); raises :class:`~leadflow.kernel.errors.Invalid` otherwise."""
    rules.status(status)
    return rules.reason_for(status, reason)


def check_kind(kind: str) -> str:
    return rules.kind(kind)


def ensure_leads(conn: Connection, contact_ids: Sequence[str], now: datetime) -> None:
    for chunk in chunked(sorted(set(contact_ids)), chunk_size(conn)):
        conn.execute(queries.ensure_leads(conn.dialect.name, chunk, now))


def _records(conn: Connection, contact_ids: Sequence[str], now: datetime) -> dict[str, Any]:
    ensure_leads(conn, contact_ids, now)
    return {row.contact_id: row for row in conn.execute(queries.leads_of(sorted(set(contact_ids))))}


def owner_emails(conn: Connection, contact_ids: Sequence[str]) -> dict[str, dict[str, str]]:
    """``{"email", "name"}`` of each lead's owner, for leads whose owner is an active user (one query)."""
    if not contact_ids:
        return {}
    found = conn.execute(queries.owner_emails(conn.dialect.name, sorted(set(contact_ids))))
    return {row.contact_id: {"email": row.email, "name": row.name} for row in found}


def find_user(conn: Connection, ref: str) -> str:
    """The id of the active user with this id or email (422 ``user_not_found`` / ``user_inactive``)."""
    found = list(conn.execute(queries.users_named([ref])))
    if not found:
        raise Invalid(f"no user {ref}", code="user_not_found")
    row = found[0]
    if not row.active:
        raise Invalid(f"user {ref} is inactive", code="user_inactive")
    return str(row.id)


def logged(conn: Connection, keys: Sequence[str]) -> dict[str, str]:
    """The contact each of these idempotency keys already logged an activity on (one query)."""
    if not keys:
        return {}
    return {row.created_by: row.contact_id for row in conn.execute(queries.activities_by(sorted(set(keys))))}


def log_activities(
    conn: Connection, clock: Clock, entries: Sequence[NewActivity], *, actor: str
) -> list[NewActivity]:
    """Log the entries whose key has not logged one yet; answers those logged now."""
    if not entries:
        return []
    now = clock.now()
    # the leads are locked first: a concurrent call with the same key waits here, then sees it logged
    records = _records(conn, [entry.contact_id for entry in entries], now)
    done = logged(conn, [entry.key for entry in entries])
    fresh = [entry for entry in entries if entry.key not in done]
    if not fresh:
        return []
    rows = [
        {
            "contact_id": entry.contact_id,
            "kind": rules.kind(entry.kind),
            "subject": entry.subject[:MAX_SUBJECT] if entry.subject else None,
            "body": entry.body,
            "due_at": entry.due_at if entry.kind == "task" else None,
            "done_at": None,
            "owner_id": entry.owner_id or records[entry.contact_id].owner_id,
            "created_by": entry.key,
            "occurred_at": now,
            "created_at": now,
        }
        for entry in fresh
    ]
    conn.execute(queries.INSERT_ACTIVITIES, rows)
    conn.execute(queries.TOUCH, [{"lead": cid, "now": now} for cid in sorted(records)])
    audit.record_many(
        conn,
        clock,
        actor=actor,
        action="crm.activity_logged",
        entity_type="contact",
        items=[(entry.contact_id, {"kind": entry.kind, "key": entry.key}) for entry in fresh],
    )
    return fresh


def set_statuses(
    conn: Connection, clock: Clock, changes: Sequence[StatusChange], *, actor: str
) -> list[StatusChange]:
    """Set each lead's status; answers the changes that changed something."""
    if not changes:
        return []
    now = clock.now()
    records = _records(conn, [c.contact_id for c in changes], now)
    made, params, emitted = [], [], []
    for change in changes:
        reason = check_status(change.status, change.reason)
        before = records[change.contact_id]
        if (before.status, before.reason) == (change.status, reason):
            continue
        made.append(change)
        params.append(
            {
                "lead": change.contact_id,
                "new_status": change.status,
                "new_reason": reason,
                "now": now,
                "responded_at": now if change.status != "new" else None,
            }
        )
        details = {"from": before.status, "to": change.status, "reason": reason}
        emitted.append((change.contact_id, leads.STATUS_CHANGED, details, f"{change.key}:status"))
    if not made:
        return []
    conn.execute(queries.SET_STATUS, params)
    audit.record_many(
        conn,
        clock,
        actor=actor,
        action=leads.STATUS_CHANGED,
        entity_type="contact",
        items=[(cid, details) for cid, _, details, _ in emitted],
    )
    events.emit_many(conn, emitted, now)
    return made


def assign_owners(
    conn: Connection, clock: Clock, changes: Sequence[OwnerChange], *, actor: str
) -> list[OwnerChange]:
    """Give each lead its owner (an active user; checked by the caller with :func:`find_user`);
    answers the changes that changed something."""
    if not changes:
        return []
    now = clock.now()
    records = _records(conn, [c.contact_id for c in changes], now)
    made = [c for c in changes if records[c.contact_id].owner_id != c.owner_id]
    if not made:
        return []
    conn.execute(queries.SET_OWNER, [{"lead": c.contact_id, "owner": c.owner_id, "now": now} for c in made])
    emitted = [
        (
            c.contact_id,
            leads.OWNER_ASSIGNED,
            {"from": records[c.contact_id].owner_id, "to": c.owner_id},
            f"{c.key}:owner",
        )
        for c in made
    ]
    audit.record_many(
        conn,
        clock,
        actor=actor,
        action=leads.OWNER_ASSIGNED,
        entity_type="contact",
        items=[(cid, details) for cid, _, details, _ in emitted],
    )
    events.emit_many(conn, emitted, now)
    return made


def route(conn: Connection, ctx: AppContext, contact_ids: Sequence[str], *, actor: str) -> dict[str, str]:
    """Give these contacts an owner by the routing rules (:mod:`leadflow.crm.routing`), making them
    leads first; a lead that has an owner keeps it, so routing again changes nothing. Answers the
    owner each lead has afterwards (a lead no rule and no fallback owner could take is absent)."""
    if not contact_ids:
        return {}
    now = ctx.clock.now()
    records = _records(conn, contact_ids, now)
    owners = {cid: row.owner_id for cid, row in records.items() if row.owner_id is not None}
    routed = routing.route(conn, ctx, [cid for cid in records if cid not in owners], actor=actor)
    owners.update({r.contact_id: r.owner_id for r in routed if r.owner_id is not None})
    return owners


def copy_configuration(source: Connection, target: Connection) -> None:
    """The business's teams and users, into a scratch database (the journey simulator), so steps that
    name an owner run there as they would here."""
    copy_rows(source, target, crm_teams)
    copy_rows(source, target, crm_users)
