"""What recipients' mail clients and mailbox providers tell us about sent messages: opens, clicks and
honeypot hits, bounces and complaints (the recipient's own choices, unsubscribing and preferences, are
in :mod:`.subscription`).

Each function is one write transaction and idempotent. Rules:

* **Machine hits are not engagement.** An open, click or honeypot hit that
  :func:`leadflow.messaging.feedback.bots.classify` calls machine-generated only increments
  ``messages.machine_hits``; its event carries ``machine_generated: true`` (one per message and status,
  keyed apart from the human one, so a scanner's early hit never hides the person's later one).
* A human hit counts (``opens``/``clicks``), stamps the first ``opened_at``/``clicked_at`` and emits
  ``leadflow.email_opened``/``_clicked`` with ``machine_generated: false`` the first time. A click implies
  an open: a person whose images were blocked still read the message.
* **Hard bounces and complaints outrank an unsubscribe** in the suppression list: they replace an
  ``unsubscribed`` entry, and re-subscribing never lifts them. A complaint also unsubscribes the contact,
  as :func:`.subscription.unsubscribe` does.
* Internal notices (``kind = internal``) are about a contact but went to someone else: feedback on them
  never changes that contact.
* An unknown message id (an erased contact, a deleted row) records nothing and raises nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts_service
from leadflow.contacts.service import ProfileBatch
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import bulk_update, chunk_size, chunked
from leadflow.kernel.facts import AddressesSuppressed
from leadflow.messaging.delivery import outbox
from leadflow.messaging.erased import ERASED, suppression_key, suppression_keys
from leadflow.messaging.feedback import bots, bounces, queries, recipient
from leadflow.messaging.models import messages
from leadflow.webhooks import service as webhooks

__all__ = ["apply_feedback", "record_click", "record_honeypot", "record_open"]

Hit = Literal["open", "click", "honeypot"]
STRONGER = ("hard_bounce", "complaint", "manual")  # suppression reasons an unsubscribe never replaces


# --- opens, clicks, honeypot ---------------------------------------------------------------------


def record_open(ctx: AppContext, message_id: str, *, user_agent: str | None, ip: str | None) -> None:
    _hit(ctx, message_id, "open", user_agent=user_agent, ip=ip)


def record_click(
    ctx: AppContext, message_id: str, url: str, *, user_agent: str | None, ip: str | None
) -> None:
    _hit(ctx, message_id, "click", user_agent=user_agent, ip=ip, url=url)


def record_honeypot(ctx: AppContext, message_id: str, *, user_agent: str | None, ip: str | None) -> None:
    """A hit on the hidden link: always machine-generated, recorded as a machine click."""
    _hit(ctx, message_id, "honeypot", user_agent=user_agent, ip=ip)


def _hit(
    ctx: AppContext,
    message_id: str,
    kind: Hit,
    *,
    user_agent: str | None,
    ip: str | None,
    url: str | None = None,
) -> None:
    now = ctx.clock.now()
    extra = {"url": url} if url is not None else {}
    with ctx.db.write() as conn:
        row = recipient.message(conn, message_id)
        if row is None:
            return
        record = {**row, "error": None}
        status = "opened" if kind == "open" else "clicked"
        reason = bots.classify(user_agent=user_agent, ip=ip, sent_at=row["sent_at"], at=now, kind=kind)
        if reason is not None:
            conn.execute(queries.machine_hit(message_id))
            _emit_machine(conn, ctx, record, status, now, machine_reason=reason, **extra)
            return
        if kind == "open":
            conn.execute(queries.opened(message_id, now))
        else:
            conn.execute(queries.clicked(message_id, now))
        if row["opened_at"] is None:
            outbox.emit(conn, ctx, [(record, "opened")], now, machine_generated=False)
        if kind == "click" and row["clicked_at"] is None:
            outbox.emit(conn, ctx, [(record, "clicked")], now, machine_generated=False, **extra)


def _emit_machine(
    conn: Connection, ctx: AppContext, row: dict[str, Any], status: str, at: datetime, **extra: Any
) -> None:
    """:func:`outbox.emit` under a key of its own (``email:<id>:<status>:machine``), so a scanner's hit
    never takes the place of the person's own event."""
    outbox.emit(conn, ctx, [(row, status)], at, key_suffix=":machine", machine_generated=True, **extra)


# --- bounces and complaints ----------------------------------------------------------------------


def apply_feedback(
    ctx: AppContext, items: Sequence[bounces.Feedback], *, seal: webhooks.Seal | None = None
) -> int:
    """Apply bounce and complaint reports; returns how many changed anything (a replay returns 0).

    Each is matched to our message by its ``Message-ID`` (``<row id@domain>``), else to the latest message
    sent to that address. A hard bounce marks the message ``bounced`` and suppresses the address
    (``hard_bounce``); a soft bounce or delay only notes the diagnostic on the message; a complaint stamps
    ``complained_at``, suppresses the address (``complaint``) and unsubscribes the contact.

    ``seal``: the signature token of a webhook whose signature does not cover its content (Mailgun),
    remembered in this transaction even when the webhook reports nothing we apply; seen before with the
    same content, nothing is applied; with other content, ``409 signature_replayed`` (see
    :mod:`leadflow.webhooks.replay`).
    """
    if not items and seal is None:
        return 0
    now, secret = ctx.clock.now(), ctx.secret_key  # the secret's first read writes: not inside
    with ctx.db.write() as conn:
        if seal is not None and not webhooks.remember(conn, seal, now):
            return 0
        if not items:
            return 0
        complaints = any(item.kind == "complaint" for item in items)
        if complaints:
            contacts_service.profile_lock(conn)
        plan = _Plan(conn, ctx, items, now, profiles=complaints, secret=secret)
        applied = sum(plan.apply(item, row) for item, row in zip(items, plan.match(items), strict=True))
        plan.write()
    return applied


class _Plan:
    """The changes a batch of reports makes: planned in memory (later reports see earlier ones), then
    written with a handful of set-based statements."""

    def __init__(
        self,
        conn: Connection,
        ctx: AppContext,
        items: Sequence[bounces.Feedback],
        now: datetime,
        *,
        profiles: bool,
        secret: str,
    ) -> None:
        self.conn, self.ctx, self.now, self.secret = conn, ctx, now, secret
        self.rows: dict[str, dict[str, Any]] = {}
        self.updated: set[str] = set()
        self.events: list[tuple[dict[str, Any], str]] = []
        self.suppressed: dict[str, str] = {}
        self.suppress: dict[str, dict[str, Any]] = {}
        self.batch = ProfileBatch(conn, ctx.clock, ctx.bus) if profiles else None
        self.erased: set[str] = set()  # addresses reported about messages whose person was erased
        self.keys = suppression_keys(secret, sorted({item.email for item in items}))
        for chunk in chunked(sorted(self.keys), chunk_size(conn)):
            for row in conn.execute(queries.suppressions_under(conn.dialect.name, chunk)):
                address = self.keys[row.email]  # listed as itself, or as its digest
                if self.suppressed.get(address) not in STRONGER:
                    self.suppressed[address] = row.reason

    def match(self, items: Sequence[bounces.Feedback]) -> list[dict[str, Any] | None]:
        """Our message for each report: by ``Message-ID`` (when it went to that address), else the latest
        message sent to the address."""
        wanted = sorted({row_id for item in items if (row_id := _row_id(item.message_id))})
        for chunk in chunked(wanted, chunk_size(self.conn)):
            for row in self.conn.execute(queries.messages_by_id(self.conn.dialect.name, chunk)):
                self.rows[row.id] = dict(row._mapping)
        found = [self._by_id(item) for item in items]
        latest = self._latest(
            sorted({item.email for item, row in zip(items, found, strict=True) if row is None})
        )
        found = [row or latest.get(item.email) for item, row in zip(items, found, strict=True)]
        if self.batch is not None:
            people = [row["contact_id"] for row in found if row is not None and recipient.personal(row)]
            self.batch.preload(contact_ids=people, emails=[item.email for item in items])
        return found

    def _by_id(self, item: bounces.Feedback) -> dict[str, Any] | None:
        row = self.rows.get(_row_id(item.message_id) or "")
        if row is not None and row["error"] == ERASED:
            self.erased.add(item.email)  # nothing of the person is written back, see _suppress
            return None
        return row if row is not None and recipient.address(row) in (None, item.email) else None

    def _latest(self, emails: list[str]) -> dict[str, dict[str, Any]]:
        """The last message sent to each address, found through the contact holding it (the messages
        index is by contact)."""
        found: dict[str, dict[str, Any]] = {}
        for chunk in chunked(emails, chunk_size(self.conn)):
            for row in self.conn.execute(queries.latest_sent(chunk)):
                record = self.rows.setdefault(row.id, dict(row._mapping))
                found[(record["recipient"] or "").lower()] = record
        return found

    def apply(self, item: bounces.Feedback, row: dict[str, Any] | None) -> bool:
        if item.kind == "complaint":
            return self._complaint(item, row)
        if item.kind == "bounce" and item.hard:
            return self._hard_bounce(item, row)
        return self._note(item, row)

    def _hard_bounce(self, item: bounces.Feedback, row: dict[str, Any] | None) -> bool:
        changed = self._suppress(item, row, "hard_bounce")
        if row is not None and row["bounced_at"] is None:
            row.update(status="bounced", bounced_at=self.now, error=item.detail[:1000] or "hard bounce")
            self._changed(row, "bounced", item.detail)
            changed = True
        return changed

    def _complaint(self, item: bounces.Feedback, row: dict[str, Any] | None) -> bool:
        changed = self._suppress(item, row, "complaint")
        if row is not None and row["complained_at"] is None:
            row["complained_at"] = self.now
            self._changed(row, "complained", item.detail)
            changed = True
        assert self.batch is not None
        if row is not None and recipient.personal(row):
            contact = self.batch.contact(row["contact_id"])
        else:
            contact = self.batch.find_email(item.email) if row is None else None
        return recipient.set_subscription(self.batch, contact, "unsubscribed") or changed

    def _note(self, item: bounces.Feedback, row: dict[str, Any] | None) -> bool:
        """A soft bounce or a delay: the diagnostic goes on the message (unless it bounced for good)."""
        detail = item.detail[:1000]
        if row is None or not detail or row["bounced_at"] is not None or row["status"] == "bounced":
            return False
        if row["error"] == detail:
            return False
        row["error"] = detail
        self.updated.add(row["id"])
        return True

    def _suppress(self, item: bounces.Feedback, row: dict[str, Any] | None, reason: str) -> bool:
        """Plan a suppression; an existing one stays unless it is only an unsubscribe."""
        current = self.suppressed.get(item.email)
        if current is not None and current in STRONGER:
            return False
        self.suppressed[item.email] = reason
        erased = row is None and item.email in self.erased  # kept as a digest, like the erasure keeps it
        self.suppress[item.email] = {
            "email": suppression_key(self.secret, item.email) if erased else item.email,
            "reason": reason,
            "detail": None if erased else f"{item.provider}: {item.detail}"[:1000],
            "message_id": row["id"] if row is not None else None,
            "created_at": self.now,
        }
        return True

    def _changed(self, row: dict[str, Any], status: str, detail: str) -> None:
        self.updated.add(row["id"])
        self.events.append(({**row, "error": detail or None}, status))

    def write(self) -> None:
        conn = self.conn
        names = ("id", "status", "error", "bounced_at", "complained_at")
        bulk_update(conn, messages, "id", [{n: self.rows[i][n] for n in names} for i in sorted(self.updated)])
        if self.suppress:
            conn.execute(queries.upgrade_suppressions(conn.dialect.name), list(self.suppress.values()))
            plain = tuple(sorted(a for a, e in self.suppress.items() if e["email"] == a))  # no digests
            self.ctx.bus.publish(conn, AddressesSuppressed(plain, self.now))
        outbox.emit(conn, self.ctx, self.events, self.now)
        if self.batch is not None:
            recipient.flush_subscriptions(conn, self.ctx, self.batch, "unsubscribed", "complaint", None)


def _row_id(message_id: str | None) -> str | None:
    """Our row id from a ``Message-ID`` (``<row id>@<domain>``, brackets already stripped)."""
    if not message_id:
        return None
    return message_id.strip().strip("<>").partition("@")[0] or None
