"""What building a message hands to delivery: one finished email for one recipient."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outgoing:
    """One message for one recipient, ready for the wire."""

    sender: str  # the envelope MAIL FROM address (bounces go there)
    recipient: str
    data: bytes  # the full RFC 5322 message, CRLF line endings
    message_id: str
