"""The Salesforce connector: the real simple-salesforce client against the Salesforce peer over TLS, on
both databases. One peer serves the module (reset before each test) on each test's virtual clock; the
worker runs pass by pass (no sleeps)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors import config
from leadflow.connectors import service as connectors
from leadflow.connectors.models import connector_audit, connector_conflicts, connector_links, connector_outbox
from leadflow.connectors.worker import SCHEDULE, ConnectorWorker
from leadflow.contacts import service as contacts
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import activities, deals
from leadflow.crm import service as crm
from leadflow.crm.deals import DealCreate
from leadflow.crm.schemas import ActivityCreate
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import drain, identify
from tests.peers.salesforce import SESSION_ID, SalesforcePeer
from tests.support.contacts import by_user
from tests.support.events import send

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")


class _Time:
    """The running test's virtual clock (the module's peer reads its time through it)."""

    clock = VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[SalesforcePeer, type[_Time]]]:
    with SalesforcePeer(clock=lambda: _Time.clock.monotonic(), now=lambda: _Time.clock.now()) as running:
        yield running, _Time


@pytest.fixture
def peer(shared: tuple[SalesforcePeer, type[_Time]], clock: VirtualClock) -> SalesforcePeer:
    running, holder = shared
    holder.clock = clock
    running.reset()
    running.faults.clear()
    with running.lock:
        running.calls.clear()
        running.tokens = {SESSION_ID}
    return running


@pytest.fixture
def worker(ctx: AppContext, peer: SalesforcePeer) -> Iterator[ConnectorWorker]:
    made = ConnectorWorker(ctx, ca_file=peer.ca_file, rand=lambda: 0.5)
    yield made
    made.close()


def connect(
    ctx: AppContext, peer: SalesforcePeer, credentials: dict[str, Any] | None = None, **settings: Any
) -> str:
    values = {
        "vendor": "salesforce",
        "name": "Salesforce",
        "credentials": {"session_id": SESSION_ID, **(credentials or {})},
        "host": peer.url,
    }
    return str(connectors.create(ctx, {**values, **settings}, actor="test")["id"])


def _rows(ctx: AppContext, table: sa.Table, **where: Any) -> list[Any]:
    with ctx.db.read() as conn:
        query = sa.select(table)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        return list(conn.execute(query))


def _writes(peer: SalesforcePeer) -> int:
    return len(peer.calls_to("PATCH", r".*/sobjects/Lead/.*"))


def test_create_update_and_email_change_keep_one_lead(
    ctx: AppContext,
    processor: EventProcessor,
    peer: SalesforcePeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connector_id = connect(ctx, peer)
    identify(ctx, processor, "u1", email="ann@example.com", firstName="Ann")
    assert drain(worker) == 1
    [lead] = peer.find("Lead")
    assert (lead["Email"], lead["FirstName"]) == ("ann@example.com", "Ann")
    assert (lead["LastName"], lead["Company"]) == ("[not provided]", "[not provided]")  # required on create
    assert peer.calls_to("PATCH", r".*/sobjects/Lead/Email/ann%40example.com")
    seen = worker.vendor(config.load(ctx, connector_id)).rate_seen
    assert seen is not None
    assert (seen.limit, seen.remaining) == (peer.daily_limit, peer.daily_limit - peer.api_used)

    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "u1", lastName="Lee")
    drain(worker)
    assert [r["LastName"] for r in peer.find("Lead")] == ["Lee"]
    assert peer.calls_to("PATCH", rf".*/sobjects/Lead/{lead['Id']}")

    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "u1", email="ann.lee@example.com")
    drain(worker)
    [after] = peer.find("Lead")  # the same lead, written by its id
    assert (after["Id"], after["Email"]) == (lead["Id"], "ann.lee@example.com")
    [link] = _rows(ctx, connector_links)
    assert link.remote_id == lead["Id"]


def test_backlog_goes_in_collections_and_several_matches_are_conflicts_never_new_leads(
    ctx: AppContext, processor: EventProcessor, peer: SalesforcePeer, worker: ConnectorWorker
) -> None:
    for _ in range(2):  # two leads already share this email in the org
        peer.seed("Lead", LastName="Twin", Company="Old", Email="twin@example.com")
    peer.seed("Lead", LastName="Solo", Company="Old", Email="solo@example.com")
    connect(ctx, peer)
    identify(ctx, processor, "b1", email="bea@example.com", lastName="Bea")
    identify(ctx, processor, "b2", email="twin@example.com", lastName="Two")
    identify(ctx, processor, "b3", email="solo@example.com", firstName="Sol")
    drain(worker)
    first, again = peer.calls_to("PATCH", r".*/composite/sobjects/Lead/Email")  # one call for the batch
    assert len(first.json()["records"]) == 3
    # then the new lead that lacked a required field, with the placeholder (never the matched ones)
    assert [(r["Email"], r["Company"]) for r in again.json()["records"]] == [
        ("bea@example.com", "[not provided]")
    ]
    assert peer.count("Lead", Email="twin@example.com") == 2  # nothing written, nothing created
    assert [r["LastName"] for r in peer.find("Lead", Email="twin@example.com")] == ["Twin", "Twin"]
    assert peer.find("Lead", Email="solo@example.com")[0]["FirstName"] == "Sol"  # matched: updated
    assert peer.count("Lead", Email="bea@example.com") == 1
    [conflict] = _rows(ctx, connector_conflicts)
    twins = sorted(r["Id"] for r in peer.find("Lead", Email="twin@example.com"))
    assert (conflict.local_id, sorted(conflict.candidates)) == (by_user(ctx, "b2")["id"], twins)
    assert _rows(ctx, connector_outbox) == []

    # one record alone: the single upsert's 300 is the same conflict
    pair = sorted(peer.seed("Lead", LastName="Pair", Company="Old", Email="PAIR@example.com") for _ in "ab")
    identify(ctx, processor, "b4", email="pair@example.com", lastName="Four")
    drain(worker)
    assert peer.calls_to("PATCH", r".*/sobjects/Lead/Email/pair%40example.com")[0].status == 300
    assert peer.count("Lead") == 6
    conflicts = _rows(ctx, connector_conflicts, local_id=by_user(ctx, "b4")["id"])
    assert [sorted(c.candidates) for c in conflicts] == [pair]
    assert [a.outcome for a in _rows(ctx, connector_audit, local_id=by_user(ctx, "b4")["id"])] == ["conflict"]

    # a backlog of changes to leads known by id: one collection update
    identify(ctx, processor, "b1", firstName="Bea")
    identify(ctx, processor, "b3", lastName="Solo-Two")
    drain(worker)
    [update] = peer.calls_to("PATCH", r".*/composite/sobjects")
    assert sorted(r["Id"] for r in update.json()["records"]) == sorted(
        peer.find("Lead", Email=email)[0]["Id"] for email in ("bea@example.com", "solo@example.com")
    )
    assert peer.find("Lead", Email="bea@example.com")[0]["FirstName"] == "Bea"
    assert peer.find("Lead", Email="solo@example.com")[0]["LastName"] == "Solo-Two"
    assert peer.count("Lead") == 6


def test_contacts_with_accounts_opportunities_and_tasks(
    ctx: AppContext, processor: EventProcessor, peer: SalesforcePeer, worker: ConnectorWorker
) -> None:
    crm.ensure_default_pipeline(ctx)
    connect(
        ctx,
        peer,
        {"object": "Contact", "external_id": "Leadflow_Id__c"},
        objects=["contact", "company", "deal", "activity"],
    )
    identify(ctx, processor, "d1", email="dee@example.com", firstName="Dee", lastName="Do")
    send(
        ctx,
        {
            "type": "group",
            "userId": "d1",
            "groupId": "acme",
            "traits": {"name": "Acme", "industry": "Software"},
        },
    )
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
    [account] = peer.find("Account")
    [contact] = peer.find("Contact")
    [opportunity] = peer.find("Opportunity")
    [task] = peer.find("Task")
    assert (account["Name"], account["Industry"]) == ("Acme", "Software")
    assert (contact["Leadflow_Id__c"], contact["AccountId"]) == (by_user(ctx, "d1")["id"], account["Id"])
    assert (opportunity["Name"], opportunity["Amount"], opportunity["StageName"]) == (
        "Course bundle",
        490.0,
        "Prospecting",
    )
    assert opportunity["CloseDate"] == "2026-04-01"  # created + 30 days: Salesforce requires one
    assert (opportunity["AccountId"], opportunity["ContactId"]) == (account["Id"], contact["Id"])
    assert (task["Subject"], task["WhoId"], task["TaskSubtype"]) == ("Intro call", contact["Id"], "Call")
    contact_id = by_user(ctx, "d1")["id"]
    connectors.sync_now(ctx, connectors.listing(ctx, after=None, limit=1)[0]["id"], contact_id=contact_id)
    drain(worker)  # nothing is written twice
    counts = [peer.count(obj) for obj in ("Account", "Contact", "Opportunity", "Task")]
    assert counts == [1, 1, 1, 1]


def test_with_a_link_field_a_lost_answer_creates_no_object_twice(
    ctx: AppContext, processor: EventProcessor, peer: SalesforcePeer, worker: ConnectorWorker
) -> None:
    crm.ensure_default_pipeline(ctx)
    credentials = {"object": "Contact", "external_id": "Leadflow_Id__c", "link_field": "Leadflow_Id__c"}
    connector_id = connect(ctx, peer, credentials, objects=["contact", "company", "deal", "activity"])
    identify(ctx, processor, "k1", email="kim@example.com", lastName="Kim")
    send(ctx, {"type": "group", "userId": "k1", "groupId": "kco", "traits": {"name": "Kco"}})
    processor.drain()
    contact = by_user(ctx, "k1")
    deal = deals.create(
        ctx,
        DealCreate(
            title="Plan",
            email="kim@example.com",
            company_id=contact["company_id"],
            value=Decimal("90"),
            currency="EUR",
        ),
        actor="t",
    )
    activities.log(ctx, ActivityCreate(email="kim@example.com", kind="note", body="Hi"), actor="t")
    processor.drain()
    drain(worker)
    [account], [opportunity] = peer.find("Account"), peer.find("Opportunity")
    assert (account["Leadflow_Id__c"], opportunity["Leadflow_Id__c"]) == (contact["company_id"], deal.id)
    assert peer.calls_to("PATCH", r".*/composite/sobjects/(Account|Opportunity|Task)/Leadflow_Id__c")
    with ctx.db.write() as conn:  # the answers were lost before the links were kept (a crash)
        conn.execute(sa.delete(connector_links).where(connector_links.c.kind != "contact"))
    connectors.sync_now(ctx, connector_id, contact_id=contact["id"])
    drain(worker)
    assert [peer.count(obj) for obj in ("Account", "Contact", "Opportunity", "Task")] == [1, 1, 1, 1]
    assert len(_rows(ctx, connector_links)) == 4


def test_request_limit_waits_uncounted_5xx_retries_and_a_dead_session_is_dead(
    ctx: AppContext,
    processor: EventProcessor,
    peer: SalesforcePeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "r1", email="rae@example.com", lastName="Rae")
    peer.faults.burst_429(1)  # Salesforce's 403 REQUEST_LIMIT_EXCEEDED (concurrent requests)
    worker.run_once()
    [row] = _rows(ctx, connector_outbox)
    assert (row.attempts, row.state) == (0, "pending")  # the limit is not an attempt, never dead
    assert row.next_at == clock.now() + timedelta(seconds=30)
    assert "REQUEST_LIMIT_EXCEEDED" in row.last_error
    clock.advance(timedelta(seconds=29))
    assert worker.run_once() == 0
    clock.advance(timedelta(seconds=1))
    peer.faults.error_rate = 1.0
    worker.run_once()
    [row] = _rows(ctx, connector_outbox)
    assert (row.attempts, row.next_at) == (1, clock.now() + SCHEDULE.delays[0])
    peer.faults.clear()
    clock.advance(SCHEDULE.delays[0])
    worker.run_once()
    assert peer.count("Lead", Email="rae@example.com") == 1
    assert _rows(ctx, connector_outbox) == []

    peer.daily_limit = peer.api_used  # the org's daily budget is spent
    identify(ctx, processor, "r2", email="rio@example.com", lastName="Rio")
    worker.run_once()
    [row] = _rows(ctx, connector_outbox)
    assert (row.attempts, row.state, row.next_at) == (0, "pending", clock.now() + timedelta(hours=1))
    peer.daily_limit = 100_000

    with peer.lock:
        peer.tokens = {"another-session"}  # the session expired
    clock.advance(timedelta(hours=1))
    worker.run_once()
    [row] = _rows(ctx, connector_outbox)
    assert row.state == "dead"
    assert "INVALID_SESSION_ID" in row.last_error
    assert SESSION_ID not in row.last_error


@pytest.mark.parametrize(
    ("policy", "local_after"), [("remote", "Remote"), ("leadflow", "Local"), ("newest", "Remote")]
)
def test_pull_by_soql_applies_each_policy_without_echo(
    ctx: AppContext,
    processor: EventProcessor,
    peer: SalesforcePeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
    policy: str,
    local_after: str,
) -> None:
    connect(ctx, peer, direction="both", conflict={"*": policy})
    identify(ctx, processor, "p1", email="pat@example.com", firstName="Local", lastName="Pat")
    drain(worker)
    [lead] = peer.find("Lead")
    writes = _writes(peer)
    clock.advance(timedelta(minutes=5))
    peer.remote_update("Lead", lead["Id"], FirstName="Remote")
    clock.advance(timedelta(minutes=1))
    worker.pull_due(0)
    assert peer.calls_to("GET", r".*/query/?")
    assert by_user(ctx, "p1")["first_name"] == local_after
    drain(worker)
    if policy == "leadflow":  # leadflow's value is written back
        assert peer.find("Lead")[0]["FirstName"] == "Local"
        assert _writes(peer) == writes + 1
    else:  # the remote value applied is not echoed back
        assert peer.find("Lead")[0]["FirstName"] == "Remote"
        assert _writes(peer) == writes
    [read] = _rows(ctx, connector_audit, direction="pull")
    assert (read.field, read.outcome) == ("FirstName", "kept" if policy == "leadflow" else "applied")
    worker.pull_due(0)
    assert len(_rows(ctx, connector_audit, direction="pull")) == 1


def test_erasure_deletes_the_lead_and_is_recorded(
    ctx: AppContext, processor: EventProcessor, peer: SalesforcePeer, worker: ConnectorWorker
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "e1", email="eve@example.com", lastName="Eve")
    identify(ctx, processor, "e2", email="eli@example.com", lastName="Eli")
    drain(worker)
    [eve] = peer.find("Lead", Email="eve@example.com")
    contacts.erase(ctx, by_user(ctx, "e1")["id"], actor="test")
    drain(worker)
    assert peer.calls_to("DELETE", rf".*/sobjects/Lead/{eve['Id']}")
    assert [r["Email"] for r in peer.find("Lead")] == ["eli@example.com"]
    [record] = _rows(ctx, connector_audit, direction="erase")
    assert (record.outcome, record.remote_id, record.new_value) == ("erased", eve["Id"], None)


def test_without_the_peers_certificate_tls_is_refused_and_retried(
    ctx: AppContext, processor: EventProcessor, peer: SalesforcePeer
) -> None:
    untrusting = ConnectorWorker(ctx, rand=lambda: 0.5)  # production TLS: the self-signed peer is not trusted
    try:
        connect(ctx, peer)
        identify(ctx, processor, "t1", email="tia@example.com", lastName="Tia")
        untrusting.run_once()
    finally:
        untrusting.close()
    [row] = _rows(ctx, connector_outbox)
    assert (row.attempts, row.state) == (1, "pending")
    assert "unreachable: SSLError" in row.last_error
    assert peer.count("Lead") == 0


def test_the_bucket_is_charged_for_the_placeholder_resend_calls_did_not_foresee(
    ctx: AppContext, processor: EventProcessor, peer: SalesforcePeer, worker: ConnectorWorker
) -> None:
    """New Leads without a company: each collection is refused (REQUIRED_FIELD_MISSING) and sent again
    with the placeholder, two requests where calls() counted one. A bucket of 3 lets two such batches
    (4 requests) through, then the third waits; it let three (6 requests) when charged the forecast."""
    connect(ctx, peer, limits={"batch": 2, "burst": 3, "rate": 0.001})
    for n in range(6):
        identify(ctx, processor, f"p{n}", email=f"p{n}@example.com", lastName=f"L{n}")
    assert worker.run_once() == 6
    assert len(peer.calls_to("PATCH", r".*/composite/sobjects/Lead/Email")) == 4
    assert peer.count("Lead") == 4
    waiting = _rows(ctx, connector_outbox)
    assert [row.last_error for row in waiting] == ["waiting for the rate limit"] * 2
