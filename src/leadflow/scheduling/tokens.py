"""Signed links of a booking (HMAC with the installation key, like messaging's tokens): reschedule,
cancel, and the invitation's ICS. Each names the booking and its purpose; valid for a year."""

from __future__ import annotations

from datetime import timedelta

from leadflow.kernel.context import AppContext
from leadflow.messaging import service as messaging

RESCHEDULE, CANCEL, ICS = "booking-reschedule", "booking-cancel", "booking-ics"
PATHS = {RESCHEDULE: "r", CANCEL: "c", ICS: "ics"}
VALID_FOR = timedelta(days=365)


def url(ctx: AppContext, purpose: str, booking_id: str) -> str:
    token = messaging.Tokens(ctx.secret_key, ctx.clock).sign(purpose, [booking_id])
    return f"{ctx.settings.public_url}/calendar/{PATHS[purpose]}/{token}"


def booking_of(ctx: AppContext, purpose: str, token: str) -> str:
    """The booking a token names; :class:`BadToken` (400) if it cannot be trusted."""
    payload = messaging.Tokens(ctx.secret_key, ctx.clock).load(purpose, token, max_age=VALID_FOR)
    if not isinstance(payload, list) or len(payload) != 1 or not isinstance(payload[0], str):
        raise messaging.BadToken("malformed")
    return payload[0]
