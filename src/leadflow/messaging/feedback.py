"""What recipients and mailbox providers tell us about sent messages: opens, clicks, unsubscribes,
preference changes, bounces and complaints.

Each function is one write transaction and idempotent. Rules:

* **Machine hits are not engagement.** An open, click or honeypot hit that
  :func:`leadflow.messaging.machine.classify` calls machine-generated only increments
  ``messages.machine_hits``; its event carries ``machine_generated: true`` (one per message and status,
  keyed apart from the human one, so a scanner's early hit never hides the person's later one).
* A human hit counts (``opens``/``clicks``), stamps the first ``opened_at``/``clicked_at`` and emits
  ``leadflow.email_opened``/``_clicked`` with ``machine_generated: false`` the first time. A click implies
  an open: a person whose images were blocked still read the message.
* **Unsubscribing** (one-click, the confirmation page, the preference centre, a complaint) suppresses the
  address the message went to (reason ``unsubscribed``: marketing only) and sets the contact's
  ``subscription_status`` through the contacts domain, so the change flows through the pipeline
  (segments, scoring) like any other profile change. Hard bounces and complaints outrank an unsubscribe
  in the suppression list; re-subscribing removes only an ``unsubscribed`` suppression.
* Internal notices (``kind = internal``) are about a contact but went to someone else: feedback on them
  never changes that contact.
* An unknown message id (an erased contact, a deleted row) records nothing and raises nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import queries
from leadflow.contacts import service as contacts_service
from leadflow.contacts.batch import ProfileBatch
from leadflow.contacts.changes import ProfileChanges
from leadflow.contacts.models import contacts
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import bulk_update, chunk_size, chunked, dialect_insert, where_in
from leadflow.kernel.errors import NotFound
from leadflow.messaging import bounces, erasure, machine, outbox
from leadflow.messaging.models import email_preferences, email_topics, messages, suppressions
from leadflow.webhooks import replay

__all__ = [
    "PreferenceView",
    "TopicChoice",
    "apply_feedback",
    "mask",
    "preferences",
    "record_click",
    "record_honeypot",
    "record_open",
    "resubscribe",
    "set_preferences",
    "unsubscribe",
]

Hit = Literal["open", "click", "honeypot"]
STRONGER = ("hard_bounce", "complaint", "manual")  # suppression reasons an unsubscribe never replaces


class TopicChoice(BaseModel):
    key: str
    name: str
    description: str | None
    subscribed: bool


class PreferenceView(BaseModel):
    """What the preference centre shows: the address (masked), each topic, and marketing as a whole;
    ``topic``: the key of the message's own topic, if it has one."""

    email: str | None
    topics: list[TopicChoice]
    all_marketing: bool
    topic: str | None = None

    @property
    def unsubscribed(self) -> bool:
        """Whether this message's kind of email no longer reaches them: all marketing, or its topic."""
        return not self.all_marketing or any(t.key == self.topic and not t.subscribed for t in self.topics)


def mask(email: str | None) -> str | None:
    """``ann@example.com`` -> ``a***@example.com``: enough to recognise, not enough to harvest."""
    if not email or "@" not in email:
        return None
    local, _, domain = email.rpartition("@")
    return f"{local[:1]}***@{domain}"


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
        row = _message(conn, message_id)
        if row is None:
            return
        record = {**row, "error": None}
        status = "opened" if kind == "open" else "clicked"
        reason = machine.classify(user_agent=user_agent, ip=ip, sent_at=row["sent_at"], at=now, kind=kind)
        if reason is not None:
            _update(conn, message_id, machine_hits=messages.c.machine_hits + 1)
            _emit_machine(conn, ctx, record, status, now, machine_reason=reason, **extra)
            return
        opened = sa.func.coalesce(messages.c.opened_at, now)
        if kind == "open":
            _update(conn, message_id, opens=messages.c.opens + 1, opened_at=opened)
        else:
            clicked = sa.func.coalesce(messages.c.clicked_at, now)
            _update(conn, message_id, clicks=messages.c.clicks + 1, clicked_at=clicked, opened_at=opened)
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


# --- unsubscribe and the preference centre -----------------------------------------------------------


def unsubscribe(ctx: AppContext, message_id: str, *, source: str) -> None:
    """Marketing unsubscribe for the message's recipient (``source``: how they asked, e.g. ``one_click``).

    Suppresses the address, unsubscribes the contact, stamps ``unsubscribed_at`` and emits
    ``leadflow.email_unsubscribed``, each only if not done already: asking twice changes nothing."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        contacts_service.profile_lock(conn)
        row = _message(conn, message_id)
        if row is not None:
            _unsubscribe(conn, ctx, row, source, now)


def preferences(ctx: AppContext, message_id: str) -> PreferenceView:
    """The preference centre for the recipient of a message; :class:`NotFound` if it is gone."""
    secret = ctx.secret_key
    with ctx.db.read() as conn:
        return _view(conn, _required(conn, message_id), secret)


def resubscribe(ctx: AppContext, message_id: str, *, source: str) -> PreferenceView:
    """Take an unsubscribe back (the unsubscribe page, visited again, offers it): marketing as a whole and
    the message's topic are on again, and an ``unsubscribed`` suppression is lifted (never a hard bounce
    or complaint). Recorded as unsubscribing is: the contact's change is audited (actor
    ``email:<source>``) and goes through the pipeline, and ``leadflow.email_resubscribed`` is emitted
    when anything was off. Asking twice changes nothing."""
    now, secret = ctx.clock.now(), ctx.secret_key  # the secret's first read writes: not inside
    with ctx.db.write() as conn:
        contacts_service.profile_lock(conn)
        row = _required(conn, message_id)
        was_off = _view(conn, row, secret).unsubscribed
        person = _person(conn, row)
        if person is not None and row["topic"]:
            _save_topics(conn, person, {row["topic"]: True}, now)
        _resubscribe(conn, ctx, row, person, source)
        if was_off:
            changed = [({**row, "error": None}, "resubscribed")]
            outbox.emit(conn, ctx, changed, now, key_suffix=_cycle(now), source=source)
        return _view(conn, row, secret)


def set_preferences(
    ctx: AppContext, message_id: str, topics: Mapping[str, bool], all_marketing: bool
) -> PreferenceView:
    """Save topic choices (unknown topic keys are ignored) and marketing as a whole: ``False`` is a full
    unsubscribe; ``True`` re-subscribes the contact and lifts an ``unsubscribed`` suppression (never a
    hard bounce or complaint)."""
    now, secret = ctx.clock.now(), ctx.secret_key  # the secret's first read writes: not inside
    with ctx.db.write() as conn:
        contacts_service.profile_lock(conn)
        row = _required(conn, message_id)
        person = _person(conn, row)
        if person is not None:
            _save_topics(conn, person, topics, now)
        if all_marketing:
            _resubscribe(conn, ctx, row, person)
        else:
            _unsubscribe(conn, ctx, row, "preferences", now)
        return _view(conn, row, secret)


def _unsubscribe(conn: Connection, ctx: AppContext, row: dict[str, Any], source: str, now: datetime) -> None:
    changed = False
    address = _address(row)
    if address:
        entry = {"email": address, "reason": "unsubscribed", "detail": source, "message_id": row["id"]}
        statement = dialect_insert(conn, suppressions).on_conflict_do_nothing(index_elements=["email"])
        changed = bool(
            conn.execute(statement.returning(suppressions.c.email), {**entry, "created_at": now}).all()
        )
    if _personal(row):
        changed |= _subscription(conn, ctx, [row["contact_id"]], "unsubscribed", source, row["id"])
    stamped = conn.execute(
        messages.update()
        .where(messages.c.id == row["id"], messages.c.unsubscribed_at.is_(None))
        .values(unsubscribed_at=now)
    )
    if changed or stamped.rowcount:
        again = "" if stamped.rowcount else _cycle(now)  # this message unsubscribed them before
        outbox.emit(
            conn, ctx, [({**row, "error": None}, "unsubscribed")], now, key_suffix=again, source=source
        )


def _cycle(now: datetime) -> str:
    """Keeps apart the events of each unsubscribe → resubscribe → unsubscribe cycle through one message
    (its status events are otherwise stored once per message and status)."""
    return now.strftime(":%Y%m%dT%H%M%S.%f")


def _resubscribe(
    conn: Connection, ctx: AppContext, row: dict[str, Any], person: str | None, source: str = "preferences"
) -> None:
    addresses = {_address(row)}
    if person is not None:
        _subscription(conn, ctx, [person], "subscribed", source, row["id"])
        addresses.add(_contact_email(conn, person))
    wanted = sorted(erasure.suppression_keys(ctx.secret_key, [a for a in addresses if a]))
    if wanted:  # the addresses, and their digests (an unsubscribe kept from an erased person)
        conn.execute(
            suppressions.delete().where(
                suppressions.c.email.in_(wanted), suppressions.c.reason == "unsubscribed"
            )
        )


def _subscription(
    conn: Connection, ctx: AppContext, contact_ids: Iterable[str], status: str, source: str, message_id: str
) -> bool:
    """Set contacts' ``subscription_status`` through a profile unit of work (the caller holds the profile
    lock); audited. Returns whether any contact changed."""
    batch = ProfileBatch(conn, ctx.clock, ctx.bus)
    wanted = sorted(set(contact_ids))
    batch.preload(contact_ids=wanted)
    for contact_id in wanted:
        _set_status(batch, batch.contact(contact_id), status)
    return _flush(conn, ctx, batch, status, source, message_id)


def _set_status(batch: ProfileBatch, contact: Any, status: str) -> bool:
    if contact is None or contact.subscription_status == status:
        return False
    batch.apply_changes(contact, ProfileChanges(subscription_status=status), manual=True)
    return True


def _flush(
    conn: Connection, ctx: AppContext, batch: ProfileBatch, status: str, source: str, message_id: str | None
) -> bool:
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


def _save_topics(conn: Connection, contact_id: str, topics: Mapping[str, bool], now: datetime) -> None:
    """Pin each choice that differs from what is stored (a topic never chosen is stored on first save)."""
    known = set(conn.execute(sa.select(email_topics.c.key)).scalars())
    stored = dict(
        conn.execute(
            sa.select(email_preferences.c.topic, email_preferences.c.subscribed).where(
                email_preferences.c.contact_id == contact_id
            )
        ).all()
    )
    rows = [
        {"contact_id": contact_id, "topic": key, "subscribed": bool(value), "updated_at": now}
        for key, value in sorted(topics.items())
        if key in known and stored.get(key) != bool(value)
    ]
    if rows:
        statement = dialect_insert(conn, email_preferences)
        conn.execute(
            statement.on_conflict_do_update(
                index_elements=["contact_id", "topic"],
                set_={
                    "subscribed": statement.excluded.subscribed,
                    "updated_at": statement.excluded.updated_at,
                },
            ),
            rows,
        )


def _view(conn: Connection, row: dict[str, Any], secret: str) -> PreferenceView:
    person = _person(conn, row)
    contact = conn.execute(sa.select(contacts).where(contacts.c.id == person)).first() if person else None
    address = _address(row) or (contact.email if contact is not None else None)
    keys = sorted(erasure.suppression_keys(secret, [address])) if address else []  # or as its digest
    query = sa.select(suppressions.c.reason).where(suppressions.c.email.in_(keys))
    unsubscribed = "unsubscribed" in set(conn.execute(query).scalars())
    subscribed = (contact is None or contact.subscription_status == "subscribed") and not unsubscribed
    chosen: dict[str, bool] = {}
    if person is not None:
        query = sa.select(email_preferences.c.topic, email_preferences.c.subscribed)
        chosen = dict(conn.execute(query.where(email_preferences.c.contact_id == person)).all())
    topics = (
        [
            TopicChoice(
                key=t.key,
                name=t.name,
                description=t.description,
                subscribed=chosen.get(t.key, t.default_subscribed),
            )
            for t in conn.execute(sa.select(email_topics).order_by(email_topics.c.name, email_topics.c.key))
        ]
        if person is not None
        else []
    )
    return PreferenceView(email=mask(address), topics=topics, all_marketing=subscribed, topic=row["topic"])


# --- bounces and complaints ----------------------------------------------------------------------


def apply_feedback(
    ctx: AppContext, items: Sequence[bounces.Feedback], *, seal: replay.Seal | None = None
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
        if seal is not None and not replay.remember(conn, seal, now):
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
        self.keys = erasure.suppression_keys(secret, sorted({item.email for item in items}))
        query = sa.select(suppressions.c.email, suppressions.c.reason)
        for chunk in chunked(sorted(self.keys), chunk_size(conn)):
            for row in conn.execute(where_in(conn, query, suppressions.c.email, chunk)):
                address = self.keys[row.email]  # listed as itself, or as its digest
                if self.suppressed.get(address) not in STRONGER:
                    self.suppressed[address] = row.reason

    def match(self, items: Sequence[bounces.Feedback]) -> list[dict[str, Any] | None]:
        """Our message for each report: by ``Message-ID`` (when it went to that address), else the latest
        message sent to the address."""
        wanted = sorted({row_id for item in items if (row_id := _row_id(item.message_id))})
        for chunk in chunked(wanted, chunk_size(self.conn)):
            for row in self.conn.execute(where_in(self.conn, sa.select(messages), messages.c.id, chunk)):
                self.rows[row.id] = dict(row._mapping)
        found = [self._by_id(item) for item in items]
        latest = self._latest(
            sorted({item.email for item, row in zip(items, found, strict=True) if row is None})
        )
        found = [row or latest.get(item.email) for item, row in zip(items, found, strict=True)]
        if self.batch is not None:
            people = [row["contact_id"] for row in found if row is not None and _personal(row)]
            self.batch.preload(contact_ids=people, emails=[item.email for item in items])
        return found

    def _by_id(self, item: bounces.Feedback) -> dict[str, Any] | None:
        row = self.rows.get(_row_id(item.message_id) or "")
        if row is not None and row["error"] == erasure.ERASED:
            self.erased.add(item.email)  # nothing of the person is written back, see _suppress
            return None
        return row if row is not None and _address(row) in (None, item.email) else None

    def _latest(self, emails: list[str]) -> dict[str, dict[str, Any]]:
        """The last message sent to each address, found through the contact holding it (the messages
        index is by contact)."""
        found: dict[str, dict[str, Any]] = {}
        recipient = sa.func.lower(messages.c.recipient)
        for chunk in chunked(emails, chunk_size(self.conn)):
            rank = sa.func.row_number().over(
                partition_by=recipient, order_by=(messages.c.sent_at.desc(), messages.c.id.desc())
            )
            ranked = (
                sa.select(messages, rank.label("rank"))
                .where(
                    messages.c.contact_id.in_(sa.select(contacts.c.id).where(contacts.c.email.in_(chunk))),
                    messages.c.sent_at.is_not(None),
                    recipient.in_(chunk),
                )
                .subquery()
            )
            query = sa.select(*(ranked.c[column.name] for column in messages.c)).where(ranked.c.rank == 1)
            for row in self.conn.execute(query):
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
        if row is not None and _personal(row):
            contact = self.batch.contact(row["contact_id"])
        else:
            contact = self.batch.find_email(item.email) if row is None else None
        return _set_status(self.batch, contact, "unsubscribed") or changed

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
            "email": erasure.suppression_key(self.secret, item.email) if erased else item.email,
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
            statement = dialect_insert(conn, suppressions)
            upgrade = {
                name: statement.excluded[name] for name in ("reason", "detail", "message_id", "created_at")
            }
            statement = statement.on_conflict_do_update(
                index_elements=["email"], set_=upgrade, where=suppressions.c.reason == "unsubscribed"
            )
            conn.execute(statement, list(self.suppress.values()))
        outbox.emit(conn, self.ctx, self.events, self.now)
        if self.batch is not None:
            _flush(conn, self.ctx, self.batch, "unsubscribed", "complaint", None)


# --- shared helpers ------------------------------------------------------------------------------


def _row_id(message_id: str | None) -> str | None:
    """Our row id from a ``Message-ID`` (``<row id>@<domain>``, brackets already stripped)."""
    if not message_id:
        return None
    return message_id.strip().strip("<>").partition("@")[0] or None


def _message(conn: Connection, message_id: str) -> dict[str, Any] | None:
    """The message, or None when it is gone or its person was erased (their links no longer work)."""
    row = conn.execute(sa.select(messages).where(messages.c.id == message_id)).first()
    return dict(row._mapping) if row is not None and row.error != erasure.ERASED else None


def _required(conn: Connection, message_id: str) -> dict[str, Any]:
    row = _message(conn, message_id)
    if row is None:
        raise NotFound("this link is no longer valid", code="invalid_link")
    return row


def _update(conn: Connection, message_id: str, **values: Any) -> None:
    conn.execute(messages.update().where(messages.c.id == message_id).values(**values))


def _personal(row: Mapping[str, Any]) -> bool:
    """Whether the message went to its contact (internal notices go to someone else about them)."""
    return bool(row["contact_id"]) and row["kind"] in outbox.PERSONAL


def _address(row: Mapping[str, Any]) -> str | None:
    """The address the message went to, lower-cased."""
    address = row["recipient"] or row["to_address"]
    return address.strip().lower() if address else None


def _person(conn: Connection, row: Mapping[str, Any]) -> str | None:
    """The contact a message went to, as it lives now (after merges); None for internal notices."""
    return queries.live_id(conn, row["contact_id"]) if _personal(row) else None


def _contact_email(conn: Connection, contact_id: str) -> str | None:
    email = conn.execute(sa.select(contacts.c.email).where(contacts.c.id == contact_id)).scalar()
    return str(email) if email else None
