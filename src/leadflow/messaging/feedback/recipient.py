"""The message a recipient's link or a provider's report points at, the contact it went to, and the
audited change of that contact's ``subscription_status`` (shared by :mod:`.preferences` and
:mod:`.tracking`).

* Internal notices (``kind = internal``) are about a contact but went to someone else: nothing here
  treats their contact as the recipient.
* A message whose person was erased is gone for these purposes: their links no longer work.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import service as contacts_service
from leadflow.contacts.service import ProfileBatch, ProfileChanges
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import NotFound
from leadflow.messaging import erased
from leadflow.messaging.delivery import outbox
from leadflow.messaging.feedback import queries

__all__ = [
    "address",
    "change_subscriptions",
    "contact_email",
    "flush_subscriptions",
    "message",
    "person",
    "personal",
    "required",
    "set_subscription",
]


def message(conn: Connection, message_id: str) -> dict[str, Any] | None:
    """The message, or None when it is gone or its person was erased (their links no longer work)."""
    row = conn.execute(queries.message(message_id)).first()
    return dict(row._mapping) if row is not None and row.error != erased.ERASED else None


def required(conn: Connection, message_id: str) -> dict[str, Any]:
    """:func:`message`, or :class:`NotFound` (``invalid_link``) when it is gone."""
    row = message(conn, message_id)
    if row is None:
        raise NotFound("this link is no longer valid", code="invalid_link")
    return row


def personal(row: Mapping[str, Any]) -> bool:
    """Whether the message went to its contact (internal notices go to someone else about them)."""
    return bool(row["contact_id"]) and row["kind"] in outbox.PERSONAL


def address(row: Mapping[str, Any]) -> str | None:
    """The address the message went to, lower-cased."""
    found = row["recipient"] or row["to_address"]
    return found.strip().lower() if found else None


def person(conn: Connection, row: Mapping[str, Any]) -> str | None:
    """The contact a message went to, as it lives now (after merges); None for internal notices."""
    return contacts_service.live_id(conn, row["contact_id"]) if personal(row) else None


def contact_email(conn: Connection, contact_id: str) -> str | None:
    return contacts_service.email_of(conn, contact_id)


def change_subscriptions(
    conn: Connection, ctx: AppContext, contact_ids: Iterable[str], status: str, source: str, message_id: str
) -> bool:
    """Set contacts' ``subscription_status`` through a profile unit of work (the caller holds the profile
    lock); audited. Returns whether any contact changed."""
    batch = ProfileBatch(conn, ctx.clock, ctx.bus)
    wanted = sorted(set(contact_ids))
    batch.preload(contact_ids=wanted)
    for contact_id in wanted:
        set_subscription(batch, batch.contact(contact_id), status)
    return flush_subscriptions(conn, ctx, batch, status, source, message_id)


def set_subscription(batch: ProfileBatch, contact: Any, status: str) -> bool:
    """Plan the contact's new ``subscription_status`` in ``batch``; whether it differs from the stored."""
    if contact is None or contact.subscription_status == status:
        return False
    batch.apply_changes(contact, ProfileChanges(subscription_status=status), manual=True)
    return True


def flush_subscriptions(
    conn: Connection, ctx: AppContext, batch: ProfileBatch, status: str, source: str, message_id: str | None
) -> bool:
    """Write ``batch``, publish its changes to the pipeline and audit each contact whose status changed
    (actor ``email:<source>``); whether any did."""
    result = batch.flush()
    contacts_service.publish_changes(conn, ctx, result)
    data = {"subscription_status": status, "source": source, "message_id": message_id}
    changed = sorted(cid for cid, fields in result.changes.items() if "subscription_status" in fields)
    audit.record_many(
        conn,
        ctx.clock,
        actor=f"email:{source}",
        action="contact.updated",
        entity_type="contact",
        items=[(cid, data) for cid in changed],
    )
    return bool(changed)
