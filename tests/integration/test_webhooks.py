"""The webhook outbox against a real HTTP receiver: signing, de-duplication, the retry schedule, leases.

Most tests leave the VirtualClock far from the wall clock, so they check signatures by recomputing
them from the received ``webhook-id``, ``webhook-timestamp`` and body (the library's ``sign``); the
signature test sets the VirtualClock to the wall clock so the receiver can run the library's complete
``verify``, whose timestamp check compares with the real time.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict, Invalid, NotFound
from leadflow.kernel.settings import Settings
from leadflow.webhooks import service
from leadflow.webhooks.deliverer import (
    BACKOFF,
    MAX_ATTEMPTS,
    SENDERS,
    Target,
    WebhookDeliverer,
    request_headers,
)
from leadflow.webhooks.models import webhook_deliveries
from leadflow.webhooks.service import DELIVERED, enqueue_many, signing_secret
from tests.peers.http_receiver import HttpReceiver, Received, Reply, closed_port_url

PAYLOAD = {"contact": {"id": "c1", "email": "ada@example.com"}, "score": 42}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The receivers here listen on 127.0.0.1, which the network guard admits only when told to."""
    return settings.model_copy(update={"network_allow": "127.0.0.1"})


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with HttpReceiver() as peer:
        yield peer


@pytest.fixture
def deliverer(ctx: AppContext) -> Iterator[WebhookDeliverer]:
    with WebhookDeliverer(ctx) as worker:
        yield worker


def queue(ctx: AppContext, url: str, *, key: str = "k1", at: datetime | None = None) -> bool:
    with ctx.db.write() as conn:
        item = {
            "key": key,
            "url": url,
            "event": "contact.qualified",
            "payload": PAYLOAD,
            "at": at or ctx.clock.now(),
        }
        return enqueue_many(conn, ctx, [item]) == 1


def rows(ctx: AppContext) -> list[dict[str, Any]]:
    return service.listing(ctx, status=None, after=None, limit=100)


def only_row(ctx: AppContext) -> dict[str, Any]:
    [row] = rows(ctx)
    return row


def assert_signed(request: Received, secret: str) -> None:
    """The signature matches the id, timestamp and body received (wall-clock tolerance aside)."""
    at = datetime.fromtimestamp(int(request.headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(request.headers["webhook-id"], at, request.body.decode())
    assert request.headers["webhook-signature"] == expected


def test_signing_matches_the_standard_webhooks_test_vector() -> None:
    signer = Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    at = datetime.fromtimestamp(1614265330, UTC)
    headers = request_headers(signer, "msg_p5jXN8AQM9LWM0D4loKWxJek", at, '{"test": 2432232314}')
    assert headers["webhook-timestamp"] == "1614265330"
    assert headers["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signing_secret_is_configured_or_derived_from_the_secret_key(ctx: AppContext) -> None:
    derived = signing_secret(ctx)
    assert derived.startswith("whsec_")
    assert len(base64.b64decode(derived.removeprefix("whsec_"))) == 32
    assert derived == signing_secret(ctx)
    ctx.settings.webhook_secret = SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert signing_secret(ctx) == "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_delivery_is_signed_and_the_receiver_verifies_it(ctx: AppContext, clock: VirtualClock) -> None:
    clock.set(datetime.now(UTC))  # verify() checks the timestamp against the wall clock
    secret = signing_secret(ctx)
    with HttpReceiver(check=lambda r: Webhook(secret).verify(r.body, r.headers)) as peer:
        assert queue(ctx, peer.url + "/hooks/leadflow")
        with WebhookDeliverer(ctx) as deliverer:
            assert deliverer.deliver_due() == 1
    [request] = peer.requests
    row = only_row(ctx)
    assert request.check_error is None
    assert (row["status"], row["response_code"], row["attempts"]) == (DELIVERED, 200, 1)
    assert row["delivered_at"] == clock.now()
    assert (request.method, request.path) == ("POST", "/hooks/leadflow")
    assert request.headers["webhook-id"] == row["id"]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "leadflow-webhooks/1"
    body = request.json()
    assert (body["type"], body["data"]) == ("contact.qualified", PAYLOAD)
    assert datetime.fromisoformat(body["timestamp"]) == row["created_at"]
    assert b": " not in request.body  # compact JSON


def test_a_receiver_with_another_secret_refuses_and_the_delivery_fails(
    ctx: AppContext, clock: VirtualClock
) -> None:
    clock.set(datetime.now(UTC))
    theirs = "whsec_" + base64.b64encode(b"a different secret of 32 bytes!!").decode()
    with HttpReceiver(check=lambda r: Webhook(theirs).verify(r.body, r.headers)) as peer:
        queue(ctx, peer.url)
        with WebhookDeliverer(ctx) as deliverer:
            deliverer.deliver_due()
    row = only_row(ctx)
    assert peer.requests[0].check_error is not None
    assert (row["status"], row["response_code"]) == ("failed", 400)
    assert "No matching signature" in row["error"]


def test_enqueue_with_the_same_key_twice_delivers_once(
    ctx: AppContext, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    assert queue(ctx, receiver.url) is True
    assert queue(ctx, receiver.url) is False
    assert len(rows(ctx)) == 1
    assert deliverer.deliver_due() == 1
    assert deliverer.deliver_due() == 0
    assert len(receiver.requests) == 1
    assert_signed(receiver.requests[0], signing_secret(ctx))


def test_enqueue_wakes_the_deliverer_only_after_commit_and_only_when_new(
    ctx: AppContext, receiver: HttpReceiver
) -> None:
    with ctx.db.write() as conn:
        enqueue_many(
            conn, ctx, [{"key": "a", "url": receiver.url, "event": "e", "payload": {}, "at": ctx.clock.now()}]
        )
        assert ctx.signals.wait(service.CHANNEL, 0) is False
    assert ctx.signals.wait(service.CHANNEL, 0) is True
    queue(ctx, receiver.url, key="a")
    assert ctx.signals.wait(service.CHANNEL, 0) is False


def test_enqueue_many_inserts_new_keys_in_one_go(ctx: AppContext, receiver: HttpReceiver) -> None:
    queue(ctx, receiver.url, key="old")
    now = ctx.clock.now()
    items = [
        {"key": key, "url": receiver.url, "event": "e", "payload": {"n": n}, "at": now, "journey_id": "j1"}
        for n, key in enumerate(["old", "new-1", "new-2"])
    ]
    with ctx.db.write() as conn:
        assert enqueue_many(conn, ctx, items) == 2
    by_key = {row["key"]: row for row in rows(ctx)}
    assert set(by_key) == {"old", "new-1", "new-2"}
    assert by_key["new-2"]["payload"] == {"n": 2}
    assert by_key["new-1"]["journey_id"] == "j1"
    assert by_key["old"]["journey_id"] is None


def test_a_webhook_due_later_waits(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    queue(ctx, receiver.url, at=clock.now() + timedelta(hours=1))
    assert deliverer.deliver_due() == 0
    assert deliverer.next_due() == clock.now() + timedelta(hours=1)
    clock.advance(timedelta(hours=1))
    assert deliverer.deliver_due() == 1
    assert only_row(ctx)["status"] == DELIVERED


def test_a_server_error_is_retried_after_five_seconds_with_the_same_id(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    receiver.reply(Reply(500, b"database down"), 200)
    queue(ctx, receiver.url)
    assert deliverer.deliver_due() == 1
    row = only_row(ctx)
    assert (row["status"], row["attempts"], row["response_code"]) == ("queued", 1, 500)
    assert row["due_at"] == clock.now() + timedelta(seconds=5)
    assert row["error"] == "HTTP 500: database down"
    clock.advance(timedelta(seconds=4))
    assert deliverer.deliver_due() == 0
    clock.advance(timedelta(seconds=1))
    assert deliverer.deliver_due() == 1
    row = only_row(ctx)
    assert (row["status"], row["attempts"], row["response_code"]) == (DELIVERED, 2, 200)
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == row["id"]
    assert first.body == second.body
    assert int(second.headers["webhook-timestamp"]) == int(first.headers["webhook-timestamp"]) + 5
    assert_signed(second, signing_secret(ctx))


def test_too_many_requests_waits_for_retry_after_when_longer(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    receiver.reply(Reply(429, headers={"Retry-After": "120"}))
    queue(ctx, receiver.url)
    deliverer.deliver_due()
    row = only_row(ctx)
    assert (row["status"], row["response_code"]) == ("queued", 429)
    assert row["due_at"] == clock.now() + timedelta(seconds=120)


def test_gone_fails_at_once(ctx: AppContext, receiver: HttpReceiver, deliverer: WebhookDeliverer) -> None:
    receiver.reply(410)
    queue(ctx, receiver.url)
    deliverer.deliver_due()
    row = only_row(ctx)
    assert (row["status"], row["response_code"], row["error"]) == ("failed", 410, "endpoint gone (410)")


def test_a_client_error_fails_at_once_with_the_start_of_the_body(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    receiver.reply(Reply(422, b"x" * 600))
    queue(ctx, receiver.url)
    deliverer.deliver_due()
    row = only_row(ctx)
    assert (row["status"], row["response_code"]) == ("failed", 422)
    assert row["error"] == "HTTP 422: " + "x" * 500
    clock.advance(timedelta(days=1))
    assert deliverer.deliver_due() == 0


def test_a_hostile_answer_is_recorded_as_text(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    """NUL and invalid UTF-8 in a refusal's body (which PostgreSQL's text cannot hold) are replaced:
    the outcome is recorded, not the whole pass lost."""
    receiver.reply(Reply(400, b"bad\x00\xff\xfeinput", headers={"Content-Type": "text/plain"}))
    queue(ctx, receiver.url)
    assert deliverer.deliver_due() == 1
    row = only_row(ctx)
    assert (row["status"], row["response_code"]) == ("failed", 400)
    assert row["error"] == "HTTP 400: bad\ufffd\ufffd\ufffdinput"
    assert row["response_body"] == "bad\ufffd\ufffd\ufffdinput"


def test_a_redirect_is_not_followed_but_retried(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    receiver.reply(Reply(301, headers={"Location": receiver.url + "/elsewhere"}))
    queue(ctx, receiver.url + "/hook")
    deliverer.deliver_due()
    row = only_row(ctx)
    assert [request.path for request in receiver.requests] == ["/hook"]
    assert (row["status"], row["response_code"]) == ("queued", 301)
    assert row["due_at"] == clock.now() + BACKOFF[0]
    assert "/elsewhere" in row["error"]


def test_an_unreachable_receiver_is_retried(
    ctx: AppContext, clock: VirtualClock, deliverer: WebhookDeliverer
) -> None:
    queue(ctx, closed_port_url())
    assert deliverer.deliver_due() == 1
    row = only_row(ctx)
    assert (row["status"], row["response_code"], row["attempts"]) == ("queued", None, 1)
    assert row["due_at"] == clock.now() + timedelta(seconds=5)
    assert "ConnectError" in row["error"]


def test_after_the_whole_schedule_the_delivery_fails_with_the_last_reason(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    receiver.reply(*[Reply(503, b"maintenance")] * MAX_ATTEMPTS)
    queue(ctx, receiver.url)
    for delay in BACKOFF:
        assert deliverer.deliver_due() == 1
        row = only_row(ctx)
        assert (row["status"], row["due_at"]) == ("queued", clock.now() + delay)
        clock.advance(delay - timedelta(seconds=1))
        assert deliverer.deliver_due() == 0
        clock.advance(timedelta(seconds=1))
    assert deliverer.deliver_due() == 1
    row = only_row(ctx)
    assert (row["status"], row["attempts"], row["error"]) == ("failed", 8, "HTTP 503: maintenance")
    assert len(receiver.requests) == MAX_ATTEMPTS == 8
    assert len({request.headers["webhook-id"] for request in receiver.requests}) == 1
    clock.advance(timedelta(days=2))
    assert deliverer.deliver_due() == 0


def test_a_crash_after_claiming_sends_the_same_id_again_after_the_lease(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    queue(ctx, receiver.url)
    [claimed] = deliverer.claim(10)  # ... and the process dies before sending or recording
    row = only_row(ctx)
    assert (row["status"], row["attempts"]) == ("queued", 1)
    assert row["due_at"] == clock.now() + deliverer.lease == clock.now() + timedelta(seconds=45)
    assert deliverer.deliver_due() == 0
    clock.advance(deliverer.lease - timedelta(seconds=1))
    assert deliverer.deliver_due() == 0
    clock.advance(timedelta(seconds=1))
    assert deliverer.deliver_due() == 1
    [request] = receiver.requests
    assert request.headers["webhook-id"] == claimed.id
    row = only_row(ctx)
    assert (row["status"], row["attempts"]) == (DELIVERED, 2)


def test_a_claim_is_held_one_lease_however_many_waves_it_needs(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    """2 x SENDERS + 4 rows (three waves of POSTs) are held one lease, the 15 s timeout + 30 s: after a
    crash they fall due again then, not after a timeout per wave."""
    count = 2 * SENDERS + 4
    for number in range(count):
        queue(ctx, receiver.url, key=f"k{number}")
    claimed = deliverer.claim(100)
    assert len(claimed) == count
    assert {row["due_at"] for row in rows(ctx)} == {clock.now() + timedelta(seconds=45)}
    clock.advance(timedelta(seconds=44))
    assert deliverer.claim(100) == []
    clock.advance(timedelta(seconds=1))
    assert len(deliverer.claim(100)) == count


def test_renewing_holds_current_claims_and_leaves_taken_over_ones(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    queue(ctx, receiver.url, key="a")
    queue(ctx, receiver.url, key="b")
    first = deliverer.claim(10)
    clock.advance(deliverer.lease)
    taken = deliverer.claim(1)  # the oldest is taken over (attempt 2)
    clock.advance(timedelta(seconds=10))
    deliverer.renew(first)  # this deliverer is still sending both
    due = {row["id"]: (row["attempts"], row["due_at"]) for row in rows(ctx)}
    [kept] = [c for c in first if c.id != taken[0].id]
    assert due[kept.id] == (1, clock.now() + deliverer.lease)
    assert due[taken[0].id] == (2, clock.now() - timedelta(seconds=10) + deliverer.lease)


@pytest.mark.settings(webhook_timeout=0.5)
def test_a_pass_longer_than_the_timeout_renews_its_claim_while_it_sends(
    ctx: AppContext, deliverer: WebhookDeliverer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 waves of POSTs answered in 0.1 s each take 0.8 s, longer than the 0.5 s timeout (the lease's
    unit): the pass renews its whole claim while it waits."""
    count = 8 * SENDERS
    renewed: list[int] = []
    renew = deliverer.renew
    monkeypatch.setattr(deliverer, "renew", lambda claims: (renewed.append(len(claims)), renew(claims)))
    with HttpReceiver(check=lambda _: time.sleep(0.1)) as slow:
        for number in range(count):
            queue(ctx, slow.url, key=f"k{number}")
        assert deliverer.deliver_due(limit=count) == count
    assert renewed
    assert set(renewed) == {count}
    assert {row["attempts"] for row in rows(ctx)} == {1}


def test_a_late_outcome_of_an_expired_claim_is_ignored(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    from leadflow.webhooks.deliverer import Attempt

    queue(ctx, receiver.url)
    [stale] = deliverer.claim(10)
    clock.advance(deliverer.lease)
    [current] = deliverer.claim(10)
    deliverer._record([stale], [Attempt("failed", 400, "HTTP 400")])
    row = only_row(ctx)
    assert (row["status"], row["attempts"], row["error"]) == ("queued", 2, None)
    deliverer._record([current], [Attempt(DELIVERED, 200)])
    assert only_row(ctx)["status"] == DELIVERED


def test_rows_locked_by_another_deliverer_are_skipped(
    ctx: AppContext, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    queue(ctx, receiver.url)
    if ctx.db.is_sqlite:  # one writer at a time: a claim waits for the other instead of skipping
        return
    table = webhook_deliveries
    with ctx.db.write() as conn:
        conn.execute(sa.select(table.c.id).with_for_update())
        assert deliverer.deliver_due() == 0
    assert deliverer.deliver_due() == 1


def test_state_changes_are_counted(
    ctx: AppContext, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    receiver.reply(500, 200, 410)
    for key in ("a", "b", "c"):
        queue(ctx, receiver.url, key=key)
    deliverer.deliver_due(limit=1)
    deliverer.deliver_due(limit=1)
    deliverer.deliver_due(limit=1)
    failed = next(row for row in rows(ctx) if row["status"] == "failed")
    service.retry(ctx, failed["id"])

    def sample(name: str) -> float | None:
        return ctx.metrics.registry.get_sample_value(f"leadflow_webhooks_{name}_total")

    assert [sample(name) for name in ("retried", "delivered", "failed", "requeued")] == [1, 1, 1, 1]


def test_an_operator_retries_a_failed_delivery(
    ctx: AppContext, clock: VirtualClock, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    receiver.reply(410, 200)
    queue(ctx, receiver.url)
    deliverer.deliver_due()
    row = only_row(ctx)
    assert row["status"] == "failed"
    clock.advance(timedelta(hours=1))
    service.retry(ctx, row["id"])
    again = only_row(ctx)
    assert (again["status"], again["due_at"], again["attempts"], again["error"]) == (
        "queued",
        clock.now(),
        0,
        None,
    )
    assert ctx.signals.wait(service.CHANNEL, 0) is True
    assert deliverer.deliver_due() == 1
    assert only_row(ctx)["status"] == DELIVERED
    assert receiver.requests[1].headers["webhook-id"] == row["id"]
    with pytest.raises(Conflict):
        service.retry(ctx, row["id"])
    with pytest.raises(NotFound):
        service.retry(ctx, "01HZZZZZZZZZZZZZZZZZZZZZZZ")


def test_listing_filters_by_status_and_pages_by_id(
    ctx: AppContext, receiver: HttpReceiver, deliverer: WebhookDeliverer
) -> None:
    receiver.reply(200, 410)
    for key in ("a", "b", "c"):
        queue(ctx, receiver.url, key=key)
    deliverer.deliver_due(limit=2)
    everything = rows(ctx)
    assert [row["id"] for row in everything] == sorted(row["id"] for row in everything)
    statuses = sorted(row["status"] for row in everything)
    assert statuses == ["delivered", "failed", "queued"]
    [queued] = service.listing(ctx, status="queued", after=None, limit=10)
    assert queued["id"] not in {request.headers["webhook-id"] for request in receiver.requests}
    page = service.listing(ctx, status=None, after=everything[0]["id"], limit=1)
    assert [row["id"] for row in page] == [everything[1]["id"]]
    with pytest.raises(Invalid):
        service.listing(ctx, status="lost", after=None, limit=10)


def test_the_worker_loop_delivers_what_is_enqueued(ctx: AppContext, receiver: HttpReceiver) -> None:
    stop = threading.Event()
    with WebhookDeliverer(ctx) as deliverer:
        worker = threading.Thread(target=deliverer.run, args=(stop,), daemon=True)
        worker.start()
        try:
            queue(ctx, receiver.url)
            assert receiver.wait_for(1)
        finally:
            stop.set()
            ctx.signals.wake(service.CHANNEL)
            worker.join(timeout=5)
        assert not worker.is_alive()
        assert not deliverer._poster.running  # the loop closed its sender on the way out
    assert only_row(ctx)["status"] == DELIVERED


def test_the_signers_kept_between_passes_are_bounded(deliverer: WebhookDeliverer) -> None:
    """One signer per endpoint secret is kept; rotations leave old secrets behind, so the cache is
    emptied when it reaches its bound instead of growing for ever."""
    secrets = [f"whsec_{base64.b64encode(f'secret number {n:04d}'.encode()).decode()}" for n in range(5)]
    with patch("leadflow.webhooks.deliverer.MAX_SIGNERS", 3):
        for secret in secrets:
            [signer] = deliverer._signers_of(Target("https://example.com/", (secret,)))
            assert signer is deliverer._signers_of(Target("https://example.com/", (secret,)))[0]
            assert len(deliverer._signers) <= 3
