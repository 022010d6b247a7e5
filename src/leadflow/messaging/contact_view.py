"""A contact's message history, as other domains show it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.engine import Connection

from leadflow.messaging import queries


class ContactMessage(BaseModel):
    """One email to (or about) a contact, as its history shows it."""

    id: str
    kind: str
    status: str
    template_id: str
    topic: str | None
    journey_id: str | None
    run_id: str | None
    step_id: str | None
    broadcast_id: str | None
    recipient: str | None
    subject: str | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None
    opened_at: datetime | None
    clicked_at: datetime | None
    bounced_at: datetime | None
    complained_at: datetime | None
    unsubscribed_at: datetime | None
    opens: int
    clicks: int


def messages_of(
    conn: Connection, contact_ids: Sequence[str], *, before: str | None, limit: int
) -> list[ContactMessage]:
    """A contact's messages (give its id and the ids merged into it), newest first (ids are
    time-ordered), ``limit`` of them before id ``before``."""
    query = queries.messages_of_contacts(list(ContactMessage.model_fields), contact_ids, before, limit)
    return [ContactMessage.model_validate(dict(row._mapping)) for row in conn.execute(query)]
