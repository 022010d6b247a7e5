"""Exactly once for the records that ride on a contact (companies, deals, activities), on both databases:
a write the vendor applied whose answer was lost is repeated without making a second record, and a
deal or activity the vendor refused keeps its contact's outbox row (retried, or dead with the reason)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors import service as connectors
from leadflow.connectors.models import connector_outbox
from leadflow.connectors.worker import LEASE, ConnectorWorker
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import activities, deals
from leadflow.crm import service as crm
from leadflow.crm.deals import DealCreate
from leadflow.crm.schemas import ActivityCreate
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import connect, drain, identify
from tests.peers.activecampaign import TOKEN as AC_TOKEN
from tests.peers.activecampaign import ActiveCampaignPeer
from tests.peers.hubspot import HubSpotPeer
from tests.peers.pipedrive import TOKEN as PIPEDRIVE_TOKEN
from tests.peers.pipedrive import PipedrivePeer
from tests.support.contacts import by_user
from tests.support.events import send

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
    for kind in ("deals", "notes"):  # the unique property the upserts go by, made by the first write
        assert peer.properties[kind]["leadflow_id"]["hasUniqueValue"] is True
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


@pytest.fixture
def pipedrive(clock: VirtualClock) -> Iterator[PipedrivePeer]:
    with PipedrivePeer(clock=clock.monotonic, now=clock.now) as running:
        yield running


def test_lost_answers_are_repeated_without_a_second_record_pipedrive(
    ctx: AppContext,
    processor: EventProcessor,
    pipedrive: PipedrivePeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    crm.ensure_default_pipeline(ctx)
    values = {"vendor": "pipedrive", "name": "Pipedrive", "host": pipedrive.url}
    values |= {
        "credentials": {"api_token": PIPEDRIVE_TOKEN},
        "objects": ["contact", "company", "deal", "activity"],
    }
    connectors.create(ctx, values, actor="test")
    identify(ctx, processor, "hal", email="hal@example.com", firstName="Hal")
    send(ctx, {"type": "group", "userId": "hal", "groupId": "acme", "traits": {"name": "Acme"}})
    processor.drain()
    company_id = by_user(ctx, "hal")["company_id"]
    deals.create(
        ctx,
        DealCreate(
            title="Bundle", email="hal@example.com", company_id=company_id, value=Decimal("9"), currency="EUR"
        ),
        actor="t",
    )
    activities.log(ctx, ActivityCreate(email="hal@example.com", kind="note", body="Called back"), actor="t")
    processor.drain()
    for path in ("/api/v2/organizations", "/api/v2/deals", "/api/v1/notes"):
        pipedrive.faults.lose_answer(1, path, method="POST")  # applied at Pipedrive, the answer lost
    for _ in range(6):
        drain(worker)
        clock.advance(timedelta(minutes=10))
    assert pipedrive.faults.counts["lost"] == 3
    counts = [pipedrive.count(kind) for kind in ("organization", "person", "deal", "note")]
    assert counts == [1, 1, 1, 1]
    [person] = pipedrive.find("person")
    [deal] = pipedrive.find("deal")
    [org] = pipedrive.find("organization")
    assert (deal["title"], deal["person_id"], deal["org_id"]) == ("Bundle", person["id"], org["id"])
    [note] = pipedrive.find("note")
    assert note["content"].startswith("Called back")
    assert _outbox(ctx) == []


def test_lost_answers_are_repeated_without_a_second_record_activecampaign(
    ctx: AppContext,
    processor: EventProcessor,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    with ActiveCampaignPeer(clock=clock.monotonic, now=clock.now) as peer:
        values = {
            "vendor": "activecampaign",
            "name": "AC",
            "host": peer.url,
            "credentials": {"api_token": AC_TOKEN},
        }
        connectors.create(ctx, {**values, "objects": ["contact", "deal", "activity"]}, actor="test")
        _deal_and_note(ctx, processor, "ivy@example.com")
        for path in ("/api/3/deals", "/api/3/notes"):
            peer.faults.lose_answer(1, path, method="POST")  # applied at ActiveCampaign, the answer lost
        for _ in range(6):
            drain(worker)
            clock.advance(timedelta(minutes=10))
        assert peer.faults.counts["lost"] == 2
        [deal] = peer.deals.values()
        [note] = peer.notes.values()
        assert deal["title"] == "Bundle"
        assert note["note"].startswith("Called back")
        assert _outbox(ctx) == []


def test_a_worker_whose_lease_ran_out_leaves_the_rows_to_the_one_that_took_them_over(
    ctx: AppContext,
    processor: EventProcessor,
    pipedrive: PipedrivePeer,
    clock: VirtualClock,
) -> None:
    """Pipedrive has no upsert: a person is searched by email, then created. Two workers both writing a
    row (the first one's pass outlived its lease, the second claimed the row again) would race their
    searches into two persons; the late worker sends nothing for a row it no longer holds."""
    values = {"vendor": "pipedrive", "name": "Pipedrive", "host": pipedrive.url}
    connectors.create(ctx, {**values, "credentials": {"api_token": PIPEDRIVE_TOKEN}}, actor="test")
    for n in range(3):
        identify(ctx, processor, f"p{n}", email=f"p{n}@example.com", firstName=f"P{n}")
    processor.drain()
    slow, quick = ConnectorWorker(ctx, rand=lambda: 0.5), ConnectorWorker(ctx, rand=lambda: 0.5)
    try:
        held = slow.claim(500)
        assert len(held) == 3
        clock.advance(LEASE + timedelta(seconds=1))  # the slow worker's pass outlives its lease ...
        taken = quick.claim(500)  # ... and another worker claims the rows again
        assert sorted(item.id for item in taken) == sorted(item.id for item in held)
        assert slow.work(held) == 3  # the late worker goes through its rows ...
        assert pipedrive.calls_to() == []  # ... and sends none of them
        assert quick.work(taken) == 3
    finally:
        slow.close()
        quick.close()
    assert pipedrive.count("person") == 3
    assert _outbox(ctx) == []
