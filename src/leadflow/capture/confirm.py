"""Following the confirmation link of a double opt-in.

Opening the link (``GET``) only shows a page with a *Confirm* button: mail scanners and link previewers
fetch every link of a message, and a ``GET`` that confirmed would subscribe people who never clicked
(the practice of listmonk and Mailchimp). Pressing the button (``POST``) confirms.

The first confirmation confirms the submission, lifts the address's pending block (and an earlier
unsubscribe: the person has just proven they want the mail), re-subscribes a contact whose profile says
unsubscribed, and records ``form.confirmed`` in the pipeline. A second click changes nothing and
answers the same page. A submission erased meanwhile answers ``404``.
"""

from __future__ import annotations

from typing import Any

from leadflow.capture import queries
from leadflow.capture.tokens import submission_of
from leadflow.contacts import service as contacts
from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import on_commit
from leadflow.kernel.errors import NotFound
from leadflow.messaging import service as messaging


def pending(ctx: AppContext, token: str) -> bool:
    """Whether the submission the token names still awaits confirmation (``404`` once erased)."""
    submission_id = submission_of(ctx, token)
    with ctx.db.read() as conn:
        found = conn.execute(queries.SUBMISSION_BY_ID, {"submission_id": submission_id}).first()
    if found is None:
        raise NotFound("this confirmation link is no longer valid", code="submission_not_found")
    return bool(found.status == "pending")


def confirm(ctx: AppContext, token: str) -> Any:
    """Confirm the submission the token names; answers its row."""
    submission_id = submission_of(ctx, token)
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        found = conn.execute(queries.SUBMISSION_BY_ID, {"submission_id": submission_id}).first()
        if found is None:
            raise NotFound("this confirmation link is no longer valid", code="submission_not_found")
        first = conn.execute(queries.CONFIRM, {"submission_id": submission_id, "at": now}).rowcount == 1
        if first and found.email:
            messaging.release_confirmation(conn, ctx, found.email)
        if first and found.contact_id:
            properties = {"form_id": found.form_id, "submission_id": submission_id}
            events.emit(
                conn, found.contact_id, "form.confirmed", properties, now, f"form:{submission_id}:confirmed"
            )
            on_commit(conn, lambda: ctx.signals.announce(events.CHANNEL))
        contact = contacts.get(conn, found.contact_id) if first and found.contact_id else None
    if contact is not None and contact.subscription_status != "subscribed":
        patch = contacts.ContactPatch(subscription_status="subscribed")
        contacts.patch(ctx, contact.id, patch, actor=f"form:{found.form_id}")
    return found
