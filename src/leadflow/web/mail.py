"""The console's one email: a link to set a password (reset, invitation, first start), sent through the
messaging outbox to the user's address as an internal notice (about no contact: no consent, topic or
cap applies, and links are not rewritten for click tracking, so the secret link is never redirected)."""

from __future__ import annotations

import contextlib

from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict
from leadflow.kernel.ids import new_id
from leadflow.messaging import service as messaging

TEMPLATE = "console-password-link"
_SOURCE = {
    "key": TEMPLATE,
    "name": "Console: set your password",
    "kind": "transactional",
    "subject": "{{ vars.subject }}",
    "html": (
        "<p>Hello {{ vars.name }},</p><p>{{ vars.intro }}</p>"
        '<p><a href="{{ vars.url }}">Set your password</a></p>'
        "<p>The link works once, until {{ vars.until }}. If you did not ask for it, ignore this email.</p>"
    ),
}


def install_template(ctx: AppContext) -> None:
    with ctx.db.read() as conn:
        present = messaging.template_ids(conn, [TEMPLATE])
    if not present:
        with contextlib.suppress(Conflict):  # created meanwhile by another process
            messaging.create_template(ctx, messaging.TemplateCreate(**_SOURCE), actor="system")


def send_link(ctx: AppContext, *, to: str, name: str, url: str, until: str, invitation: bool) -> None:
    install_template(ctx)
    subject = "You are invited to leadflow" if invitation else "Reset your leadflow password"
    intro = (
        "an account was opened for you on leadflow's console."
        if invitation
        else "someone (hopefully you) asked to reset your password on leadflow's console."
    )
    row = {
        "key": f"console-link:{new_id()}",
        "kind": "internal",
        "to_address": to,
        "template": TEMPLATE,
        "context": {"vars": {"subject": subject, "intro": intro, "name": name, "url": url, "until": until}},
    }
    with ctx.db.write() as conn:
        messaging.enqueue_many(conn, ctx, [row], ctx.clock.now())
