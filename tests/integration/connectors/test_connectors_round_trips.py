"""The worker's database round trips per batch, pinned (a load-independent figure of the backfill's pace,
docs/benchmarks.md "Connectors"), and attempts counted only for a record a request carried.

Statements are counted with SQLAlchemy's ``before_cursor_execute`` on both databases; a transaction
(``begin``) on a connection not in autocommit costs PostgreSQL two more round trips (``BEGIN``,
``COMMIT``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors.models import connector_outbox
from leadflow.connectors.worker import LEASE, ConnectorWorker
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import connect, identify
from tests.peers.hubspot import HubSpotPeer
from tests.support.contacts import by_user
from tests.support.events import send
from tests.support.statements import counting

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")


def _outbox(ctx: AppContext) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(connector_outbox)))


def test_a_backfill_pass_costs_a_fixed_number_of_statements_per_batch(
    ctx: AppContext, processor: EventProcessor, peer: HubSpotPeer, worker: ConnectorWorker
) -> None:
    connect(ctx, peer, limits={"batch": 2})
    for n in range(6):
        identify(ctx, processor, f"u{n}", email=f"p{n}@example.com", firstName=f"P{n}")
    _ = ctx.secret_key
    with counting(ctx) as count:
        assert worker.run_once() == 6
    assert len(peer.records()) == 6
    assert _outbox(ctx) == []
    batches = 3
    if ctx.db.dialect == "postgresql":
        # the claim and the connectors (1 each), then a batch's reads (contacts, scores with links,
        # owners, suppressions) and its record (1): no transaction. Was 30 statements in 8 transactions,
        # 46 round trips (13 a batch).
        assert (count.statements, count.transactions) == (2 + 5 * batches, 0)
        assert count.round_trips == 17
    else:  # SQLite's transactions keep its single writer's lock; the record is four statements
        assert (count.statements, count.transactions) == (2 + 8 * batches, 2 + 2 * batches)


def test_an_attempt_counts_when_a_request_carried_the_row_not_at_claim(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer, limits={"batch": 1, "burst": 1, "rate": 0.001})
    for n in range(2):
        identify(ctx, processor, f"u{n}", email=f"p{n}@example.com")
    died = ConnectorWorker(ctx)
    assert len(died.claim(10)) == 2  # claimed, then the worker died before any request
    died.close()
    clock.advance(LEASE + timedelta(seconds=1))
    peer.faults.down(True)  # the first batch's request is sent and its connection reset
    assert worker.run_once() == 2  # the second batch waits for the bucket: never sent
    rows = sorted(_outbox(ctx), key=lambda row: row.attempts)
    assert [row.attempts for row in rows] == [0, 1]
    assert rows[0].last_error == "waiting for the rate limit"
    assert "unreachable" in rows[1].last_error
    assert [row.state for row in rows] == ["pending", "pending"]
    peer.faults.down(False)
    clock.advance(timedelta(hours=1))
    for _ in range(3):
        worker.run_once()
        clock.advance(timedelta(hours=1))
    assert len(peer.records()) == 2
    assert _outbox(ctx) == []


def test_a_failed_batch_counts_an_attempt_only_for_the_rows_a_sent_request_carried(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    """The companies go first: their request fails (its answer lost), so Ann (whose company it carried)
    spends an attempt and Bob (no company: his contact request was never sent) does not."""
    connect(ctx, peer, objects=["contact", "company"])
    send(
        ctx,
        {"type": "identify", "userId": "ann", "traits": {"email": "ann@example.com"}, "messageId": "a"},
        {"type": "group", "userId": "ann", "groupId": "acme", "traits": {"name": "Acme"}, "messageId": "ag"},
        {"type": "identify", "userId": "bob", "traits": {"email": "bob@example.com"}, "messageId": "b"},
    )
    processor.drain()
    peer.faults.lose_answer(1, "/crm/v3/objects/companies/batch/upsert")
    assert worker.run_once() == 2
    rows = {row.local_id: row for row in _outbox(ctx)}
    ann, bob = by_user(ctx, "ann")["id"], by_user(ctx, "bob")["id"]
    assert (rows[ann].attempts, rows[bob].attempts) == (1, 0)
    assert rows[bob].last_error.startswith("not sent")
    assert peer.calls_to("POST", r"/crm/v3/objects/contacts/batch/.*") == []
    clock.advance(timedelta(minutes=5))
    worker.run_once()
    assert _outbox(ctx) == []
    assert len(peer.records()) == 2
    assert len(peer.records("companies")) == 1
