"""A send slower than the claim's lease: another worker claims the message again, and the two outcomes
must not undo each other (the deliverer's record step checks the lease; see ``deliverer._applicable``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.messaging.delivery import outbox
from leadflow.messaging.delivery.deliverer import Deliverer
from leadflow.messaging.delivery.transport.base import Outcome, Outgoing
from leadflow.messaging.models import messages, suppressions
from tests.support import journeys as j
from tests.support.contacts import by_user

SENT = Outcome("sent", 250, "2.0.0 Ok: queued as 4A1")
LATER = Outcome("deferred", 451, "4.3.0 try again later")
GONE = Outcome("bounced", 550, "5.1.1 no such user")


class Scripted:
    """Answers every message with ``outcome``; ``during`` runs mid-send (the other worker's moment)."""

    description = "scripted"

    def __init__(self, outcome: Outcome, during: Callable[[], None] | None = None) -> None:
        self.outcome, self.during = outcome, during
        self.sent: list[Outgoing] = []

    def send_many(self, batch: Sequence[Outgoing]) -> list[Outcome]:
        self.sent.extend(batch)
        if self.during is not None:
            self.during()
        return [self.outcome for _ in batch]

    def close(self) -> None:
        pass


@pytest.fixture
def message_id(ctx: AppContext) -> str:
    j.template(ctx, "hello")
    j.identify(ctx, "u1", email="ann@example.com", first_name="Ann")
    j.settle(ctx)
    contact_id = by_user(ctx, "u1")["id"]
    row = {"key": "lease-test", "kind": "marketing", "contact_id": contact_id, "template": "hello"}
    with ctx.db.write() as conn:
        outbox.enqueue_many(conn, ctx, [row], ctx.clock.now())
        return str(conn.execute(sa.select(messages.c.id)).scalar_one())


def _row(ctx: AppContext, message_id: str) -> dict[str, Any]:
    with ctx.db.read() as conn:
        return dict(conn.execute(sa.select(messages).where(messages.c.id == message_id)).one()._mapping)


def _statuses(ctx: AppContext) -> list[str]:
    with ctx.db.read() as conn:
        names = conn.execute(sa.select(events.c.event).where(events.c.event.like("leadflow.email_%")))
        return sorted(name.removeprefix("leadflow.email_") for name in names.scalars())


def _lease_ends(ctx: AppContext, clock: VirtualClock) -> None:
    clock.advance(timedelta(seconds=ctx.settings.email_lease_seconds + 1))


def _claim_later(
    ctx: AppContext, clock: VirtualClock, worker: Deliverer, claimed: list[Any]
) -> Callable[[], None]:
    """Mid-send: the lease ends and ``worker`` claims the message again (its rows go to ``claimed``)."""

    def claim() -> None:
        _lease_ends(ctx, clock)
        claimed.extend(worker.claim(clock.now(), 10))

    return claim


def _finish(ctx: AppContext, worker: Deliverer, claimed: list[Any]) -> None:
    """The rest of ``deliver_due`` for rows ``worker`` claimed earlier: compose, send, record."""
    with ctx.db.read() as conn:
        verdicts = worker.composer.compose(conn, claimed, ctx.clock.now())
    sending = [v for v in verdicts if v.outgoing is not None]
    results = worker.transport.send_many([v.outgoing for v in sending if v.outgoing is not None])
    worker.record(verdicts, {v.message.id: r for v, r in zip(sending, results, strict=True)}, [])


def test_a_late_deferral_does_not_undo_the_newer_claims_send(
    ctx: AppContext, clock: VirtualClock, message_id: str
) -> None:
    newer = Scripted(SENT)
    second = Deliverer(ctx, newer)

    def other_worker_sends_it() -> None:
        _lease_ends(ctx, clock)
        assert second.deliver_due() == 1

    late = Scripted(LATER, during=other_worker_sends_it)
    first = Deliverer(ctx, late)
    assert first.deliver_due() == 1
    row = _row(ctx, message_id)
    assert (row["status"], row["attempts"], row["error"]) == ("sent", 2, None)
    assert _statuses(ctx) == ["queued", "sent"]  # no "deferred"
    _lease_ends(ctx, clock)
    assert first.deliver_due() == 0  # nothing is due again: no third send
    assert late.sent[0].data == newer.sent[0].data  # the same bytes, the same Message-ID


def test_a_late_send_is_recorded_over_a_newer_claim_which_then_cannot_undo_it(
    ctx: AppContext, clock: VirtualClock, message_id: str
) -> None:
    second = Deliverer(ctx, Scripted(LATER))
    claimed: list[Any] = []
    first = Deliverer(ctx, Scripted(SENT, during=_claim_later(ctx, clock, second, claimed)))
    assert first.deliver_due() == 1
    assert len(claimed) == 1
    row = _row(ctx, message_id)
    assert (row["status"], row["attempts"], row["sent_at"]) == ("sent", 2, clock.now())
    assert row["response"] == SENT.response
    _finish(ctx, second, claimed)  # the newer claim's deferral comes too late to matter
    row = _row(ctx, message_id)
    assert (row["status"], row["error"]) == ("sent", None)
    assert _statuses(ctx) == ["queued", "sent"]


def test_a_late_deferral_is_dropped_and_the_newer_claim_decides(
    ctx: AppContext, clock: VirtualClock, message_id: str
) -> None:
    second = Deliverer(ctx, Scripted(SENT))
    claimed: list[Any] = []
    first = Deliverer(ctx, Scripted(LATER, during=_claim_later(ctx, clock, second, claimed)))
    first.deliver_due()
    row = _row(ctx, message_id)
    assert (row["status"], row["attempts"], row["error"]) == ("queued", 2, None)  # the newer lease, untouched
    assert row["due_at"] == clock.now() + timedelta(seconds=ctx.settings.email_lease_seconds)
    _finish(ctx, second, claimed)
    assert _row(ctx, message_id)["status"] == "sent"
    assert _statuses(ctx) == ["queued", "sent"]


def test_a_late_hard_bounce_is_recorded_and_suppresses_the_address(
    ctx: AppContext, clock: VirtualClock, message_id: str
) -> None:
    newer = Scripted(SENT)
    second = Deliverer(ctx, newer)
    claimed: list[Any] = []
    Deliverer(ctx, Scripted(GONE, during=_claim_later(ctx, clock, second, claimed))).deliver_due()
    assert _row(ctx, message_id)["status"] == "bounced"
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(suppressions.c.email, suppressions.c.reason)).all() == [
            ("ann@example.com", "hard_bounce")
        ]
    _finish(ctx, second, claimed)  # composing again sees the suppression: nothing is sent the second time
    assert newer.sent == []
    assert _row(ctx, message_id)["status"] == "bounced"
    assert _statuses(ctx) == ["bounced", "queued"]


def test_an_outcome_for_a_deleted_message_is_dropped(ctx: AppContext, message_id: str) -> None:
    def erased() -> None:
        with ctx.db.write() as conn:
            conn.execute(messages.delete().where(messages.c.id == message_id))

    Deliverer(ctx, Scripted(SENT, during=erased)).deliver_due()
    assert _statuses(ctx) == ["queued"]
