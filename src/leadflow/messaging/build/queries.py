"""The statements building a message runs: what the composer loads for a batch (templates and their
layouts, suppressions, topic preferences), each one query for the whole batch.

Module-level statements are built once; the functions add a batch's values (``where_in``: one array
parameter on PostgreSQL, whatever the batch's size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Executable

from leadflow.kernel.db import where_in, where_in_dialect
from leadflow.messaging.models import (
    email_layouts,
    email_preferences,
    email_templates,
    email_topics,
    suppressions,
)

PREFERENCES = sa.select(
    email_preferences.c.contact_id, email_preferences.c.topic, email_preferences.c.subscribed
)
TOPIC_DEFAULTS = sa.select(email_topics.c.key, email_topics.c.default_subscribed)
SUPPRESSIONS = sa.select(suppressions.c.email, suppressions.c.reason)


def rows(conn: Connection, query: Any, column: Any, values: Sequence[Any]) -> Sequence[Any]:
    """The rows of ``query`` whose ``column`` is one of ``values`` (no query for no values)."""
    return list(conn.execute(where_in(conn, query, column, values))) if values else []


def preferences(conn: Connection, contact_ids: Sequence[str]) -> Sequence[Any]:
    """``(contact_id, topic, subscribed)`` of every choice the contacts made."""
    return rows(conn, PREFERENCES, email_preferences.c.contact_id, contact_ids)


def topic_defaults(conn: Connection) -> dict[str, bool]:
    """Each topic and whether a contact who never chose is subscribed to it."""
    return dict(conn.execute(TOPIC_DEFAULTS).all())


def suppressed(conn: Connection, keys: Sequence[str]) -> Sequence[Any]:
    """``(email, reason)`` of the suppressions listed under ``keys`` (addresses and their digests)."""
    return rows(conn, SUPPRESSIONS, suppressions.c.email, keys)


def templates_by_id(template_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(email_templates).where(email_templates.c.id.in_(list(template_ids)))


def layouts_by_key(keys: Sequence[str]) -> sa.Select[Any]:
    return sa.select(email_layouts).where(email_layouts.c.key.in_(list(keys)))


def sources(conn: Connection, template_ids: list[str]) -> dict[str, tuple[Any, Any]]:
    """Templates by id with their layouts, for rendering: ``id -> (template row, layout row | None)``."""
    if not template_ids:
        return {}
    found = list(conn.execute(templates_by_id(sorted(set(template_ids)))))
    keys = sorted({r.layout for r in found if r.layout})
    layouts = {r.key: r for r in conn.execute(layouts_by_key(keys))} if keys else {}
    return {r.id: (r, layouts.get(r.layout) if r.layout else None) for r in found}


SAMPLES: list[Callable[[], Executable | Sequence[Executable]]] = [
    lambda: templates_by_id(["t1", "t2"]),
    lambda: layouts_by_key(["default"]),
    lambda: [
        where_in_dialect(dialect, query, column, ["a", "b"])
        for dialect in ("sqlite", "postgresql")
        for query, column in (
            (PREFERENCES, email_preferences.c.contact_id),
            (SUPPRESSIONS, suppressions.c.email),
        )
    ],
]
