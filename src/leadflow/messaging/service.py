"""What other domains and the composition root may do with messaging."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.kernel.db import where_in
from leadflow.messaging.contact_view import ContactMessage, messages_of
from leadflow.messaging.erasure import erasure_handler, export, suppression_key
from leadflow.messaging.models import email_preferences, email_topics

__all__ = [
    "ContactMessage",
    "erasure_handler",
    "export",
    "messages_of",
    "preferences_of",
    "suppression_key",
]


def preferences_of(conn: Connection, contact_ids: Sequence[str]) -> dict[str, dict[str, bool]]:
    """Each contact's topic preferences: topic -> subscribed, the contact's choice, else the topic's
    default. Two queries for the whole list."""
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    defaults = dict(conn.execute(sa.select(email_topics.c.key, email_topics.c.default_subscribed)).all())
    found = {contact_id: dict(defaults) for contact_id in ids}
    p = email_preferences.c
    query = sa.select(p.contact_id, p.topic, p.subscribed)
    for row in conn.execute(where_in(conn, query, p.contact_id, ids)):
        found[row.contact_id][row.topic] = row.subscribed
    return found
