"""Exactly once for the records that ride on a contact (companies, deals, activities), on both databases:
a write the vendor applied whose answer was lost is repeated without making a second record, and a
deal or activity the vendor refused keeps its contact's outbox row (retried, or dead with the reason)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors import service as connectors
from leadflow.connectors.models import connector_outbox
from leadflow.connectors.worker import ConnectorWorker
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import activities, deals
from leadflow.crm import service as crm
from leadflow.crm.deals import DealCreate
from leadflow.crm.schemas import ActivityCreate
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import connect, drain, identify
from tests.peers.hubspot import HubSpotPeer

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")


def _outbox(ctx: AppContext) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(connector_outbox)))


def _deal_and_note(ctx: AppContext, processor: EventProcessor, email: str) -> None:
    crm.ensure_default_pipeline(ctx)
    identify(ctx, processor, email.split("@")[0], email=email, firstName="Eve")
    deals.create(ctx, DealCreate(title="Bundle", email=email, value=Decimal("90"), currency="EUR"), actor="t")
    activities.log(ctx, ActivityCreate(email=email, kind="note", body="Called back"), actor="t")
    processor.drain()


def test_lost_answers_are_repeated_without_a_second_record_hubspot(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer, objects=["contact", "deal", "activity"])
    _deal_and_note(ctx, processor, "eve@example.com")
    for path in ("deals/batch/upsert", "notes/batch/upsert"):
        peer.faults.lose_answer(1, path)  # applied at HubSpot, the answer never arrives
    for _ in range(6):
        drain(worker)
        clock.advance(timedelta(minutes=10))
    assert peer.faults.counts["lost"] == 2
    [contact] = peer.records("contacts")
    [deal] = peer.records("deals")
    [note] = peer.records("notes")
    assert deal["properties"]["dealname"] == "Bundle"
    assert note["properties"]["hs_note_body"] == "Called back"
    assert peer.associated("deals", deal["id"], "contacts") == [contact["id"]]
    assert peer.associated("notes", note["id"], "contacts") == [contact["id"]]
    assert _outbox(ctx) == []


def test_a_refused_deal_dead_letters_its_contact_row_then_replays_once(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connector_id = connect(ctx, peer, objects=["contact", "deal"])
    peer.deal_stages = {"some-other-stage"}  # the portal's pipeline refuses the stage
    _deal_and_note(ctx, processor, "fay@example.com")
    drain(worker)
    assert len(peer.records("contacts")) == 1
    assert peer.records("deals") == []
    [row] = _outbox(ctx)
    assert row.state == "dead"
    assert row.last_error.startswith("deal ")
    assert "dealstage" in row.last_error
    [dead] = connectors.dead_letters(ctx, connector_id, after=0, limit=10)
    assert dead["id"] == row.id
    peer.deal_stages = None  # a human fixed the pipeline
    assert connectors.replay(ctx, row_id=row.id) == 1
    drain(worker)
    clock.advance(timedelta(minutes=1))
    drain(worker)
    assert len(peer.records("deals")) == 1
    assert len(peer.records("contacts")) == 1
    assert _outbox(ctx) == []


def test_lost_answers_of_a_contact_and_its_deal_stay_queued_then_once_hubspot(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer, objects=["contact", "deal"])
    _deal_and_note(ctx, processor, "gus@example.com")
    peer.faults.lose_answer(1, "deals/batch/upsert")
    peer.faults.lose_answer(1, "contacts/batch/upsert")
    drain(worker)
    [row] = _outbox(ctx)
    assert row.state != "dead"
    assert row.attempts == 1
    assert row.last_error
    for _ in range(4):
        clock.advance(timedelta(minutes=10))
        drain(worker)
    assert (len(peer.records("contacts")), len(peer.records("deals"))) == (1, 1)
    assert _outbox(ctx) == []
