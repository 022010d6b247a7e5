"""The statements of messaging's top-level modules: templates, layouts and topics; the suppression list;
the message log; GDPR erasure and export; and what other domains read through
:mod:`leadflow.messaging.service` (topic preferences, the journey simulator's copy).

Building a message, delivering it and the recipients' feedback have their own ``queries.py``
(:mod:`.build.queries`, :mod:`.delivery.queries`, :mod:`.feedback.queries`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Executable

from leadflow.kernel.db import dialect_insert, insert_for, json_flags, where_in_dialect
from leadflow.messaging.models import (
    email_layouts,
    email_preferences,
    email_templates,
    email_topics,
    messages,
    suppressions,
)

WAITING = ("queued", "deferred")
PERSONAL = ("marketing", "transactional")

# --- topic preferences (contacts show them) -----------------------------------------------------------


def preferences_column(contact_id: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """A contact's topic preferences as one JSON column of the contact's own read (topic -> subscribed):
    for every topic, the contact's choice, else the topic's default; ``NULL`` when there is no topic.

    A scalar subquery correlated with ``contact_id`` (a contact read is on the API's hot path: one
    statement, not a second query). Choices exist only for known topics (unknown keys are ignored when
    saved, and topics are never deleted), so the topics drive the read."""
    t, p = email_topics, email_preferences
    chosen = sa.and_(p.c.topic == t.c.key, p.c.contact_id == contact_id)
    merged = sa.select(json_flags(t.c.key, sa.func.coalesce(p.c.subscribed, t.c.default_subscribed)))
    return merged.select_from(t.outerjoin(p, chosen)).scalar_subquery()


# --- templates, layouts, topics ---------------------------------------------------------------------

TEMPLATE_INSERT = email_templates.insert()
ALL_TOPICS = sa.select(email_topics).order_by(email_topics.c.key)


def layout_exists(key: str) -> sa.Select[Any]:
    return sa.select(email_layouts.c.id).where(email_layouts.c.key == key)


def topic_exists(key: str | None) -> sa.Select[Any]:
    return sa.select(email_topics.c.key).where(email_topics.c.key == key)


def template(id_or_key: str) -> sa.Select[Any]:
    return sa.select(email_templates).where(
        sa.or_(email_templates.c.id == id_or_key, email_templates.c.key == id_or_key)
    )


def template_id_of_key(key: str) -> sa.Select[Any]:
    return sa.select(email_templates.c.id).where(email_templates.c.key == key)


def update_template(template_id: str, values: dict[str, Any]) -> sa.Update:
    return email_templates.update().where(email_templates.c.id == template_id).values(**values)


def delete_template(template_id: str) -> sa.Delete:
    return email_templates.delete().where(email_templates.c.id == template_id)


def templates_page(after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(email_templates).order_by(email_templates.c.id).limit(limit)
    return query.where(email_templates.c.id > after) if after else query


def save_layout(dialect: str, values: dict[str, Any], *, replace: bool) -> Any:
    """Insert a layout; with ``replace`` an existing one of its key is overwritten (its revision goes
    up), else kept."""
    statement = insert_for(dialect, email_layouts).values(**values)
    if not replace:
        return statement.on_conflict_do_nothing(index_elements=["key"])
    changed = {name: values[name] for name in ("name", "html", "text", "updated_at")}
    return statement.on_conflict_do_update(
        index_elements=["key"], set_={**changed, "revision": email_layouts.c.revision + 1}
    )


def save_topic(dialect: str, values: dict[str, Any]) -> Any:
    """Insert a topic unless its key exists."""
    return insert_for(dialect, email_topics).values(**values).on_conflict_do_nothing(index_elements=["key"])


LAYOUTS_BY_KEY = sa.select(email_layouts).order_by(email_layouts.c.key).limit(500)


def layout(key: str) -> sa.Select[Any]:
    return sa.select(email_layouts).where(email_layouts.c.key == key)


# --- the suppression list ---------------------------------------------------------------------------

SUPPRESSION_INSERT = suppressions.insert()


def suppressions_under(keys: Sequence[str]) -> sa.Select[Any]:
    """The entries listed under ``keys`` (addresses and their digests)."""
    return sa.select(suppressions).where(suppressions.c.email.in_(list(keys)))


def suppressions_page(
    keys: Sequence[str] | None, reason: str | None, after: str | None, limit: int
) -> sa.Select[Any]:
    query = sa.select(suppressions).order_by(suppressions.c.email).limit(limit)
    if keys is not None:
        query = query.where(suppressions.c.email.in_(list(keys)))
    if reason:
        query = query.where(suppressions.c.reason == reason)
    if after:
        query = query.where(suppressions.c.email > after)
    return query


def update_suppression(email: str, values: dict[str, Any]) -> sa.Update:
    return suppressions.update().where(suppressions.c.email == email).values(**values)


def delete_suppressions(emails: Sequence[str]) -> sa.Delete:
    return suppressions.delete().where(suppressions.c.email.in_(list(emails)))


# --- the message log --------------------------------------------------------------------------------


def message_log(filters: dict[str, str | None], before: str | None, limit: int) -> sa.Select[Any]:
    """Newest first; ``filters``: column name -> value (None: any)."""
    query = sa.select(messages).order_by(messages.c.id.desc()).limit(limit)
    for name, value in filters.items():
        if value:
            query = query.where(messages.c[name] == value)
    return query.where(messages.c.id < before) if before else query


def messages_of_contacts(
    columns: Sequence[str], contact_ids: Sequence[str], before: str | None, limit: int
) -> sa.Select[Any]:
    query = (
        sa.select(*(messages.c[name] for name in columns))
        .where(messages.c.contact_id.in_(list(contact_ids)))
        .order_by(messages.c.id.desc())
        .limit(limit)
    )
    return query.where(messages.c.id < before) if before else query


ENGAGEMENT_BY = ("template", "broadcast", "journey", "step")


def engaged(
    by: str,
    key: str,
    what: str,
    start: datetime,
    end: datetime,
    before: tuple[datetime, str] | None,
    limit: int,
) -> sa.Select[Any]:
    """The messages of a template / broadcast / journey / journey step (``journey_id:step_id``) first
    opened (``what="opened"``) or clicked by a person in ``[start, end)``, latest first, keyset-paged on
    ``(time, id)``. Indexed by broadcast, by journey and (partial indexes of migration 0022) by template."""
    m = messages.c
    at = m.opened_at if what == "opened" else m.clicked_at
    if by == "step":
        journey_id, _, step_id = key.partition(":")
        where = [m.journey_id == journey_id, m.step_id == step_id]
    else:
        where = [m[f"{by}_id"] == key]
    query = (
        sa.select(m.id, m.contact_id, m.recipient, at.label("at"), m.opens, m.clicks, m.machine_hits)
        .where(*where, m.kind.in_(PERSONAL), at >= start, at < end)
        .order_by(at.desc(), m.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(sa.or_(at < before[0], sa.and_(at == before[0], m.id < before[1])))
    return query


# --- GDPR erasure and export ------------------------------------------------------------------------


def recipients_of(contact_ids: Sequence[str]) -> sa.Select[Any]:
    """The addresses the people's own messages went to."""
    m = messages.c
    return (
        sa.select(m.recipient)
        .where(m.contact_id.in_(list(contact_ids)), m.kind.in_(PERSONAL), m.recipient.is_not(None))
        .distinct()
    )


def message_ids_of(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(messages.c.id).where(messages.c.contact_id.in_(list(contact_ids)))


def redact_messages(contact_ids: Sequence[str], mark: str) -> sa.Update:
    cleared = {"recipient": None, "to_address": None, "subject": None, "context": None, "response": None}
    return messages.update().where(messages.c.contact_id.in_(list(contact_ids))).values(**cleared, error=mark)


def suppress_waiting(contact_ids: Sequence[str], mark: str) -> sa.Update:
    mine = messages.c.contact_id.in_(list(contact_ids))
    return (
        messages.update().where(mine, messages.c.status.in_(WAITING)).values(status="suppressed", error=mark)
    )


def delete_preferences(contact_ids: Sequence[str]) -> sa.Delete:
    return email_preferences.delete().where(email_preferences.c.contact_id.in_(list(contact_ids)))


def suppressions_of(dialect: str, addresses: Sequence[str]) -> sa.Select[Any]:
    """The suppression list's entries for these addresses (or digests)."""
    found: sa.Select[Any] = where_in_dialect(
        dialect, sa.select(suppressions), suppressions.c.email, addresses
    )
    return found


def digest_suppressions(conn: Connection) -> Any:
    """Insert suppressions, keeping a stronger entry already held: a digest's unsubscribe is upgraded,
    never the other way round."""
    insert = dialect_insert(conn, suppressions)
    upgrade = {name: insert.excluded[name] for name in ("reason", "message_id", "created_at")}
    return insert.on_conflict_do_update(
        index_elements=["email"], set_=upgrade, where=suppressions.c.reason == "unsubscribed"
    )


def messages_for_export(contact_ids: Sequence[str]) -> sa.Select[Any]:
    m = messages.c
    return sa.select(messages).where(m.contact_id.in_(list(contact_ids))).order_by(m.created_at, m.id)


def preferences_for_export(contact_ids: Sequence[str]) -> sa.Select[Any]:
    query = sa.select(email_preferences).where(email_preferences.c.contact_id.in_(list(contact_ids)))
    return query.order_by(email_preferences.c.topic)


# --- the journey simulator's scratch database ---------------------------------------------------------

CONFIGURATION = (email_layouts, email_templates, email_topics)
NEXT_DUE = sa.select(sa.func.min(messages.c.due_at)).where(messages.c.status.in_(WAITING))
ALL_MESSAGES = sa.select(messages).order_by(messages.c.created_at, messages.c.id)


def copy_configuration(source: Connection, target: Connection, suppression_keys: Sequence[str]) -> None:
    """Layouts, templates and topics, and the suppressions listed under ``suppression_keys``, from one
    database to another (the simulator's scratch copy)."""
    for table in CONFIGURATION:
        rows = [dict(row._mapping) for row in source.execute(sa.select(table))]
        if rows:
            target.execute(table.insert(), rows)
    if suppression_keys:
        blocked = [dict(row._mapping) for row in source.execute(suppressions_under(suppression_keys))]
        if blocked:
            target.execute(SUPPRESSION_INSERT, blocked)


def next_due(conn: Connection) -> datetime | None:
    """When the earliest waiting message falls due."""
    found: datetime | None = conn.execute(NEXT_DUE).scalar()
    return found


def all_messages(conn: Connection) -> list[Any]:
    return list(conn.execute(ALL_MESSAGES))


_AT = datetime(2026, 1, 1, tzinfo=UTC)
_LAYOUT = {
    "id": "l1",
    "key": "k",
    "name": "n",
    "html": "{{ content }}",
    "text": None,
    "created_at": _AT,
    "updated_at": _AT,
}
SAMPLES: list[Callable[[], Executable | Sequence[Executable]]] = [
    lambda: sa.select(preferences_column(sa.literal("c1"))),
    lambda: [layout_exists("default"), topic_exists("news"), template("welcome"), template_id_of_key("w")],
    lambda: [update_template("t1", {"name": "n"}), delete_template("t1"), templates_page("t0", 10)],
    lambda: [suppressions_under(["a@example.com"]), suppressions_page(["a"], "manual", "a", 10)],
    lambda: [update_suppression("a", {"reason": "manual"}), delete_suppressions(["a"])],
    lambda: [message_log({"status": "sent", "contact_id": None}, "m1", 10)],
    lambda: [engaged(by, "j:s", "opened", _AT, _AT, (_AT, "m1"), 10) for by in ENGAGEMENT_BY],
    lambda: [LAYOUTS_BY_KEY, layout("default")],
    lambda: [messages_of_contacts(["id", "status"], ["c1"], "m1", 10)],
    lambda: [recipients_of(["c1"]), message_ids_of(["c1"]), redact_messages(["c1"], "x")],
    lambda: [suppress_waiting(["c1"], "x"), delete_preferences(["c1"]), suppressions_of("sqlite", ["a"])],
    lambda: suppressions_of("postgresql", ["a"]),
    lambda: [messages_for_export(["c1"]), preferences_for_export(["c1"])],
    lambda: [sa.select(table) for table in CONFIGURATION],
    lambda: [
        save_layout(dialect, _LAYOUT, replace=replace)
        for dialect in ("postgresql",)  # (a PostgreSQL upsert compiles on SQLite too)
        for replace in (True, False)
    ],
    lambda: [
        save_topic("postgresql", {"key": "k", "name": "n", "default_subscribed": True, "created_at": _AT})
    ],
]
