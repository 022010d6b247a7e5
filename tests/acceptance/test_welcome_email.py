"""The shipped welcome series, end to end, delivered to a real SMTP server (aiosmtpd).

Each message is parsed; its DKIM signature verifies (dkimpy, with a stub DNS answering our public key)
and covers the one-click headers; the RFC 8058 one-click POST unsubscribes; a tracked click redirects to
the link that was in the message and is recorded; a tampered token is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as email_policy
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import dkim
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from leadflow.api.app import create_app
from leadflow.contacts.models import contacts
from leadflow.journeys import installer
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.messaging.build.dkim import dns_record
from leadflow.messaging.delivery.deliverer import Deliverer
from leadflow.messaging.delivery.transport.smtp import SmtpTransport
from leadflow.messaging.models import messages, suppressions
from tests.peers.smtp import Received, SmtpPeer
from tests.support import journeys as j

BROWSER = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15"
)


@cache
def private_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret",
        ingest_rate_limit=0,
        api_rate_limit=0,
        base_url="https://school.example",
        email_from="Course School <hello@school.example>",
        brand_name="Course School",
        brand_address="1 Main St, Springfield",
        dkim_selector="s2026",
        dkim_domain="school.example",
        dkim_private_key=private_key(),
    )


@pytest.fixture
def delivered(ctx: AppContext, clock: VirtualClock) -> Iterator[list[Received]]:
    """The welcome series for Ann, run for a week on the virtual clock, delivered to a real server."""
    installer.install(ctx, "welcome-series", actor="test", publish=True)
    j.identify(ctx, "u1", email="ann@example.com", first_name="Ann")
    j.track(ctx, "u1", "Signed Up")
    with SmtpPeer(pipelining=True) as peer:  # as production MTAs offer (RFC 2920)
        deliverer = Deliverer(ctx, SmtpTransport.from_url(peer.url, pool_size=2))
        j.settle(ctx)
        deliverer.deliver_due()
        for _ in range(7):
            j.advance(ctx, clock, timedelta(days=1), step=timedelta(hours=6))
            deliverer.deliver_due()
        deliverer.close()
        received = peer.wait_for(4)
        assert peer.pipelined == 4  # every message went MAIL+RCPT+DATA in one write
        yield received


def parsed(item: Received) -> EmailMessage:
    found = message_from_bytes(item.data, policy=email_policy)
    assert isinstance(found, EmailMessage)
    return found


def dns(name: bytes, timeout: int = 5) -> bytes:
    assert name == b"s2026._domainkey.school.example."
    return dns_record(private_key().encode()).encode()


def html_of(message: EmailMessage) -> str:
    body = message.get_body(("html",))
    assert body is not None
    content: str = body.get_content()
    return content


def test_four_personal_signed_messages_arrive(delivered: list[Received]) -> None:
    assert len(delivered) == 4
    first = parsed(delivered[0])
    assert first["To"] == "ann@example.com"
    assert first["From"] == "Course School <hello@school.example>"
    assert "Ann" in str(first["Subject"])
    assert len({parsed(item)["Message-ID"] for item in delivered}) == 4
    for item in delivered:
        message = parsed(item)
        assert dkim.verify(item.data, dnsfunc=dns)
        signed = str(message["DKIM-Signature"]).replace("\r\n", "").replace(" ", "").lower()
        header_list = re.search(r"h=([^;]+)", signed)
        assert header_list is not None
        assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= set(
            header_list.group(1).split(":")
        )
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message.get_body(("plain",)) is not None
        assert "1 Main St, Springfield" in html_of(message)


def test_a_changed_byte_breaks_the_signature(delivered: list[Received]) -> None:
    data = delivered[0].data.replace(b"Ann", b"Bob", 1)
    assert not dkim.verify(data, dnsfunc=dns)


def _unsubscribe_url(message: EmailMessage) -> str:
    header = str(message["List-Unsubscribe"])
    https = [part.strip(" <>") for part in header.split(",") if part.strip(" <").startswith("https://")]
    assert len(https) == 1
    assert "mailto:" in header
    return https[0]


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_one_click_post_unsubscribes_without_redirect(ctx: AppContext, delivered: list[Received]) -> None:
    url = _unsubscribe_url(parsed(delivered[1]))
    with TestClient(create_app(ctx, run_worker=False)) as client:
        answer = client.post(
            _path(url),
            content="List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
    assert answer.status_code == 200
    with ctx.db.read() as conn:
        status = conn.execute(sa.select(contacts.c.subscription_status)).scalar_one()
        reason = conn.execute(sa.select(suppressions.c.reason)).scalar_one()
    assert status == "unsubscribed"
    assert reason == "unsubscribed"


def _tracked_links(message: EmailMessage) -> list[str]:
    return re.findall(r'href="(https://school\.example/t/c/[^"]+)"', html_of(message))


def test_a_click_redirects_to_the_link_in_the_message_and_is_recorded(
    ctx: AppContext, clock: VirtualClock, delivered: list[Received]
) -> None:
    message = parsed(delivered[0])
    links = _tracked_links(message)
    assert links
    clock.advance(timedelta(minutes=5))
    with TestClient(create_app(ctx, run_worker=False)) as client:
        answer = client.get(_path(links[0]), headers={"User-Agent": BROWSER}, follow_redirects=False)
        tampered = links[0][:-3] + ("AAA" if not links[0].endswith("AAA") else "BBB")
        refused = client.get(_path(tampered), headers={"User-Agent": BROWSER}, follow_redirects=False)
    assert answer.status_code == 302
    target = answer.headers["location"]
    assert target.startswith("https://school.example")
    assert "/t/c/" not in target
    text = message.get_body(("plain",))
    assert text is not None
    assert target in text.get_content()  # the link as written in the message (the text part is not tracked)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_link"
    with ctx.db.read() as conn:
        row: Any = conn.execute(
            sa.select(messages.c.clicks, messages.c.clicked_at).where(messages.c.clicks > 0)
        ).one()
    assert row.clicks == 1
    assert row.clicked_at is not None
