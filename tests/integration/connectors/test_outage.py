"""A vendor down for an hour, on both databases: the HubSpot peer resets every connection while changes
keep arriving (several per record, an email change among them, and a contact HubSpot has never seen);
the worker is stepped on the virtual clock through the hour of retries. Nothing is dead-lettered; when
the peer is back everything is delivered, the last value of each record wins, the email change lands on
the same remote record and nothing is duplicated."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors.models import connector_audit, connector_outbox
from leadflow.connectors.worker import ConnectorWorker
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import connect, drain, identify
from tests.peers.hubspot import HubSpotPeer

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")

STEP = timedelta(minutes=1)


def _outbox(ctx: AppContext) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(connector_outbox)))


def _outcomes(ctx: AppContext, local_id: str) -> list[str]:
    with ctx.db.read() as conn:
        query = (
            sa.select(connector_audit.c.outcome)
            .where(connector_audit.c.local_id == local_id, connector_audit.c.field.is_(None))
            .order_by(connector_audit.c.id)
        )
        return list(conn.scalars(query))


def test_an_hour_down_then_everything_delivered_in_order_once(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "ann", email="ann@example.com", firstName="Ann")
    identify(ctx, processor, "bob", email="bob@example.com", firstName="Bob")
    drain(worker)
    before = {r["properties"]["email"]: r["id"] for r in peer.records()}
    assert sorted(before) == ["ann@example.com", "bob@example.com"]

    peer.faults.down(True)
    # an hour of changes: every 10 minutes each record changes; Ann changes her email at 30 minutes;
    # Cy signs up during the outage (no remote record yet: the first write is an upsert by email)
    for minute in range(60):
        if minute % 10 == 0:
            n = minute // 10
            identify(ctx, processor, "ann", firstName=f"Ann-{n}")
            identify(ctx, processor, "bob", firstName=f"Bob-{n}", lastName=f"Stone-{n}")
            identify(ctx, processor, "cy", email="cy@example.com", firstName=f"Cy-{n}")
        if minute == 30:
            identify(ctx, processor, "ann", email="ann.lee@example.com")
        drain(worker)
        clock.advance(STEP)
    drain(worker)
    assert peer.faults.counts["down"] >= 5  # the worker kept trying through the hour, backing off
    waiting = _outbox(ctx)
    assert {row.state for row in waiting} == {"pending"}, [(r.state, r.last_error) for r in waiting]
    assert len(waiting) == 3

    peer.faults.down(False)
    # the backlog is due again at the end of its current backoff step: step the clock until it is empty
    for _ in range(60 * 4):
        drain(worker)
        if not _outbox(ctx):
            break
        clock.advance(STEP)
    assert _outbox(ctx) == []

    remote = {r["properties"]["email"]: r for r in peer.records()}
    assert sorted(remote) == ["ann.lee@example.com", "bob@example.com", "cy@example.com"]  # none twice
    assert remote["ann.lee@example.com"]["id"] == before["ann@example.com"]  # the same remote record
    assert remote["bob@example.com"]["id"] == before["bob@example.com"]
    assert remote["ann.lee@example.com"]["properties"]["firstname"] == "Ann-5"  # the last value wins
    assert remote["bob@example.com"]["properties"]["firstname"] == "Bob-5"
    assert remote["bob@example.com"]["properties"]["lastname"] == "Stone-5"
    assert remote["cy@example.com"]["properties"]["firstname"] == "Cy-5"
    with ctx.db.read() as conn:
        dead = conn.scalar(sa.select(sa.func.count()).where(connector_audit.c.outcome == "dead"))
    assert dead == 0
