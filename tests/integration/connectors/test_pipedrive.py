"""The Pipedrive connector: httpx through the network guard against the Pipedrive peer over a socket, on
both databases. One peer serves the module (reset before each test) on each test's virtual clock; the
worker runs pass by pass (no sleeps)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from leadflow.connectors import config
from leadflow.connectors import service as connectors
from leadflow.connectors.models import connector_audit, connector_conflicts, connector_links, connector_outbox
from leadflow.connectors.pipedrive import SEARCH_LIMIT, PipedriveVendor
from leadflow.connectors.vendor import CONTACT, Network, Record
from leadflow.connectors.worker import SCHEDULE, ConnectorWorker
from leadflow.contacts import service as contacts
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import activities, deals
from leadflow.crm import service as crm
from leadflow.crm.deals import DealCreate
from leadflow.crm.schemas import ActivityCreate
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.netpolicy import Policy
from tests.integration.connectors.conftest import drain, identify
from tests.peers.pipedrive import TOKEN, PipedrivePeer
from tests.peers.saas import Faults
from tests.support.contacts import by_user
from tests.support.events import send

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")
LOCAL = Policy.parse("127.0.0.1")  # the guard admitting the local peer, for a vendor made by hand


class _Time:
    """The running test's virtual clock (the module's peer reads its time through it)."""

    clock = VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture(scope="module")
def shared() -> Iterator[PipedrivePeer]:
    with PipedrivePeer(clock=lambda: _Time.clock.monotonic(), now=lambda: _Time.clock.now()) as running:
        yield running


@pytest.fixture
def peer(shared: PipedrivePeer, clock: VirtualClock) -> PipedrivePeer:
    _Time.clock = clock
    shared.reset()
    shared.faults.clear()
    shared.limit = 80
    with shared.lock:
        shared.calls.clear()
    return shared


def connect(
    ctx: AppContext, peer: PipedrivePeer, credentials: dict[str, Any] | None = None, **settings: Any
) -> str:
    values = {
        "vendor": "pipedrive",
        "name": "Pipedrive",
        "credentials": {"api_token": TOKEN, **(credentials or {})},
        "host": peer.url,
    }
    return str(connectors.create(ctx, {**values, **settings}, actor="test")["id"])


def _rows(ctx: AppContext, table: sa.Table, **where: Any) -> list[Any]:
    with ctx.db.read() as conn:
        query = sa.select(table)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        return list(conn.execute(query))


def _emails(person: dict[str, Any]) -> list[str]:
    return [e["value"] for e in person["emails"]]


def _person_writes(peer: PipedrivePeer) -> int:
    return len(peer.calls_to("PATCH", r"/api/v2/persons/\d+")) + len(
        peer.calls_to("POST", r"/api/v2/persons")
    )


def test_search_create_update_by_id_and_email_change_keep_one_person(
    ctx: AppContext,
    processor: EventProcessor,
    peer: PipedrivePeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    plan = peer.add_field("person", "Plan")
    mapping = [
        {"from": "email", "to": "email"},
        {"from": "first_name", "to": "first_name"},
        {"from": "last_name", "to": "last_name"},
        {"from": "traits.plan", "to": plan},
    ]
    connector_id = connect(ctx, peer, mapping=mapping)
    identify(ctx, processor, "u1", email="ann@example.com", firstName="Ann", plan="pro")
    assert drain(worker) == 1
    [person] = peer.find("person")
    assert (_emails(person), person["name"], person["custom_fields"]) == (
        ["ann@example.com"],
        "Ann",
        {plan: "pro"},
    )
    [search] = peer.calls_to("GET", r"/api/v2/persons/search")
    assert (search.arg("term"), search.arg("exact_match"), search.arg("fields")) == (
        "ann@example.com",
        "true",
        "email",
    )
    seen = worker.vendor(config.load(ctx, connector_id)).rate_seen
    assert seen is not None
    assert (seen.limit, seen.window_s) == (peer.limit, 2.0)
    assert seen.remaining == peer.limit - 2  # the window's own count after a search and a create

    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "u1", lastName="Lee")
    drain(worker)
    assert [p["last_name"] for p in peer.find("person")] == ["Lee"]
    assert peer.calls_to("PATCH", rf"/api/v2/persons/{person['id']}")
    assert len(peer.calls_to("GET", r"/api/v2/persons/search")) == 1  # the stored id: no search

    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "u1", email="ann.lee@example.com")
    drain(worker)
    [after] = peer.find("person")  # the same person
    assert (after["id"], _emails(after)) == (person["id"], ["ann.lee@example.com"])
    [link] = _rows(ctx, connector_links)
    assert link.remote_id == str(person["id"])


def test_a_found_person_is_updated_and_several_are_a_conflict(
    ctx: AppContext, processor: EventProcessor, peer: PipedrivePeer, worker: ConnectorWorker
) -> None:
    with httpx.Client(base_url=peer.url, headers={"x-api-token": TOKEN}, trust_env=False) as salesperson:
        made = [
            salesperson.post("/api/v2/persons", json={"name": name, "emails": [{"value": email}]}).json()[
                "data"
            ]
            for name, email in (
                ("Solo", "solo@example.com"),
                ("Twin", "twin@example.com"),
                ("Twin", "TWIN@example.com"),
            )
        ]
    connect(ctx, peer)
    identify(ctx, processor, "s1", email="solo@example.com", firstName="Sol")
    identify(ctx, processor, "t1", email="twin@example.com", firstName="Two")
    drain(worker)
    assert peer.count("person") == 3  # nothing created
    assert peer.get("person", made[0]["id"])["first_name"] == "Sol"  # the one found is updated
    assert [p.get("first_name") for p in peer.find("person", email="twin@example.com")] == [None, None]
    [conflict] = _rows(ctx, connector_conflicts)
    assert conflict.local_id == by_user(ctx, "t1")["id"]
    assert sorted(conflict.candidates) == sorted(str(p["id"]) for p in made[1:])
    assert _rows(ctx, connector_outbox) == []


def test_organisation_deal_in_its_stage_and_note(
    ctx: AppContext, processor: EventProcessor, peer: PipedrivePeer, worker: ConnectorWorker
) -> None:
    crm.ensure_default_pipeline(ctx)
    connect(ctx, peer, {"pipeline_id": 1, "stage_id": 3}, objects=["contact", "company", "deal", "activity"])
    identify(ctx, processor, "d1", email="dee@example.com", firstName="Dee")
    send(ctx, {"type": "group", "userId": "d1", "groupId": "acme", "traits": {"name": "Acme"}})
    processor.drain()
    deals.create(
        ctx,
        DealCreate(
            title="Course bundle",
            email="dee@example.com",
            company_id=by_user(ctx, "d1")["company_id"],
            value=Decimal("490"),
            currency="EUR",
        ),
        actor="t",
    )
    activities.log(
        ctx,
        ActivityCreate(email="dee@example.com", kind="call", subject="Intro call", body="Keen"),
        actor="t",
    )
    processor.drain()
    drain(worker)
    [org] = peer.find("organization")
    [person] = peer.find("person")
    [deal] = peer.find("deal")
    [note] = peer.find("note")
    assert (org["name"], person["org_id"]) == ("Acme", org["id"])
    assert (deal["title"], deal["value"], deal["currency"], deal["status"]) == (
        "Course bundle",
        490.0,
        "EUR",
        "open",
    )
    assert (deal["person_id"], deal["org_id"], deal["pipeline_id"], deal["stage_id"]) == (
        person["id"],
        org["id"],
        1,
        3,
    )
    assert note["content"].startswith("Intro call\n\nKeen\n\n[leadflow ")  # the marker a repeat looks for
    assert note["person_id"] == person["id"]
    connectors.sync_now(
        ctx, connectors.listing(ctx, after=None, limit=1)[0]["id"], contact_id=by_user(ctx, "d1")["id"]
    )
    drain(worker)  # nothing is written twice
    assert [peer.count(kind) for kind in ("organization", "person", "deal", "note")] == [1, 1, 1, 1]


def test_429_waits_its_retry_after_uncounted_and_5xx_retries_to_success(
    ctx: AppContext,
    processor: EventProcessor,
    peer: PipedrivePeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "r1", email="rae@example.com")
    peer.faults.burst_429(1, retry_after=2)
    worker.run_once()
    [row] = _rows(ctx, connector_outbox)
    assert (row.attempts, row.state, row.next_at) == (0, "pending", clock.now() + timedelta(seconds=2))
    assert "429" in row.last_error
    clock.advance(timedelta(seconds=1))
    assert worker.run_once() == 0  # the window's reset is honoured
    clock.advance(timedelta(seconds=1))
    peer.faults.error_rate = 1.0
    worker.run_once()
    [row] = _rows(ctx, connector_outbox)
    assert (row.attempts, row.next_at) == (1, clock.now() + SCHEDULE.delays[0])
    peer.faults.clear()
    clock.advance(SCHEDULE.delays[0])
    worker.run_once()
    assert [_emails(p) for p in peer.find("person")] == [["rae@example.com"]]
    assert _rows(ctx, connector_outbox) == []
    outcomes = [a.outcome for a in _rows(ctx, connector_audit, field=None)]
    assert outcomes == ["failed", "failed", "written"]  # the 429, the 5xx, then written


def test_the_two_second_window_stops_a_batch_midway_and_the_rest_waits_the_penalty(
    ctx: AppContext,
    processor: EventProcessor,
    peer: PipedrivePeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "w1", email="wes@example.com")
    identify(ctx, processor, "w2", email="wyn@example.com")
    peer.limit = 3  # a search and a create fit, the second person's create does not
    worker.run_once()
    assert peer.count("person") == 1
    [row] = _rows(ctx, connector_outbox)  # the person written is done, the other waits uncounted
    assert (row.attempts, row.state) == (0, "pending")
    assert row.next_at == clock.now() + timedelta(seconds=peer.penalty_s)  # Pipedrive's penalty after a 429
    assert peer.calls_to()[-1].status == 429
    clock.advance(timedelta(seconds=peer.penalty_s))
    peer.limit = 80
    worker.run_once()
    assert sorted(_emails(p)[0] for p in peer.find("person")) == ["wes@example.com", "wyn@example.com"]
    assert _rows(ctx, connector_outbox) == []


def test_a_5xx_midway_counts_the_attempt_of_its_record_only_not_of_the_records_never_sent(
    ctx: AppContext,
    processor: EventProcessor,
    peer: PipedrivePeer,
    worker: ConnectorWorker,
) -> None:
    """A batch stops at a 5xx after a first person was written: the person that met it has its attempt
    counted, the one after it was never sent and keeps its attempts (else, in a run with 5 % of 5xx, a
    record behind the stop again and again was dead-lettered without one failure of its own)."""
    connect(ctx, peer)
    for user, email in (("m1", "mia@example.com"), ("m2", "max@example.com"), ("m3", "mo@example.com")):
        identify(ctx, processor, user, email=email)
    peer.faults = Faults(seed=15)  # its draws: the 1st and 2nd requests pass, the 3rd is a 5xx
    peer.faults.error_rate = 0.5
    worker.run_once()
    peer.faults.clear()
    calls = peer.calls_to()
    assert [(c.method, c.fault) for c in calls] == [("GET", ""), ("POST", ""), ("GET", "5xx")]
    assert calls[2].path == "/api/v2/persons/search"  # the second person's search; the third: nothing sent
    assert peer.count("person") == 1
    rows = sorted(_rows(ctx, connector_outbox), key=lambda row: row.attempts)
    assert [(row.attempts, row.state) for row in rows] == [(0, "pending"), (1, "pending")]
    assert rows[0].last_error.startswith("not sent: Pipedrive 5")


@pytest.mark.parametrize(
    ("policy", "local_after"), [("remote", "Remote"), ("leadflow", "Local"), ("newest", "Remote")]
)
def test_pull_by_updated_since_applies_each_policy_without_echo(
    ctx: AppContext,
    processor: EventProcessor,
    peer: PipedrivePeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
    policy: str,
    local_after: str,
) -> None:
    connect(ctx, peer, direction="both", conflict={"*": policy})
    identify(ctx, processor, "p1", email="pat@example.com", firstName="Local")
    drain(worker)
    [person] = peer.find("person")
    writes = _person_writes(peer)
    clock.advance(timedelta(minutes=5))
    peer.remote_update("person", person["id"], first_name="Remote")
    clock.advance(timedelta(minutes=1))
    worker.pull_due(0)
    [listing] = peer.calls_to("GET", r"/api/v2/persons")
    assert (listing.arg("sort_by"), listing.arg("updated_since")) == ("update_time", None)
    assert by_user(ctx, "p1")["first_name"] == local_after
    drain(worker)
    if policy == "leadflow":  # leadflow's value is written back
        assert peer.find("person")[0]["first_name"] == "Local"
        assert _person_writes(peer) == writes + 1
    else:  # the remote value applied is not echoed back
        assert peer.find("person")[0]["first_name"] == "Remote"
        assert _person_writes(peer) == writes
    [read] = _rows(ctx, connector_audit, direction="pull")
    assert (read.field, read.outcome) == ("first_name", "kept" if policy == "leadflow" else "applied")
    worker.pull_due(0)
    assert peer.calls_to("GET", r"/api/v2/persons")[-1].arg("updated_since") is not None  # from the cursor
    assert len(_rows(ctx, connector_audit, direction="pull")) == 1


def test_erasure_deletes_the_person_and_is_recorded(
    ctx: AppContext, processor: EventProcessor, peer: PipedrivePeer, worker: ConnectorWorker
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "e1", email="eve@example.com", firstName="Eve")
    identify(ctx, processor, "e2", email="eli@example.com", firstName="Eli")
    drain(worker)
    [eve] = peer.find("person", email="eve@example.com")
    contacts.erase(ctx, by_user(ctx, "e1")["id"], actor="test")
    drain(worker)
    assert peer.calls_to("DELETE", rf"/api/v2/persons/{eve['id']}")
    assert [_emails(p) for p in peer.find("person")] == [["eli@example.com"]]
    [record] = _rows(ctx, connector_audit, direction="erase")
    assert (record.outcome, record.remote_id, record.new_value) == ("erased", str(eve["id"]), None)


def test_searches_are_paced_to_their_own_window_and_draw_no_429(
    peer: PipedrivePeer, clock: VirtualClock
) -> None:
    """Search has 10 requests per 2 s on top of the general 80: a backfill of new persons (a search each)
    waits for the search window instead of being refused."""
    vendor = PipedriveVendor(
        {"api_token": TOKEN},
        peer.url,
        Network(lambda url: None, 5.0, clock=clock, policy=LOCAL),
    )
    people = [
        Record(CONTACT, f"s{n}", {"email": f"s{n}@example.com"}, match=f"s{n}@example.com")
        for n in range(3 * SEARCH_LIMIT + 5)
    ]
    started = clock.monotonic()
    written = vendor.write(CONTACT, people)
    vendor.close()
    assert {w.outcome for w in written} == {"ok"}
    assert peer.count("person") == len(people)
    assert len(peer.calls_to("GET", r"/api/v2/persons/search")) == len(people)
    assert all(call.status != 429 for call in peer.calls_to())
    assert clock.monotonic() - started >= 3 * 2.0  # it waited three search windows out (virtual time)
