"""What other domains and the composition root may do with capture: the one module they import."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.capture import forms, queries, render
from leadflow.capture.confirm import confirm as confirm
from leadflow.capture.forms import create as create
from leadflow.capture.forms import delete as delete
from leadflow.capture.forms import get as get
from leadflow.capture.forms import listing as listing
from leadflow.capture.forms import update as update
from leadflow.capture.processed import forms_processed as forms_processed
from leadflow.capture.schemas import Form as Form
from leadflow.capture.schemas import FormFields as FormFields
from leadflow.capture.schemas import FormPatch as FormPatch
from leadflow.capture.submit import Posted as Posted
from leadflow.capture.submit import submit as submit
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import chunked
from leadflow.kernel.facts import ContactsErased, ContactsMerged


def on_contacts_erased(conn: Connection, message: ContactsErased) -> None:
    """Erasure: the person's submissions, consent records included, go with them (also a post of their
    address the event processor has not linked to them yet)."""
    for chunk in chunked(list(message.contact_ids), 1000):
        conn.execute(queries.delete_submissions_of(chunk))
    if message.emails:
        conn.execute(queries.delete_unlinked_submissions_of([e.lower() for e in message.emails]))


def on_contacts_merged(conn: Connection, message: ContactsMerged) -> None:
    """A merge: the loser's submissions (and consent records) belong to the survivor."""
    if message.pairs:
        conn.execute(queries.MOVE_TO_SURVIVOR, [{"loser": a, "survivor": b} for a, b in message.pairs])


def export(conn: Connection, contact_ids: Sequence[str]) -> list[dict[str, Any]]:
    """A person's submissions (with their consent records), for the GDPR export."""
    return [dict(r._mapping) for r in conn.execute(queries.submissions_of(contact_ids))]


def submission_counts(ctx: AppContext, form_ids: Sequence[str]) -> dict[str, int]:
    """Each form's number of submissions (a form with none is missing): one grouped query."""
    if not form_ids:
        return {}
    with ctx.db.read() as conn:
        found = conn.execute(queries.submission_counts(form_ids))
        return {row.form_id: int(row.submissions) for row in found}


def embed(ctx: AppContext, form_id: str) -> tuple[str, str]:
    """The copy-paste snippets of a form: (a script that injects it, a plain HTML form)."""
    with ctx.db.read() as conn:
        form = forms.fields_of(forms.row(conn, form_id))
    return render.snippets(form, form_id, ctx.settings.public_url)
