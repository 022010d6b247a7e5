"""Profile writes outside the event stream: the profile lock, handing changes to the qualifiers, and the
REST API's upsert and patch (validated like CSV input)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import normalize, queries, stages
from leadflow.contacts.apply import Applied, apply_events
from leadflow.contacts.batch import ProfileBatch
from leadflow.contacts.changes import ProfileChanges
from leadflow.contacts.schemas import Contact, ContactFields, ContactPatch, ContactUpsert
from leadflow.contacts.state import ContactState, FlushResult
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import advisory_lock
from leadflow.kernel.errors import Conflict, Invalid
from leadflow.kernel.facts import ContactsTouched

PROFILE_LOCK = "leadflow.profiles"
PROCESSOR_LOCK = "leadflow.processor"
SUBSCRIPTION_STATUSES = ("subscribed", "unsubscribed")


def profile_lock(conn: Connection, *, wait: bool = True) -> bool:
    """Serialise every profile write across processes (see :mod:`leadflow.contacts.batch`)."""
    return advisory_lock(conn, PROFILE_LOCK, wait=wait)


def processor_lock(conn: Connection) -> bool:
    """The event processor's turn (never waited for: one processor at a time, the others go on to other
    work). Its holder then *waits* for the profile lock: short profile writes (a form post, an API
    upsert) take that lock many times a second, and a processor that only ever tried it would starve
    behind them while the events pile up."""
    return advisory_lock(conn, PROCESSOR_LOCK, wait=False)


def apply_batch(conn: Connection, ctx: AppContext, rows: Sequence[Any], *, secret: str) -> Applied:
    """Apply a batch of stored events to profiles; the caller holds the profile lock.

    ``secret`` is ``ctx.secret_key``, read by the caller *before* its transaction began (reading it
    may write the generated key, which on SQLite must not happen inside another write).
    """
    return apply_events(
        conn, ctx.clock, ctx.bus, rows, secret=secret, phone_region=ctx.settings.default_phone_region
    )


def publish_changes(conn: Connection, ctx: AppContext, result: FlushResult) -> None:
    """Hand a unit of work's profile changes to the qualifiers (in the same transaction)."""
    if result.changes:
        ctx.bus.publish(
            conn, ContactsTouched(result.changes, (), ctx.clock.now(), merged=tuple(result.merged))
        )


def changes_from(fields: ContactFields, phone_region: str | None) -> ProfileChanges:
    """Validate API/CSV input into a change set; an invalid value is a 422 naming the field."""
    given = fields.model_dump(include=fields.model_fields_set - {"user_id"})
    changes = ProfileChanges(traits=given.pop("traits", None) or {})
    if given.get("email") is not None:
        given["email"] = normalize.email(given["email"])
    if given.get("phone") is not None:
        given["phone"] = normalize.phone(given["phone"], phone_region)
    if given.get("timezone") is not None:
        given["timezone"] = normalize.timezone(given["timezone"])
    if "lifecycle_stage" in given:
        if given["lifecycle_stage"] is None:
            raise Invalid("lifecycle_stage cannot be cleared", code="invalid_stage")
        stages.validate(given["lifecycle_stage"])
    if "subscription_status" in given and given["subscription_status"] not in SUBSCRIPTION_STATUSES:
        raise Invalid("subscription_status is subscribed or unsubscribed", code="invalid_subscription_status")
    for name, value in given.items():
        setattr(changes, name, value)
    return changes


def _claim_user_id(batch: ProfileBatch, contact: ContactState, user_id: str) -> None:
    owner = batch.find("user", user_id)
    if owner is not None and owner.id != contact.id:
        raise Conflict(f"user id {user_id!r} belongs to contact {owner.id}", code="user_id_taken")
    batch.link(contact, "user", user_id, primary=True)


def _check_company(conn: Connection, changes: ProfileChanges) -> None:
    company_id = changes.set_fields().get("company_id")
    if company_id is not None and not queries.company_exists(conn, company_id):
        raise Invalid(f"no company {company_id}", code="company_not_found")


def upsert(ctx: AppContext, data: ContactUpsert, *, actor: str) -> tuple[Contact, bool]:
    """Create or update the contact with this user id, else this email. Returns (contact, created)."""
    with ctx.db.write() as conn:
        return upsert_in(conn, ctx, data, actor=actor)


def upsert_in(conn: Connection, ctx: AppContext, data: ContactUpsert, *, actor: str) -> tuple[Contact, bool]:
    """:func:`upsert` in the caller's write transaction: the input is checked first, then the profile
    lock is taken on ``conn`` and held until the caller commits, so a caller that writes more under
    that lock (a form post's submission, tags and events) costs one transaction and one lock wait.
    An error may leave partial writes on ``conn``: the caller lets it end the transaction (rollback)."""
    if not data.user_id and not data.email:
        raise Invalid("give user_id or email to create or update a contact", code="missing_identifier")
    changes = changes_from(data, ctx.settings.default_phone_region)
    email = changes.email if isinstance(changes.email, str) else None
    profile_lock(conn)
    _check_company(conn, changes)
    batch = ProfileBatch(conn, ctx.clock, ctx.bus)
    batch.preload(user_ids=[data.user_id] if data.user_id else [], emails=[email] if email else [])
    contact = batch.find("user", data.user_id) or batch.find_email(email)
    created = contact is None
    contact = contact or batch.create()
    if data.user_id and contact.user_id not in (None, data.user_id):
        raise Conflict(
            f"{email} belongs to contact {contact.id} with another user id", code="user_id_conflict"
        )
    if data.user_id:
        batch.link(contact, "user", data.user_id)
    batch.apply_changes(contact, changes, manual=True, strict=True)
    publish_changes(conn, ctx, batch.flush())
    audit.record(
        conn,
        ctx.clock,
        actor=actor,
        action="contact.created" if created else "contact.updated",
        entity_type="contact",
        entity_id=contact.id,
        data=data.model_dump(mode="json", exclude_unset=True),
    )
    return queries.get(conn, contact.id), created


def patch(ctx: AppContext, contact_id: str, data: ContactPatch, *, actor: str) -> Contact:
    """Change some fields; a manual lifecycle change may go backwards and is audited like any other."""
    changes = changes_from(data, ctx.settings.default_phone_region)
    if "user_id" in data.model_fields_set and not data.user_id:
        raise Invalid("a user id cannot be removed; alias or merge instead", code="invalid_user_id")
    with ctx.db.write() as conn:
        profile_lock(conn)
        _check_company(conn, changes)
        batch = ProfileBatch(conn, ctx.clock, ctx.bus)
        contact = batch.contact(queries.get(conn, contact_id).id)
        assert contact is not None
        before_stage = contact.lifecycle_stage
        if data.user_id:
            _claim_user_id(batch, contact, data.user_id)
        batch.apply_changes(contact, changes, manual=True, strict=True)
        publish_changes(conn, ctx, batch.flush())
        details = data.model_dump(mode="json", exclude_unset=True)
        if contact.lifecycle_stage != before_stage:
            details["lifecycle_stage_from"] = before_stage
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="contact.updated",
            entity_type="contact",
            entity_id=contact.id,
            data=details,
        )
        return queries.get(conn, contact.id)


def canonical_email(value: str) -> str:
    """The form an email address is matched in everywhere (``invalid_email`` when it is not one)."""
    return normalize.email(value)


def contact_id_for_email(conn: Connection, email: str) -> str | None:
    """The contact holding this (canonical) email address, if any."""
    return queries.id_for_email(conn, email)


def advance_stage(conn: Connection, ctx: AppContext, contact_ids: Sequence[str], stage: str) -> None:
    """Move these contacts forward to ``stage`` (an automatic change: a contact already past it stays
    where it is); in the caller's transaction, under the profile lock."""
    if not contact_ids:
        return
    profile_lock(conn)
    batch = ProfileBatch(conn, ctx.clock, ctx.bus)
    batch.preload(contact_ids=list(contact_ids))
    for contact_id in contact_ids:
        contact = batch.contact(contact_id)
        if contact is not None:
            batch.apply_changes(contact, ProfileChanges(lifecycle_stage=stage))
    batch.flush()
