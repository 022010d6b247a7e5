"""HubSpot's batch size, rate headers, owners and companies, on both databases (the real client
against the peer; the worker stepped on the virtual clock)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from leadflow.connectors import service as connectors
from leadflow.connectors.worker import ConnectorWorker
from leadflow.contacts import service as contacts
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import people
from leadflow.crm import service as crm
from leadflow.crm.schemas import UserCreate
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import connect, drain
from tests.peers.hubspot import HubSpotPeer
from tests.support.contacts import by_user
from tests.support.events import send

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")
UPSERT = r"/crm/v3/objects/contacts/batch/upsert"


def _people(ctx: AppContext, processor: EventProcessor, count: int) -> None:
    send(
        ctx,
        *(
            {
                "type": "identify",
                "userId": f"n{i}",
                "traits": {"email": f"n{i}@example.com"},
                "messageId": f"n{i}",
            }
            for i in range(count)
        ),
    )
    processor.drain()


def test_backlog_goes_in_batches_of_100_never_over(
    ctx: AppContext, processor: EventProcessor, peer: HubSpotPeer, worker: ConnectorWorker
) -> None:
    connect(ctx, peer)
    _people(ctx, processor, 150)
    drain(worker)
    sizes = sorted(len(call.json()["inputs"]) for call in peer.calls_to("POST", UPSERT))
    assert sizes == [50, 100]
    assert len(peer.records()) == 150
    assert not [call for call in peer.calls if call.status == 400]


def test_the_bucket_follows_hubspots_rate_headers_instead_of_meeting_429(
    ctx: AppContext, processor: EventProcessor, clock: VirtualClock, worker: ConnectorWorker
) -> None:
    with HubSpotPeer(limit=3, window_s=10, clock=clock.monotonic, now=clock.now) as peer:
        connect(ctx, peer, limits={"batch": 1}, mapping=[{"from": "email", "to": "email"}])
        _people(ctx, processor, 5)
        worker.run_once()  # 3 writes spend the window; the headers say 0 remain, so the rest wait
        assert len(peer.records()) == 3
        assert not [call for call in peer.calls if call.status == 429]
        waiting = connectors.health(ctx, connectors.listing(ctx, after=None, limit=1)[0]["id"])
        assert waiting["backlog"] == 2
        assert waiting["dead_letters"] == 0
        clock.advance(timedelta(seconds=11))  # the window (10 s) and the log's margin for the way there
        drain(worker)
        assert len(peer.records()) == 5
        assert not [call for call in peer.calls if call.status == 429]


def test_owner_by_email_and_the_company_association(
    ctx: AppContext, processor: EventProcessor, peer: HubSpotPeer, worker: ConnectorWorker
) -> None:
    owner_id = peer.add_owner("sam@school.example")
    connector_id = connect(ctx, peer, objects=["contact", "company"])
    send(
        ctx,
        {"type": "identify", "userId": "o1", "traits": {"email": "ola@example.com"}, "messageId": "o1"},
        {
            "type": "group",
            "userId": "o1",
            "groupId": "acme",
            "traits": {"name": "Acme", "domain": "acme.example"},
            "messageId": "o1g",
        },
    )
    processor.drain()
    ola = by_user(ctx, "o1")
    contacts.patch(ctx, ola["id"], contacts.ContactPatch(lifecycle_stage="lead"), actor="test")
    sam = people.create_user(ctx, UserCreate(name="Sam", email="sam@school.example"), actor="test")
    with ctx.db.write() as conn:
        crm.assign_owners(conn, ctx.clock, [crm.OwnerChange(ola["id"], sam.id, "k1")], actor="test")
    connectors.sync_now(ctx, connector_id, ola["id"])
    drain(worker)
    [contact] = peer.records()
    assert contact["properties"]["hubspot_owner_id"] == owner_id
    assert contact["properties"]["lifecyclestage"] == "lead"
    [company] = peer.records("companies")
    assert company["properties"]["name"] == "Acme"
    assert peer.associated("contacts", contact["id"], "companies") == [company["id"]]


def test_a_backfill_over_several_windows_meets_no_429(
    ctx: AppContext, processor: EventProcessor, clock: VirtualClock, worker: ConnectorWorker
) -> None:
    """HubSpot counts its limit in fixed windows (here 10 requests per 10 s, as 100 per 10 s in life): a
    token bucket (1/s, holding 10) let a window's 10, then one more each second into the same window, each
    answered 429; the worker's log of request times waits for the next window instead."""
    with HubSpotPeer(limit=10, window_s=10, clock=clock.monotonic, now=clock.now) as peer:
        connect(
            ctx, peer, limits={"batch": 1, "rate": 1, "burst": 10}, mapping=[{"from": "email", "to": "email"}]
        )
        _people(ctx, processor, 25)
        for _ in range(40):
            drain(worker)
            if len(peer.records()) == 25:
                break
            clock.advance(timedelta(seconds=1))
        assert len(peer.records()) == 25
        assert not [call for call in peer.calls if call.status == 429]


def test_hubspots_window_is_spread_so_a_change_behind_a_backfill_waits_about_a_second(
    ctx: AppContext, processor: EventProcessor, clock: VirtualClock, worker: ConnectorWorker
) -> None:
    """HubSpot's 100 requests per 10 s go in parts of 10 in any 1.025 s, not in one burst at the window's
    start: a change queued behind a backfill that keeps the window full waits for the next part, not
    for the next window (docs/benchmarks.md, "Connectors": change -> remote p99 6.6 s -> 0.47 s)."""
    with HubSpotPeer(clock=clock.monotonic, now=clock.now) as peer:  # 100 per 10 s
        connect(ctx, peer, limits={"batch": 1}, mapping=[{"from": "email", "to": "email"}])
        _people(ctx, processor, 25)
        assert worker.run_once() == 25
        assert len(peer.records()) == 10  # the first part; the others are due again when the part ends
        clock.advance(timedelta(seconds=1.1))
        drain(worker)
        assert len(peer.records()) == 20  # the next part, 1.1 s later (unspread: the next window, 10.25 s)
        clock.advance(timedelta(seconds=1.1))
        drain(worker)
        assert len(peer.records()) == 25
        assert not [call for call in peer.calls if call.status == 429]


def test_a_batch_whose_turn_in_the_window_is_near_waits_for_it_instead_of_going_back(
    ctx: AppContext, processor: EventProcessor, clock: VirtualClock, worker: ConnectorWorker
) -> None:
    """At the window's pace the next request's turn is a fraction of a second away: the batch waits it
    out (on the worker's clock) and goes in the same pass; one whose turn is further is deferred."""
    with HubSpotPeer(limit=10, window_s=10, clock=clock.monotonic, now=clock.now) as peer:
        connect(
            ctx, peer, limits={"batch": 1, "rate": 1, "burst": 10}, mapping=[{"from": "email", "to": "email"}]
        )
        _people(ctx, processor, 5)
        assert worker.run_once() == 5  # 5 of the window's 10 at 0 s
        clock.advance(timedelta(seconds=9.5))
        send(
            ctx,
            *(
                {
                    "type": "identify",
                    "userId": f"m{i}",
                    "traits": {"email": f"m{i}@example.com"},
                    "messageId": f"m{i}",
                }
                for i in range(6)
            ),
        )
        processor.drain()
        assert worker.run_once() == 6  # 5 more at 9.5 s; the 6th waits 0.75 s for the first ones to leave
        assert len(peer.records()) == 11
        assert not [call for call in peer.calls if call.status == 429]
