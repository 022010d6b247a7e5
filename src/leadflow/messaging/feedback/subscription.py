"""The recipient's own choices: unsubscribing, taking it back, topic preferences and the preference
centre that shows them.

Each function is one write transaction and idempotent. Rules:

* **Unsubscribing** (one-click, the confirmation page, the preference centre; a complaint does the same
  in :mod:`.tracking`) suppresses the address the message went to (reason ``unsubscribed``: marketing
  only) and sets the contact's ``subscription_status`` through the contacts domain, so the change flows
  through the pipeline (segments, scoring) like any other profile change. Hard bounces and complaints
  outrank an unsubscribe in the suppression list; re-subscribing removes only an ``unsubscribed``
  suppression.
* Internal notices (``kind = internal``) are about a contact but went to someone else: choices made
  through them never change that contact.
* A message that is gone (an erased contact, a deleted row): an unsubscribe records nothing and raises
  nothing; the preference centre and re-subscribing answer :class:`NotFound` (``invalid_link``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts_service
from leadflow.kernel.context import AppContext
from leadflow.kernel.facts import AddressesSuppressed
from leadflow.messaging import erased
from leadflow.messaging.delivery import outbox
from leadflow.messaging.feedback import queries, recipient

__all__ = [
    "PreferenceView",
    "TopicChoice",
    "mask",
    "preferences",
    "resubscribe",
    "set_preferences",
    "unsubscribe",
]


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


def unsubscribe(ctx: AppContext, message_id: str, *, source: str) -> None:
    """Marketing unsubscribe for the message's recipient (``source``: how they asked, e.g. ``one_click``).

    Suppresses the address, unsubscribes the contact, stamps ``unsubscribed_at`` and emits
    ``leadflow.email_unsubscribed``, each only if not done already: asking twice changes nothing."""
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        contacts_service.profile_lock(conn)
        row = recipient.message(conn, message_id)
        if row is not None:
            _unsubscribe(conn, ctx, row, source, now)


def preferences(ctx: AppContext, message_id: str) -> PreferenceView:
    """The preference centre for the recipient of a message; :class:`NotFound` if it is gone."""
    secret = ctx.secret_key
    with ctx.db.read() as conn:
        return _view(conn, recipient.required(conn, message_id), secret)


def resubscribe(ctx: AppContext, message_id: str, *, source: str) -> PreferenceView:
    """Take an unsubscribe back (the unsubscribe page, visited again, offers it): marketing as a whole and
    the message's topic are on again, and an ``unsubscribed`` suppression is lifted (never a hard bounce
    or complaint). Recorded as unsubscribing is: the contact's change is audited (actor
    ``email:<source>``) and goes through the pipeline, and ``leadflow.email_resubscribed`` is emitted
    when anything was off. Asking twice changes nothing."""
    now, secret = ctx.clock.now(), ctx.secret_key  # the secret's first read writes: not inside
    with ctx.db.write() as conn:
        contacts_service.profile_lock(conn)
        row = recipient.required(conn, message_id)
        was_off = _view(conn, row, secret).unsubscribed
        person = recipient.person(conn, row)
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
        row = recipient.required(conn, message_id)
        person = recipient.person(conn, row)
        if person is not None:
            _save_topics(conn, person, topics, now)
        if all_marketing:
            _resubscribe(conn, ctx, row, person)
        else:
            _unsubscribe(conn, ctx, row, "preferences", now)
        return _view(conn, row, secret)


def _unsubscribe(conn: Connection, ctx: AppContext, row: dict[str, Any], source: str, now: datetime) -> None:
    changed = False
    address = recipient.address(row)
    if address:
        entry = {"email": address, "reason": "unsubscribed", "detail": source, "message_id": row["id"]}
        statement = queries.unsubscribe(conn.dialect.name)
        changed = bool(conn.execute(statement, {**entry, "created_at": now}).all())
        if changed:
            ctx.bus.publish(conn, AddressesSuppressed((address,), now))
    if recipient.personal(row):
        changed |= recipient.change_subscriptions(
            conn, ctx, [row["contact_id"]], "unsubscribed", source, row["id"]
        )
    stamped = conn.execute(queries.stamp_unsubscribed(row["id"], now))
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
    addresses = {recipient.address(row)}
    if person is not None:
        recipient.change_subscriptions(conn, ctx, [person], "subscribed", source, row["id"])
        addresses.add(recipient.contact_email(conn, person))
    wanted = sorted(erased.suppression_keys(ctx.secret_key, [a for a in addresses if a]))
    if wanted:  # the addresses, and their digests (an unsubscribe kept from an erased person)
        conn.execute(queries.drop_unsubscribes(wanted))


def _save_topics(conn: Connection, contact_id: str, topics: Mapping[str, bool], now: datetime) -> None:
    """Pin each choice that differs from what is stored (a topic never chosen is stored on first save)."""
    known = set(conn.execute(queries.TOPIC_KEYS).scalars())
    stored = {row.topic: bool(row.subscribed) for row in conn.execute(queries.choices_of(contact_id))}
    rows = [
        {"contact_id": contact_id, "topic": key, "subscribed": bool(value), "updated_at": now}
        for key, value in sorted(topics.items())
        if key in known and stored.get(key) != bool(value)
    ]
    if rows:
        conn.execute(queries.save_choices(conn.dialect.name), rows)


def _view(conn: Connection, row: dict[str, Any], secret: str) -> PreferenceView:
    person = recipient.person(conn, row)
    found = contacts_service.rows_of(conn, ("email", "subscription_status"), [person]) if person else []
    contact = found[0] if found else None
    address = recipient.address(row) or (contact.email if contact is not None else None)
    keys = sorted(erased.suppression_keys(secret, [address])) if address else []  # or as its digest
    unsubscribed = "unsubscribed" in set(conn.execute(queries.reasons_under(keys)).scalars())
    subscribed = (contact is None or contact.subscription_status == "subscribed") and not unsubscribed
    chosen: dict[str, bool] = {}
    if person is not None:
        chosen = dict(conn.execute(queries.choices_of(person)).all())
    topics = (
        [
            TopicChoice(
                key=t.key,
                name=t.name,
                description=t.description,
                subscribed=chosen.get(t.key, t.default_subscribed),
            )
            for t in conn.execute(queries.TOPICS_BY_NAME)
        ]
        if person is not None
        else []
    )
    return PreferenceView(email=mask(address), topics=topics, all_marketing=subscribed, topic=row["topic"])
