"""What other domains and the composition root may do with capture: the one module they import."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.capture import queries
from leadflow.capture.confirm import confirm as confirm
from leadflow.capture.forms import create as create
from leadflow.capture.forms import delete as delete
from leadflow.capture.forms import get as get
from leadflow.capture.forms import listing as listing
from leadflow.capture.forms import update as update
from leadflow.capture.submit import Posted as Posted
from leadflow.capture.submit import submit as submit
from leadflow.kernel.db import chunked
from leadflow.kernel.facts import ContactsErased, ContactsMerged


def on_contacts_erased(conn: Connection, message: ContactsErased) -> None:
    """Erasure: the person's submissions, consent records included, go with them."""
    for chunk in chunked(list(message.contact_ids), 1000):
        conn.execute(queries.delete_submissions_of(chunk))


def on_contacts_merged(conn: Connection, message: ContactsMerged) -> None:
    """A merge: the loser's submissions (and consent records) belong to the survivor."""
    if message.pairs:
        conn.execute(queries.MOVE_TO_SURVIVOR, [{"loser": a, "survivor": b} for a, b in message.pairs])


def export(conn: Connection, contact_ids: Sequence[str]) -> list[dict[str, Any]]:
    """A person's submissions (with their consent records), for the GDPR export."""
    return [dict(r._mapping) for r in conn.execute(queries.submissions_of(contact_ids))]
