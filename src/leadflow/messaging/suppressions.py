"""The suppression list as staff manage it: list, add by hand, remove.

Rules:

* **Reasons an operator may give**: ``manual`` (the default: never mail this address again), and
  ``hard_bounce`` / ``complaint`` for lists carried over from a previous provider. All three block every
  kind of email, transactional too. ``unsubscribed`` is not given by hand: an unsubscribe belongs to the
  person, through the preference centre or the contact's ``subscription_status``; ``unconfirmed``
  (a double opt-in waiting, :mod:`.confirmation`) is not given by hand either.
* **Adding is idempotent**, as at Postmark, SendGrid or Customer.io: an address already suppressed
  answers its existing entry (``200``) instead of a conflict, so a sync job can re-send its whole list.
  A stronger reason replaces an ``unsubscribed`` entry (as a complaint does in :mod:`.feedback.tracking`); any
  other existing entry is kept as it is, with its original reason and date.
* **Removing** deletes the entry whatever its reason (a hard bounce fixed by the recipient's IT, a
  mistaken manual entry). It does not resubscribe a contact whose ``subscription_status`` says
  ``unsubscribed``: marketing still does not go to them.
* An erased person's address is kept only as a keyed digest (:mod:`.erasure`): looking up, adding or
  removing that address finds the digest too, and the listing shows the digest, never the address.
* Every change is audited. The entry names the contact the address belongs to (``entity_type
  contact``), so a GDPR erasure redacts it; an address of no contact is audited as ``suppression``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import service as contacts
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import NotFound
from leadflow.kernel.facts import AddressesSuppressed
from leadflow.messaging import queries
from leadflow.messaging.erased import suppression_keys

REASONS = ("unsubscribed", "hard_bounce", "complaint", "manual", "unconfirmed")
# Entries that block marketing only: a manual, bounce or complaint entry replaces them.
WEAK = ("unsubscribed", "unconfirmed")
ManualReason = Literal["manual", "hard_bounce", "complaint"]


class Suppression(BaseModel):
    email: str = Field(description="the address, or hmac:<digest> once its person was erased")
    reason: str = Field(description="unsubscribed, hard_bounce, complaint or manual")
    detail: str | None
    message_id: str | None = Field(description="the message whose bounce or unsubscribe caused it")
    created_at: datetime


class SuppressionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    reason: ManualReason = "manual"
    detail: str | None = Field(default=None, max_length=1000)


def _view(row: sa.Row[tuple[object, ...]]) -> Suppression:
    return Suppression.model_validate(dict(row._mapping))


def _find(conn: Connection, secret: str, address: str) -> list[Suppression]:
    keys = sorted(suppression_keys(secret, [address]))
    rows = conn.execute(queries.suppressions_under(keys))
    return [_view(row) for row in rows]


def listing(
    ctx: AppContext, *, reason: str | None, email: str | None, after: str | None, limit: int
) -> list[Suppression]:
    """Entries in address order, ``limit`` of them after ``after``; ``email`` finds one address (also
    in its digest form)."""
    keys = sorted(suppression_keys(ctx.secret_key, [email])) if email is not None else None
    query = queries.suppressions_page(keys, reason, after, limit)
    with ctx.db.read() as conn:
        return [_view(row) for row in conn.execute(query)]


def add(ctx: AppContext, data: SuppressionCreate, *, actor: str) -> tuple[Suppression, bool]:
    """Suppress an address; returns (entry, changed). See the module's rules."""
    address = contacts.canonical_email(data.email)
    secret = ctx.secret_key
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        existing = _find(conn, secret, address)
        if any(entry.reason not in WEAK for entry in existing):
            return next(e for e in existing if e.reason not in WEAK), False
        entry = {"reason": data.reason, "detail": data.detail, "message_id": None, "created_at": now}
        if existing:
            conn.execute(queries.update_suppression(existing[0].email, entry))
            email = existing[0].email
        else:
            conn.execute(queries.SUPPRESSION_INSERT, {"email": address, **entry})
            email = address
        _audit(conn, ctx, address, actor, "suppression.added", {"reason": data.reason, "detail": data.detail})
        ctx.bus.publish(conn, AddressesSuppressed((address,), now))
        return Suppression(email=email, **entry), True


def remove(ctx: AppContext, email: str, *, actor: str) -> None:
    """Remove an address from the list (also its digest form); ``suppression_not_found`` when absent."""
    address = email.strip().lower()
    secret = ctx.secret_key
    with ctx.db.write() as conn:
        existing = _find(conn, secret, address)
        if not existing:
            raise NotFound(f"{address[:80]} is not suppressed", code="suppression_not_found")
        conn.execute(queries.delete_suppressions([e.email for e in existing]))
        _audit(conn, ctx, address, actor, "suppression.removed", {"reasons": [e.reason for e in existing]})


def _audit(
    conn: Connection, ctx: AppContext, address: str, actor: str, action: str, data: dict[str, object]
) -> None:
    contact_id = contacts.contact_id_for_email(conn, address)
    audit.record(
        conn,
        ctx.clock,
        actor=actor,
        action=action,
        entity_type="contact" if contact_id else "suppression",
        entity_id=contact_id,
        data={"email": address, **data},
    )
