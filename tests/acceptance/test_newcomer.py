"""What "done" looks like: a live leadflow (API + worker) with an SMTP server set, a Segment SDK pointed
at it, the shipped welcome journey published, and a personalised, tracked, unsubscribable email arriving
at a real SMTP server (aiosmtpd) — on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as email_policy
from pathlib import Path

import pytest
from segment.analytics import Client

from tests.acceptance.conftest import fresh_database
from tests.peers.smtp import SmtpPeer
from tests.support import databases
from tests.support.server import LiveServer


@pytest.fixture(params=["sqlite", "postgresql"])
def mailing(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[LiveServer, SmtpPeer]]:
    url, to_drop = fresh_database(request.param, tmp_path)
    with SmtpPeer() as peer:
        env = {
            "LEADFLOW_SMTP_URL": peer.url,
            "LEADFLOW_EMAIL_FROM": "Course School <hello@school.example>",
            "LEADFLOW_BRAND_NAME": "Course School",
            "LEADFLOW_BRAND_ADDRESS": "1 Main St, Springfield",
        }
        server = LiveServer(database_url=url, workdir=tmp_path, env=env)
        server.migrate()
        server.start()
        try:
            yield server, peer
        finally:
            server.stop()
    if to_drop:
        databases.drop_postgres_database(str(to_drop))


def test_sdk_event_to_a_welcome_email(mailing: tuple[LiveServer, SmtpPeer]) -> None:
    server, peer = mailing
    assert "SMTP 127.0.0.1" in server.log()
    with server.api() as api:
        installed = api.post(
            "/api/v1/journeys/install-templates", json={"names": ["welcome-series"], "publish": True}
        )
        assert installed.status_code == 200, installed.text
        assert installed.json()[0]["status"] == "active"
    client = Client(server.write_key, host=server.url, sync_mode=True)
    client.identify("user-42", {"email": "ann@example.com", "first_name": "Ann"})
    client.track("user-42", "Signed Up", {"plan": "free"})
    client.flush()
    (received,) = peer.wait_for(1, timeout=30)
    message = message_from_bytes(received.data, policy=email_policy)
    assert received.recipients == ["ann@example.com"]
    assert "Ann" in str(message["Subject"])
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = message.get_body(("html",))
    assert html is not None
    content = html.get_content()
    assert f"{server.url}/t/o/" in content  # the open pixel
    assert f"{server.url}/t/c/" in content  # tracked links
    assert "1 Main St, Springfield" in content
