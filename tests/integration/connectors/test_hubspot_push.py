"""Pushing contacts to HubSpot (the real client against the peer over a socket), on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from leadflow.connectors.models import connector_links, connector_outbox
from leadflow.connectors.worker import ConnectorWorker
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import connect, drain, identify
from tests.peers.hubspot import HubSpotPeer
from tests.support.contacts import by_user
from tests.support.events import send

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")


def _outbox(ctx: AppContext) -> list[dict[str, object]]:
    with ctx.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(connector_outbox))]


def test_create_then_update_then_email_change_keep_one_remote_record(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "u1", email="Ann@Example.com", firstName="Ann", phone="(415) 555-0100")
    assert len(_outbox(ctx)) == 1  # written with the change, not sent
    assert peer.records() == []
    assert drain(worker) == 1
    [remote] = peer.records()
    assert remote["properties"]["email"] == "ann@example.com"
    assert remote["properties"]["firstname"] == "Ann"
    assert remote["properties"]["lifecyclestage"] in ("subscriber", "lead")
    assert _outbox(ctx) == []
    assert peer.calls_to("POST", r"/crm/v3/objects/contacts/batch/upsert")

    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "u1", lastName="Lee")
    drain(worker)
    assert [r["properties"]["lastname"] for r in peer.records()] == ["Lee"]
    assert peer.calls_to("POST", r"/crm/v3/objects/contacts/batch/update")

    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "u1", email="ann.lee@example.com")
    drain(worker)
    [remote] = peer.records()  # the same record: updated by id, not upserted by the new email
    assert remote["properties"]["email"] == "ann.lee@example.com"
    with ctx.db.read() as conn:
        [link] = conn.execute(sa.select(connector_links)).all()
    assert link.remote_id == remote["id"]


def test_two_workers_never_claim_the_same_row_and_a_lost_claim_comes_back(
    ctx: AppContext, processor: EventProcessor, peer: HubSpotPeer, clock: VirtualClock
) -> None:
    connect(ctx, peer)
    for user in ("c1", "c2", "c3", "c4"):
        identify(ctx, processor, user, email=f"{user}@example.com")
    first, second = ConnectorWorker(ctx), ConnectorWorker(ctx)
    try:
        mine, theirs = first.claim(2), second.claim(10)
        assert len(mine) == 2
        assert len(theirs) == 2
        assert not {c.id for c in mine} & {c.id for c in theirs}
        assert second.claim(10) == []  # all leased
        clock.advance(timedelta(minutes=6))  # the first worker died holding its claim: the lease ends
        again = second.claim(10)
        assert {c.id for c in again} == {c.id for c in mine} | {c.id for c in theirs}
        assert {c.attempts for c in again} == {0}  # an attempt counts at send, not at claim
    finally:
        first.close()
        second.close()


def test_a_visitor_without_email_waits_and_a_merge_keeps_one_remote_record(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "old-id", email="ola@example.com", firstName="Ola")
    identify(ctx, processor, "new-id", plan="pro")  # no email yet: nothing to match HubSpot by
    drain(worker)
    assert [r["properties"]["email"] for r in peer.records()] == ["ola@example.com"]
    assert [row for row in _outbox(ctx) if row["state"] == "dead"] == []
    clock.advance(timedelta(hours=1))
    send(ctx, {"type": "alias", "previousId": "old-id", "userId": "new-id", "messageId": "merge-1"})
    processor.drain()
    survivor = by_user(ctx, "new-id")
    with ctx.db.read() as conn:
        [link] = conn.execute(sa.select(connector_links)).all()
    assert link.local_id == survivor["id"]  # the merged contact's HubSpot record is the survivor's
    identify(ctx, processor, "new-id", email="ola.new@example.com")
    drain(worker)
    [remote] = peer.records()
    assert remote["properties"]["email"] == "ola.new@example.com"
