"""The statements of feedback: a recipient's link (the message it points at, opens and clicks counted),
provider reports (bounces and complaints matched to messages, suppressions upgraded), and the
recipient's own choices (unsubscribe, resubscribe, topic preferences)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import Executable

from leadflow.contacts import service as contacts
from leadflow.kernel.db import insert_for, where_in_dialect
from leadflow.messaging.models import email_preferences, email_topics, messages, suppressions

_m = messages.c
_s = suppressions.c
_p = email_preferences.c


# --- links: opens and clicks ------------------------------------------------------------------------


def message(message_id: str) -> sa.Select[Any]:
    return sa.select(messages).where(_m.id == message_id)


def machine_hit(message_id: str) -> sa.Update:
    return messages.update().where(_m.id == message_id).values(machine_hits=_m.machine_hits + 1)


def opened(message_id: str, now: datetime) -> sa.Update:
    """One human open more; the first is kept as ``opened_at``."""
    values = {"opens": _m.opens + 1, "opened_at": sa.func.coalesce(_m.opened_at, now)}
    return messages.update().where(_m.id == message_id).values(**values)


def clicked(message_id: str, now: datetime) -> sa.Update:
    """One human click more (a click is an open too); the first of each is kept."""
    values = {
        "clicks": _m.clicks + 1,
        "clicked_at": sa.func.coalesce(_m.clicked_at, now),
        "opened_at": sa.func.coalesce(_m.opened_at, now),
    }
    return messages.update().where(_m.id == message_id).values(**values)


# --- provider reports -------------------------------------------------------------------------------

SUPPRESSIONS = sa.select(_s.email, _s.reason)


def suppressions_under(dialect: str, keys: Sequence[str]) -> Any:
    """``(email, reason)`` listed under ``keys`` (addresses and their digests)."""
    return where_in_dialect(dialect, SUPPRESSIONS, _s.email, keys)


def messages_by_id(dialect: str, message_ids: Sequence[str]) -> Any:
    return where_in_dialect(dialect, sa.select(messages), _m.id, message_ids)


def latest_sent(emails: Sequence[str]) -> sa.Select[Any]:
    """The last message sent to each address, found through the contacts holding it (the messages
    index is by contact)."""
    recipient = sa.func.lower(_m.recipient)
    rank = sa.func.row_number().over(partition_by=recipient, order_by=(_m.sent_at.desc(), _m.id.desc()))
    ranked = (
        sa.select(messages, rank.label("rank"))
        .where(
            _m.contact_id.in_(contacts.ids_holding(emails)),
            _m.sent_at.is_not(None),
            recipient.in_(list(emails)),
        )
        .subquery()
    )
    return sa.select(*(ranked.c[column.name] for column in messages.c)).where(ranked.c.rank == 1)


def upgrade_suppressions(dialect: str) -> Any:
    """Insert suppressions; an address (or digest) already listed only as unsubscribed is upgraded."""
    statement = insert_for(dialect, suppressions)
    upgrade = {name: statement.excluded[name] for name in ("reason", "detail", "message_id", "created_at")}
    return statement.on_conflict_do_update(
        index_elements=["email"], set_=upgrade, where=_s.reason == "unsubscribed"
    )


# --- the recipient's choices ------------------------------------------------------------------------

TOPIC_KEYS = sa.select(email_topics.c.key)
TOPICS_BY_NAME = sa.select(email_topics).order_by(email_topics.c.name, email_topics.c.key)


def unsubscribe(dialect: str) -> Any:
    """Add an ``unsubscribed`` suppression unless the address has one; returns the address if added."""
    statement = insert_for(dialect, suppressions).on_conflict_do_nothing(index_elements=["email"])
    return statement.returning(_s.email)


def stamp_unsubscribed(message_id: str, now: datetime) -> sa.Update:
    """The message's first unsubscribe."""
    return (
        messages.update().where(_m.id == message_id, _m.unsubscribed_at.is_(None)).values(unsubscribed_at=now)
    )


def drop_unsubscribes(keys: Sequence[str]) -> sa.Delete:
    return suppressions.delete().where(_s.email.in_(list(keys)), _s.reason == "unsubscribed")


def reasons_under(keys: Sequence[str]) -> sa.Select[Any]:
    return sa.select(_s.reason).where(_s.email.in_(list(keys)))


def choices_of(contact_id: str) -> sa.Select[Any]:
    """``(topic, subscribed)`` the contact chose."""
    return sa.select(_p.topic, _p.subscribed).where(_p.contact_id == contact_id)


def save_choices(dialect: str) -> Any:
    """Insert or overwrite topic choices."""
    statement = insert_for(dialect, email_preferences)
    return statement.on_conflict_do_update(
        index_elements=["contact_id", "topic"],
        set_={"subscribed": statement.excluded.subscribed, "updated_at": statement.excluded.updated_at},
    )


_AT = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLES: list[Callable[[], Executable | Sequence[Executable]]] = [
    lambda: [message("m1"), machine_hit("m1"), opened("m1", _AT), clicked("m1", _AT)],
    lambda: [suppressions_under(d, ["a"]) for d in ("sqlite", "postgresql")],
    lambda: [messages_by_id(d, ["m1"]) for d in ("sqlite", "postgresql")],
    lambda: [latest_sent(["a@example.com"]), upgrade_suppressions("postgresql")],
    lambda: [unsubscribe("postgresql"), stamp_unsubscribed("m1", _AT), drop_unsubscribes(["a"])],
    lambda: [reasons_under(["a"]), choices_of("c1"), save_choices("postgresql")],
]
