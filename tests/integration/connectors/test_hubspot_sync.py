"""The connector worker against the HubSpot peer: objects, failures, pulls and erasure, on both databases.
The worker runs pass by pass on the virtual clock (no sleeps); the real HubSpot client talks to the
peer over a socket."""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors import service as connectors
from leadflow.connectors.models import connector_audit, connector_outbox
from leadflow.connectors.worker import SCHEDULE, ConnectorWorker
from leadflow.contacts import service as contacts
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import activities, deals
from leadflow.crm import service as crm
from leadflow.crm.deals import DealCreate
from leadflow.crm.schemas import ActivityCreate
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import connect, drain, identify
from tests.peers.hubspot import TOKEN, HubSpotPeer
from tests.support.contacts import by_user

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")


def _outbox(ctx: AppContext) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(connector_outbox)))


def _audit(ctx: AppContext, **where: Any) -> list[Any]:
    with ctx.db.read() as conn:
        query = sa.select(connector_audit).order_by(connector_audit.c.id)
        for name, value in where.items():
            query = query.where(connector_audit.c[name] == value)
        return list(conn.execute(query))


def test_deal_with_associations_and_activity_as_engagement(
    ctx: AppContext, processor: EventProcessor, peer: HubSpotPeer, worker: ConnectorWorker
) -> None:
    crm.ensure_default_pipeline(ctx)  # made on start
    connect(ctx, peer, objects=["contact", "deal", "activity"])
    identify(ctx, processor, "d1", email="dee@example.com", firstName="Dee")
    deal = deals.create(
        ctx,
        DealCreate(title="Course bundle", email="dee@example.com", value=Decimal("490"), currency="EUR"),
        actor="t",
    )
    activities.log(
        ctx,
        ActivityCreate(email="dee@example.com", kind="call", subject="Intro call", body="Keen"),
        actor="t",
    )
    activities.log(ctx, ActivityCreate(email="dee@example.com", kind="note", body="Prefers email"), actor="t")
    processor.drain()  # deal.created reaches the pipeline: the contact is queued with its deal
    drain(worker)
    [contact] = peer.records("contacts")
    [remote_deal] = peer.records("deals")
    assert remote_deal["properties"]["dealname"] == "Course bundle"
    assert remote_deal["properties"]["amount"] in ("490", "490.0000")
    assert peer.associated("deals", remote_deal["id"], "contacts") == [contact["id"]]
    [call] = peer.records("calls")
    [note] = peer.records("notes")
    assert call["properties"]["hs_call_title"] == "Intro call"
    assert note["properties"]["hs_note_body"] == "Prefers email"
    assert ("calls", call["id"], "contacts", contact["id"]) in peer.associations
    # a second sync writes nothing twice
    connectors.sync_now(
        ctx, connectors.listing(ctx, after=None, limit=1)[0]["id"], contact_id=deal.contact_id or ""
    )
    drain(worker)
    assert (len(peer.records("deals")), len(peer.records("calls")), len(peer.records("notes"))) == (1, 1, 1)


def test_429_waits_for_retry_after_uncounted_then_writes(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "r1", email="rae@example.com")
    peer.faults.burst_429(1, retry_after=30)
    assert worker.run_once() == 1
    [row] = _outbox(ctx)
    assert row.attempts == 0  # a 429 is not an attempt
    assert row.next_at == clock.now() + timedelta(seconds=30)
    assert "429" in row.last_error
    clock.advance(timedelta(seconds=29))
    assert worker.run_once() == 0  # Retry-After honoured
    clock.advance(timedelta(seconds=1))
    assert worker.run_once() == 1
    assert [r["properties"]["email"] for r in peer.records()] == ["rae@example.com"]
    assert _outbox(ctx) == []


def test_5xx_is_retried_with_backoff_then_succeeds(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "f1", email="fay@example.com")
    peer.faults.error_rate = 1.0
    worker.run_once()
    [row] = _outbox(ctx)
    assert row.attempts == 1
    assert row.state == "pending"
    assert row.next_at == clock.now() + SCHEDULE.delays[0]
    peer.faults.clear()
    clock.advance(SCHEDULE.delays[0])
    worker.run_once()
    assert len(peer.records()) == 1
    outcomes = [a.outcome for a in _audit(ctx, field=None)]
    assert outcomes == ["failed", "written"]


def test_dead_letter_after_the_last_attempt_then_replay(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connector_id = connect(ctx, peer)
    identify(ctx, processor, "x1", email="xia@example.com")
    peer.faults.error_rate = 1.0
    for attempt in range(SCHEDULE.max_attempts):
        if attempt:
            clock.advance(SCHEDULE.delays[-1] * 2)
        worker.run_once()
    [row] = _outbox(ctx)
    assert row.state == "dead"
    assert row.attempts == SCHEDULE.max_attempts
    assert "HubSpot 5" in row.last_error
    [dead] = connectors.dead_letters(ctx, connector_id, 0, 10)
    assert dead["id"] == row.id
    assert connectors.health(ctx, connector_id)["dead_letters"] == 1
    assert connectors.health(ctx, connector_id)["alerting"] is True  # 0 % succeeded, under 99 %
    assert connectors.check_alerts(ctx) == [connector_id]
    peer.faults.clear()
    assert connectors.replay(ctx, row_id=row.id) == 1
    worker.run_once()
    assert len(peer.records()) == 1
    assert _outbox(ctx) == []


def test_unauthorised_is_dead_at_once_and_credentials_never_logged(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "pat-na1-this-one-is-wrong"
    connect(ctx, peer, credentials={"access_token": secret})
    identify(ctx, processor, "w1", email="wes@example.com")
    with caplog.at_level(logging.DEBUG):
        worker.run_once()
    [row] = _outbox(ctx)
    assert row.state == "dead"
    assert "401" in row.last_error
    assert secret not in caplog.text
    assert TOKEN not in caplog.text
    assert secret not in row.last_error


@pytest.mark.parametrize(
    ("policy", "local_after"), [("remote", "Remote"), ("leadflow", "Local"), ("newest", "Remote")]
)
def test_pull_applies_each_conflict_policy_without_echo(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
    policy: str,
    local_after: str,
) -> None:
    connector_id = connect(ctx, peer, direction="both", conflict={"*": policy})
    identify(ctx, processor, "p1", email="pat@example.com", firstName="Local")
    drain(worker)
    [remote] = peer.records()
    upserts = len(peer.calls_to("POST", r"/crm/v3/objects/contacts/batch/(upsert|update)"))
    clock.advance(timedelta(minutes=5))
    peer.edit(remote["id"], {"firstname": "Remote"})
    clock.advance(timedelta(minutes=1))
    worker.pull_due(0)
    assert by_user(ctx, "p1")["first_name"] == local_after
    drain(worker)
    writes = len(peer.calls_to("POST", r"/crm/v3/objects/contacts/batch/(upsert|update)"))
    if policy == "leadflow":  # leadflow's value is written back
        assert peer.records()[0]["properties"]["firstname"] == "Local"
        assert writes == upserts + 1
    else:  # the applied remote value is not echoed back to HubSpot
        assert peer.records()[0]["properties"]["firstname"] == "Remote"
        assert writes == upserts
        assert _outbox(ctx) == []
    [read] = _audit(ctx, direction="pull")
    assert (read.field, read.outcome) == ("firstname", "kept" if policy == "leadflow" else "applied")
    # a second pull sees nothing new (the cursor moved, the write back is recognised)
    worker.pull_due(0)
    assert len(_audit(ctx, direction="pull")) == 1
    assert connectors.get(ctx, connector_id)["pulled_until"] is not None


def test_erasure_deletes_the_person_in_hubspot_and_is_recorded(
    ctx: AppContext, processor: EventProcessor, peer: HubSpotPeer, worker: ConnectorWorker
) -> None:
    connector_id = connect(ctx, peer)
    identify(ctx, processor, "e1", email="eve@example.com", firstName="Eve")
    identify(ctx, processor, "e2", email="eli@example.com")
    drain(worker)
    eve = by_user(ctx, "e1")
    remote = peer.contact_by_email("eve@example.com")
    assert remote is not None
    contacts.erase(ctx, eve["id"], actor="test")
    assert [a for a in _audit(ctx, contact_id=eve["id"]) if a.new_value is not None] == []  # values gone
    drain(worker)
    assert peer.erased == [remote["id"]]
    assert [r["properties"]["email"] for r in peer.records()] == ["eli@example.com"]
    [record] = _audit(ctx, direction="erase")
    assert (record.outcome, record.remote_id, record.old_value, record.new_value) == (
        "erased",
        remote["id"],
        None,
        None,
    )
    assert connectors.health(ctx, connector_id)["backlog"] == 0


def test_a_refused_record_does_not_hold_back_its_batch(
    ctx: AppContext,
    processor: EventProcessor,
    peer: HubSpotPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connector_id = connect(ctx, peer)
    identify(ctx, processor, "k1", email="kim@example.com")
    identify(ctx, processor, "k2", email="kai@example.com")
    drain(worker)
    with peer.lock:  # someone created this contact in HubSpot directly
        taken = peer._new("contacts", {"email": "taken@example.com"})
    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "k1", email="taken@example.com")
    identify(ctx, processor, "k2", firstName="Kai")
    assert worker.run_once() == 2
    [conflict] = connectors.conflicts(ctx, connector_id, 10)
    assert conflict["candidates"] == [taken["id"]]
    assert conflict["contact_id"] == by_user(ctx, "k1")["id"]
    assert peer.contact_by_email("kai@example.com")["properties"]["firstname"] == "Kai"  # type: ignore[index]
    assert len(peer.records()) == 3  # nothing duplicated, nothing guessed
    assert _outbox(ctx) == []
    # a contact deleted in HubSpot since is upserted again by its email, and the link follows
    kai = peer.contact_by_email("kai@example.com")
    assert kai is not None
    with peer.lock:
        del peer.store["contacts"][kai["id"]]
    identify(ctx, processor, "k2", lastName="Ito")
    worker.run_once()
    again = peer.contact_by_email("kai@example.com")
    assert again is not None
    assert again["id"] != kai["id"]
    assert again["properties"]["lastname"] == "Ito"
