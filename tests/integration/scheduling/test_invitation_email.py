"""A booking's emails carry the calendar invitation as calendar clients expect it, delivered to a real
SMTP server (aiosmtpd) on both databases: the confirmation, the reschedule and the cancellation, each a
multipart/mixed around text, HTML and a ``text/calendar; method=…`` alternative, plus ``invite.ics``;
the ICS parsed back by ``icalendar`` (stable UID, SEQUENCE bumped, CANCEL), DKIM verified by dkimpy."""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as email_policy
from functools import cache
from typing import Any

import dkim
import icalendar
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from pydantic import SecretStr

from leadflow.kernel.context import AppContext
from leadflow.messaging.build.dkim import dns_record
from leadflow.messaging.delivery.deliverer import Deliverer
from leadflow.messaging.delivery.transport.smtp import SmtpTransport
from tests.integration.scheduling.test_booking import ask, consultant, token_of
from tests.peers.smtp import SmtpPeer
from tests.support.http import bearer


@cache
def private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def dns(name: bytes, timeout: int = 5) -> bytes:
    assert name == b"cal._domainkey.school.example."
    return dns_record(private_key().encode()).encode()


@pytest.fixture
def api(client: TestClient, admin_key: str) -> TestClient:
    client.headers.update(bearer(admin_key))
    return client


def calendar_parts(data: bytes) -> tuple[Any, Any, EmailMessage]:
    """The message's (alternative calendar part, invite.ics attachment, message), checked for shape."""
    message = message_from_bytes(data, policy=email_policy)
    assert isinstance(message, EmailMessage)
    assert message.get_content_type() == "multipart/mixed"
    payload: Any = message.get_payload()
    alternative, attachment = payload
    assert alternative.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in alternative.get_payload()]
    assert kinds == ["text/plain", "text/html", "text/calendar"]
    assert attachment.get_content_type() == "application/ics"
    assert attachment.get_content_disposition() == "attachment"
    assert attachment.get_filename() == "invite.ics"
    return alternative.get_payload()[2], attachment, message


@pytest.mark.settings(
    email_from="Course School <hello@school.example>",
    dkim_selector="cal",
    dkim_domain="school.example",
    dkim_private_key=SecretStr(private_key()),  # the marker's values are not validated
)
def test_confirmation_reschedule_and_cancellation_carry_the_invitation(
    api: TestClient, ctx: AppContext
) -> None:
    consultant(api)
    booked = ask(api, "ada@example.com", "2026-03-03T09:00:00+01:00")
    assert booked["status"] == "booked"
    with SmtpPeer() as peer:
        deliverer = Deliverer(ctx, SmtpTransport.from_url(peer.url, pool_size=1))
        assert deliverer.deliver_due() == 1
        moved = api.post(
            f"/calendar/r/{token_of(booked['reschedule_url'])}", data={"start": "2026-03-04T09:00:00+01:00"}
        )
        assert moved.status_code == 200, moved.text
        assert deliverer.deliver_due() == 1
        assert api.post(f"/calendar/c/{token_of(booked['cancel_url'])}").status_code == 200
        assert deliverer.deliver_due() == 1
        deliverer.close()
        received = peer.wait_for(3)

    seen = []
    for item in received:
        assert item.recipients == ["ada@example.com"]
        assert dkim.verify(item.data, dnsfunc=dns)
        calendar_part, attachment, message = calendar_parts(item.data)
        method = calendar_part.get_param("method")
        assert calendar_part.get_content_charset() == "utf-8"
        assert attachment.get_content() == calendar_part.get_content().encode()  # one ICS, twice
        calendar: Any = icalendar.Calendar.from_ical(calendar_part.get_content())
        assert str(calendar["method"]) == method
        (event,) = calendar.walk("VEVENT")
        assert str(event["organizer"]) == "mailto:grace@example.com"
        assert str(event["attendee"]) == "mailto:ada@example.com"
        seen.append((method, str(event["uid"]), int(event["sequence"]), event["dtstart"].dt.isoformat()))
        assert str(message["Subject"]).startswith("Cancelled") == (method == "CANCEL")
    uid = f"booking-{booked['booking']['id']}@leadflow"
    assert seen == [
        ("REQUEST", uid, 0, "2026-03-03T08:00:00+00:00"),
        ("REQUEST", uid, 1, "2026-03-04T08:00:00+00:00"),
        ("CANCEL", uid, 2, "2026-03-04T08:00:00+00:00"),
    ]
    # a changed byte of the attachment breaks the signature: the body hash covers it
    tampered = received[0].data.replace(b"Content-Disposition: attachment", b"Content-Disposition: inline")
    assert tampered != received[0].data
    assert not dkim.verify(tampered, dnsfunc=dns)
