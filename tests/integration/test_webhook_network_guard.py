"""The webhook deliverer behind the network guard, against a real HTTP peer on 127.0.0.1, on both
databases: a delivery to an internal address fails for good with the reason, the peer never hears of it,
and nothing retries it; the allow-list lets it through."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.webhooks import service
from leadflow.webhooks.deliverer import WebhookDeliverer
from leadflow.webhooks.service import DELIVERED, FAILED, enqueue_many
from tests.peers.http_receiver import HttpReceiver


@pytest.fixture
def peer() -> Iterator[HttpReceiver]:
    with HttpReceiver() as receiver:
        yield receiver


def _queue(ctx: AppContext, url: str, key: str) -> None:
    with ctx.db.write() as conn:
        item = {"key": key, "url": url, "event": "lead.hot", "payload": {"n": 1}, "at": ctx.clock.now()}
        enqueue_many(conn, ctx, [item])


def test_deliveries_to_internal_addresses_fail_for_good(
    ctx: AppContext, clock: VirtualClock, peer: HttpReceiver
) -> None:
    """Queued directly (as a row saved before the guard existed would be): the guard holds at send time,
    by the name's resolved address (``localhost``) as well as by a literal one."""
    port = peer.url.rsplit(":", 1)[1]
    targets = {
        "name": (f"http://localhost:{port}/hook", "blocked: localhost (127.0.0.1) is loopback"),
        "short": (f"http://127.1:{port}/hook", "blocked: 127.1 (127.0.0.1) is loopback"),
        "mapped": (f"http://[::ffff:127.0.0.1]:{port}/hook", "is loopback (127.0.0.1 inside IPv6)"),
        "metadata": ("http://169.254.169.254/latest/meta-data/", "is link-local (the cloud metadata"),
    }
    for key, (url, _) in targets.items():
        _queue(ctx, url, key)
    with WebhookDeliverer(ctx) as deliverer:
        assert deliverer.deliver_due() == 4
        rows = {row["key"]: row for row in service.listing(ctx, status=None, after=None, limit=10)}
        for key, (_, reason) in targets.items():
            row = rows[key]
            assert (row["status"], row["attempts"], row["response_code"]) == (FAILED, 1, None)
            assert row["error"].startswith("blocked: ")
            assert reason in row["error"]
        clock.advance(timedelta(days=2))
        assert deliverer.deliver_due() == 0
    assert peer.requests == []


def test_the_allow_list_lets_a_delivery_through(ctx: AppContext, peer: HttpReceiver) -> None:
    ctx.settings.network_allow = "127.0.0.1"
    port = peer.url.rsplit(":", 1)[1]
    _queue(ctx, f"http://localhost:{port}/hook", "k")
    with WebhookDeliverer(ctx) as deliverer:
        assert deliverer.deliver_due() == 1
    [row] = service.listing(ctx, status=None, after=None, limit=10)
    assert (row["status"], row["response_code"]) == (DELIVERED, 200)
    assert [request.path for request in peer.requests] == ["/hook"]
