"""What the event processor finishes of a form post.

A post (:mod:`.submit`) stores the submission and its events without taking the profile lock and
without a contact: the contact is made or updated by the event processor from the post's ``identify``
(in its set-based batch, one processor at a time, so concurrent posts of one address make one
contact), exactly as ``/v1/batch`` events are. When the processor applies the post's
``form.submitted`` it publishes :class:`ContactsTouched` with that event and its contact; this handler,
in the processor's transaction and before the qualifiers run, then:

* links the submission (its consent record) to the contact;
* adds the contact to the form's static list and its tags;
* queues the double opt-in confirmation email of a pending submission (the marketing hold on the
  address was already written by the post itself, so nothing marketing can reach it meanwhile).

Only a submission no contact holds yet is linked, so re-applying an event (or an event sent through
``/v1/batch`` that names a submission already linked) changes nothing. A list deleted since the form
was saved is skipped (logged), never a failing batch. Everything is grouped: one read of the
submissions, one update, one read of the forms, then one list/tag change per form and one enqueue.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.capture import queries
from leadflow.capture.forms import CONFIRMATION_TEMPLATE, fields_of
from leadflow.capture.tokens import confirm_url
from leadflow.contacts import service as contacts
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.kernel.facts import ContactsTouched
from leadflow.messaging import service as messaging
from leadflow.segments import service as segments

log = logging.getLogger(__name__)

SUBMITTED = "form.submitted"


def _submitted(message: ContactsTouched) -> dict[str, tuple[str, str]]:
    """submission id → (its form id, the contact the event landed on), from the fact's events."""
    found: dict[str, tuple[str, str]] = {}
    for event in message.events:
        if event.type != "track" or event.event != SUBMITTED or not event.properties:
            continue
        submission_id, form_id = event.properties.get("submission_id"), event.properties.get("form_id")
        if isinstance(submission_id, str) and isinstance(form_id, str):
            found[submission_id] = (form_id, event.contact_id)
    return found


def forms_processed(ctx: AppContext) -> Callable[[Connection, ContactsTouched], None]:
    """The :class:`ContactsTouched` handler (wired before the qualifiers): see the module's rules."""

    def handle(conn: Connection, message: ContactsTouched) -> None:
        submitted = _submitted(message)
        if submitted:
            link(conn, ctx, submitted)

    return handle


def link(conn: Connection, ctx: AppContext, submitted: dict[str, tuple[str, str]]) -> None:
    """Finish these submissions (id → (form id, contact id)); the caller holds the profile lock."""
    rows = [
        r
        for r in conn.execute(queries.unlinked_submissions(sorted(submitted)))
        if submitted[r.id][0] == r.form_id
    ]
    if not rows:
        return
    contact_of = {r.id: submitted[r.id][1] for r in rows}
    conn.execute(
        queries.LINK_SUBMISSION, [{"submission_id": sid, "linked_to": cid} for sid, cid in contact_of.items()]
    )
    definitions = {
        f.id: fields_of(f) for f in conn.execute(queries.forms_of(sorted({r.form_id for r in rows})))
    }
    by_form: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        by_form[r.form_id].append(contact_of[r.id])
    for form_id, contact_ids in by_form.items():
        form = definitions.get(form_id)
        if form is None:  # deleted since the post: its list and tags went with it
            continue
        if form.list_id:
            _add_to_list(conn, ctx, form_id, form.list_id, contact_ids)
        if form.tags:
            contacts.change_many(conn, ctx, contact_ids, add=form.tags, remove=[])
    emails = [_confirmation(ctx, r, contact_of[r.id], definitions) for r in rows if r.status == "pending"]
    if emails:
        messaging.enqueue_many(conn, ctx, emails, ctx.clock.now())


def _add_to_list(
    conn: Connection, ctx: AppContext, form_id: str, list_id: str, contact_ids: list[str]
) -> None:
    try:
        segments.add_to_static_list(conn, ctx, list_id, contact_ids, f"form:{form_id}")
    except (NotFound, Invalid) as exc:  # the list went (or changed kind) after the form was saved
        log.warning("form %s: its list %s was skipped: %s", form_id, list_id, exc.message)


def _confirmation(ctx: AppContext, row: Any, contact_id: str, definitions: dict[str, Any]) -> dict[str, Any]:
    form = definitions.get(row.form_id)
    return {
        "key": f"form-confirm:{row.id}",
        "kind": "transactional",
        "contact_id": contact_id,
        "template": CONFIRMATION_TEMPLATE,
        "context": {
            "vars": {"confirm_url": confirm_url(ctx, row.id), "form_name": form.name if form else ""}
        },
    }
