"""The double opt-in link: a signed token naming the submission, valid for 30 days."""

from __future__ import annotations

from datetime import timedelta

from leadflow.kernel.context import AppContext
from leadflow.messaging import service as messaging

PURPOSE = "form-confirm"
VALID_FOR = timedelta(days=30)


def confirm_url(ctx: AppContext, submission_id: str) -> str:
    token = messaging.Tokens(ctx.secret_key, ctx.clock).sign(PURPOSE, [submission_id])
    return f"{ctx.settings.public_url}/f/confirm/{token}"


def submission_of(ctx: AppContext, token: str) -> str:
    """The submission a confirmation token names; :class:`BadToken` (400) if it cannot be trusted."""
    payload = messaging.Tokens(ctx.secret_key, ctx.clock).load(PURPOSE, token, max_age=VALID_FOR)
    if not isinstance(payload, list) or len(payload) != 1 or not isinstance(payload[0], str):
        raise messaging.BadToken("malformed")
    return payload[0]
