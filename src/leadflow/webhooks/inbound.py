"""Incoming webhooks at ``/hooks/{source}``: verify, store, and turn into events — in one transaction.

For each delivery to a configured, active source:

1. the signature is checked by the source's scheme (:mod:`leadflow.webhooks.sources`); a missing or
   wrong one, or a stale timestamp, is ``400`` (``invalid_signature``, ``stale_webhook``) and nothing
   is stored or changed;
2. the body must be JSON that leadflow accepts (:func:`leadflow.kernel.inputs.loads`: no NUL, no lone
   surrogate, bounded nesting and numbers), else ``400``;
3. the delivery is stored in ``inbound_webhooks`` under the sender's event id, unique per source: the
   same event again (a retry, a replay within the window) is ``200 {"duplicate": true}`` and changes
   nothing;
4. in the same transaction its events are written through the tracking API's write path
   (:func:`leadflow.events.service.to_row`, :func:`~leadflow.events.service.insert_tracked`): an
   ``identify`` carrying the person's email and traits, then the ``track`` events, under ``messageId``\\ s
   derived from the source and the sender's id, so they are stored once however often they are
   written. The events carry an anonymous id of their own (``hook:<delivery id>``): the processor
   attaches them to the contact holding the email, or creates it; a later delivery about the same
   person carries another id, so erasing the person does not block their future deliveries.

A payload that verifies but cannot become events (no email, an unknown shape) is stored ``failed``
with its error and still answered ``200``: the sender's retries would carry the very same payload and
fail the same way, for days (Stripe retries for three), and a non-2xx answer makes some senders
disable the subscription (Calendly on ``410``; Stripe after days of failures). Nothing is lost: the
delivery is listed (``GET /api/v1/webhooks/inbound?status=failed``) and replayed once the cause is
fixed (:func:`replay`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts
from leadflow.events import service as events
from leadflow.kernel import inputs
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import BadRequest, Conflict, Invalid, LeadflowError, NotFound
from leadflow.kernel.facts import ContactsErased
from leadflow.kernel.ids import new_id
from leadflow.webhooks import queries
from leadflow.webhooks.inbound_sources import load_active
from leadflow.webhooks.sources import KINDS
from leadflow.webhooks.sources.common import Translation, Unprocessable

PROCESSED, FAILED = queries.PROCESSED, queries.FAILED
STATUSES = (PROCESSED, FAILED)
EVENT_SOURCE = "webhook"  # the ``source`` of the events a delivery becomes
MAX_ERROR = 2000


@dataclass(frozen=True)
class Received:
    """The answer to a sender: the stored delivery (``id``, ``status``) or ``duplicate``."""

    id: str
    status: str | None
    duplicate: bool
    error: str | None = None


def _message_id(source: str, sender_id: str, part: int) -> str:
    digest = hashlib.sha256(f"{source}\x1f{sender_id}".encode()).hexdigest()[:40]
    return f"hook:{digest}:{part}"


def _rows(row: Mapping[str, Any], translation: Translation, now: datetime) -> list[dict[str, Any]]:
    """The events of a translated delivery, validated as the tracking API validates messages."""
    base = {
        "anonymousId": f"hook:{row['id']}",
        "timestamp": (translation.occurred_at or now).isoformat(),
        "context": {"webhook": {"source": row["source"], "kind": row["kind"], "id": row["sender_id"]}},
    }
    messages: list[dict[str, Any]] = [
        {**base, "type": "identify", "traits": {**translation.traits, "email": translation.email}}
    ]
    for name, properties in translation.events:
        clean = {"email": translation.email} | {k: v for k, v in properties.items() if v is not None}
        messages.append({**base, "type": "track", "event": name, "properties": clean})
    rows = []
    for part, message in enumerate(messages):
        message["messageId"] = _message_id(row["source"], row["sender_id"], part)
        try:
            event_row = events.to_row(message, kind=None, received_at=now)
        except LeadflowError as exc:
            raise Unprocessable(f"event {part}: {exc.message}") from None
        rows.append({**event_row, "source": EVENT_SOURCE})
    return rows


def _email(conn: Connection, row: Mapping[str, Any], translation: Translation) -> str:
    """The delivery's person: its own email (in the canonical form contacts are matched by), else the
    one an earlier delivery gave for its subject."""
    if translation.email is not None:
        try:
            return contacts.canonical_email(translation.email)
        except Invalid as exc:
            raise Unprocessable(exc.message) from None
    if translation.subject is None:
        raise Unprocessable("the payload names no email address to attach its events to")
    known = conn.execute(queries.email_of_subject(row["source"], translation.subject)).scalar()
    if known is None:
        raise Unprocessable(
            f"the payload names no email, and no processed delivery gave one for {translation.subject!r} "
            "yet: replay it once one has"
        )
    return str(known)


def _process(conn: Connection, row: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Turn the delivery into events in the caller's transaction; the row's outcome columns."""
    try:
        translation = KINDS[row["kind"]].translate(row["body"])
        email = _email(conn, row, translation)
        rows = _rows(row, replace(translation, email=email), now)
    except Unprocessable as exc:
        return {"status": FAILED, "error": str(exc)[:MAX_ERROR], "processed_at": None}
    events.insert_tracked(conn, rows)
    subject = translation.subject[:255] if translation.subject else None
    outcome = {"status": PROCESSED, "error": None, "processed_at": now, "email": email}
    return outcome | {"anonymous_id": rows[0]["anonymous_id"], "subject": subject}


def parse(body: bytes) -> Any:
    try:
        return inputs.loads(body)
    except inputs.InputError as exc:
        raise BadRequest(exc.message, code=exc.code) from None


def receive(ctx: AppContext, source_name: str, body: bytes, headers: Mapping[str, str]) -> Received:
    """Verify, store and process one delivery (see the module's docstring)."""
    now = ctx.clock.now()
    source = load_active(ctx, source_name)
    kind = KINDS[source.kind]
    kind.verify(body, headers, source.secret, source.tolerance, now)
    payload = parse(body)
    if not isinstance(payload, dict):
        raise BadRequest("a webhook body is a JSON object", code="invalid_payload")
    sender_id = kind.sender_id(payload, headers, body)
    if not sender_id:
        raise BadRequest("the delivery carries no event id", code="invalid_payload")
    row: dict[str, Any] = {
        "id": new_id(),
        "source": source.name,
        "kind": source.kind,
        "sender_id": sender_id,
        "type": (kind.event_type(payload, headers) or "")[:255] or None,
        "received_at": now,
        "body": payload,
    }
    with ctx.db.write() as conn:
        # The unique (source, sender id) decides first: a concurrent copy waits for this one's commit,
        # then finds the id taken and changes nothing.
        pending = {**row, "status": FAILED, "error": "being processed"}
        if conn.execute(queries.record_inbound(conn.dialect.name, pending)).scalar() is None:
            existing = conn.execute(queries.inbound_of_sender(source.name, sender_id)).scalar_one()
            return Received(id=existing, status=None, duplicate=True)
        outcome = _process(conn, row, now)
        conn.execute(queries.settle_inbound(row["id"], outcome))
    _announce(ctx, outcome)
    return Received(id=row["id"], status=outcome["status"], duplicate=False, error=outcome["error"])


def _announce(ctx: AppContext, outcome: Mapping[str, Any]) -> None:
    if outcome["status"] == PROCESSED:
        ctx.signals.announce(events.CHANNEL)


def replay(ctx: AppContext, inbound_id: str) -> dict[str, Any]:
    """Process a ``failed`` delivery again from its stored body (after the cause was fixed); ``409
    not_failed`` for one already processed. Its events get the same ``messageId``\\ s as a first try
    would have: they are stored once."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        found = conn.execute(queries.inbound_one(inbound_id, lock=True)).first()
        if found is None:
            raise NotFound(f"no incoming webhook {inbound_id!r}", code="inbound_not_found")
        row = dict(found._mapping)
        if row["status"] != FAILED:
            raise Conflict(f"incoming webhook {inbound_id!r} is already {row['status']}", code="not_failed")
        outcome = _process(conn, row, now)
        conn.execute(queries.settle_inbound(inbound_id, outcome))
    _announce(ctx, outcome)
    return {**row, **outcome}


def get(ctx: AppContext, inbound_id: str) -> dict[str, Any]:
    with ctx.db.read() as conn:
        found = conn.execute(queries.inbound_one(inbound_id)).first()
    if found is None:
        raise NotFound(f"no incoming webhook {inbound_id!r}", code="inbound_not_found")
    return dict(found._mapping)


def listing(
    ctx: AppContext, *, source: str | None, status: str | None, before: str | None, limit: int
) -> list[dict[str, Any]]:
    """Deliveries newest first; ``limit + 1`` rows tell the caller whether a next page exists."""
    with ctx.db.read() as conn:
        rows = conn.execute(queries.inbound_page(source, status, before, limit)).all()
    return [dict(row._mapping) for row in rows]


def export_inbound(
    conn: Connection, emails: Sequence[str], anonymous_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """GDPR export: the incoming webhooks about the person, with their bodies as received."""
    wanted = [email.strip().lower() for email in emails]
    if not wanted and not anonymous_ids:
        return []
    return [dict(row._mapping) for row in conn.execute(queries.inbound_about(wanted, list(anonymous_ids)))]


def on_inbound_contacts_erased(conn: Connection, message: ContactsErased) -> None:
    """Erasure: deliveries about the person (by address, by the anonymous id their events carried, or
    failed ones whose body mentions the address) lose body, address and error; their sender id stays,
    so a late copy is still a duplicate."""
    emails = [email.strip().lower() for email in message.emails]
    if emails or message.anonymous_ids:
        conn.execute(queries.redact_inbound(emails, list(message.anonymous_ids)))
