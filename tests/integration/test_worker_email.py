"""A worker runs ``email_threads`` deliverers that share one SMTP pool and one rate budget."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.messaging.delivery import outbox
from leadflow.messaging.delivery.deliverer import DELIVERER, Deliverer
from leadflow.messaging.delivery.transport.capture import CaptureTransport
from leadflow.messaging.models import messages
from leadflow.runtime.worker import Worker
from tests.support import journeys as j

COUNT = 300


def _queue(ctx: AppContext) -> None:
    j.template(ctx, "note", kind="transactional", subject="A note", html="<p>Hello</p>")
    rows = [
        {"key": f"note-{n}", "kind": "transactional", "to_address": f"p{n}@example.com", "template": "note"}
        for n in range(COUNT)
    ]
    with ctx.db.write() as conn:
        assert outbox.enqueue_many(conn, ctx, rows, ctx.clock.now()) == COUNT


def _sent(ctx: AppContext) -> int:
    with ctx.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(messages.c.status == "sent")).scalar_one())


def test_a_second_deliverer_shares_the_transport_and_the_rate_budget(settings: Settings) -> None:
    from leadflow.runtime.context import build_context

    ctx = build_context(settings.model_copy(update={"email_rate_per_minute": 60}))
    try:
        first = Deliverer(ctx, CaptureTransport())
        second = Deliverer(ctx, share=first)
        assert second.transport is first.transport
        assert first.throttle is not None
        assert second.throttle is first.throttle  # one budget: two threads do not double the rate
        assert second.composer is not first.composer
    finally:
        ctx.close()


def test_the_worker_delivers_through_several_threads_each_message_once(ctx: AppContext) -> None:
    assert ctx.settings.email_threads == 2
    capture = CaptureTransport()
    ctx.put(DELIVERER, Deliverer(ctx, capture))
    _queue(ctx)
    worker = Worker(ctx)
    worker.start()
    try:
        names = {thread.name for thread in threading.enumerate()}
        assert {"leadflow-email-0", "leadflow-email-1"} <= names
        deadline = time.monotonic() + 30
        while _sent(ctx) < COUNT and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        worker.stop()
    assert _sent(ctx) == COUNT
    recipients = [message.recipient for message in capture.snapshot()]
    assert sorted(recipients) == sorted(f"p{n}@example.com" for n in range(COUNT))  # each exactly once
