"""Mailchimp (Marketing v3, httpx) against its peer over a socket, on both databases: members by
subscriber hash, merge fields and tags, an email change on the old hash, batch subscribe for backfills,
pulls with each conflict policy, unsubscribes both ways, permanent delete, 429 and 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors import service as connectors
from leadflow.connectors.mailchimp import BATCH_MIN, BUSY_WAIT, DEFAULT_MAPPING
from leadflow.connectors.models import connector_audit, connector_links, connector_outbox
from leadflow.connectors.worker import SCHEDULE, ConnectorWorker
from leadflow.contacts import service as contacts
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Upstream
from leadflow.messaging.models import suppressions
from tests.integration.connectors.conftest import drain, identify
from tests.peers.mailchimp import API_KEY, LIST_ID, MailchimpPeer, subscriber_hash
from tests.support.contacts import by_user

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")

MAPPING = [*DEFAULT_MAPPING, {"from": "traits.tags", "to": "tags"}, {"from": "traits.plan", "to": "PLAN"}]


@pytest.fixture
def peer(clock: VirtualClock) -> Iterator[MailchimpPeer]:
    with MailchimpPeer(clock=clock.monotonic, now=clock.now) as running:
        yield running


def connect(ctx: AppContext, peer: MailchimpPeer, **settings: Any) -> str:
    values = {
        "vendor": "mailchimp",
        "name": "Mailchimp",
        "credentials": {"api_key": API_KEY, "list_id": LIST_ID},
        "host": peer.url,
        "mapping": MAPPING,
    }
    return str(connectors.create(ctx, {**values, **settings}, actor="test")["id"])


def _rows(ctx: AppContext, table: sa.Table, **where: Any) -> list[Any]:
    with ctx.db.read() as conn:
        query = sa.select(table)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        return list(conn.execute(query))


def _unsubscribe(ctx: AppContext, user: str) -> None:
    patch = contacts.ContactPatch(subscription_status="unsubscribed")
    contacts.patch(ctx, by_user(ctx, user)["id"], patch, actor="test")


def test_member_upserted_by_hash_then_email_change_moves_the_same_member(
    ctx: AppContext,
    processor: EventProcessor,
    peer: MailchimpPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "u1", email="Ann@Example.com", firstName="Ann", plan="pro", tags=["vip"])
    drain(worker)
    member = peer.member("ann@example.com")
    assert member is not None
    assert (member.status, member.merge_fields["FNAME"], member.merge_fields["PLAN"]) == (
        "subscribed",
        "Ann",
        "pro",
    )  # PLAN: a merge field the audience lacked, created
    assert set(member.tags) == {"vip"}
    old = subscriber_hash("ann@example.com")
    assert peer.calls_to("PUT", rf"/3\.0/lists/{LIST_ID}/members/{old}")
    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "u1", email="ann.lee@example.com", lastName="Lee")
    drain(worker)
    assert peer.count() == 1
    moved = peer.member("ann.lee@example.com")
    assert moved is not None
    assert (moved.web_id, moved.merge_fields["LNAME"]) == (member.web_id, "Lee")
    assert len(peer.calls_to("PUT", rf"/3\.0/lists/{LIST_ID}/members/{old}")) == 2  # the OLD hash
    [link] = _rows(ctx, connector_links)
    assert link.remote_id == subscriber_hash("ann.lee@example.com")  # the link follows the member
    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "u1", firstName="Annie")  # later writes go by the new hash
    drain(worker)
    assert peer.member("ann.lee@example.com").merge_fields["FNAME"] == "Annie"  # type: ignore[union-attr]
    assert peer.count() == 1


def test_a_backfill_is_one_batch_subscribe_with_errors_per_member(
    ctx: AppContext, processor: EventProcessor, peer: MailchimpPeer, worker: ConnectorWorker
) -> None:
    with peer.lock:
        audience = peer.audiences[LIST_ID]
        peer._add(audience, "b0@example.com", "subscribed", {})  # already a member: updated, tagged
        audience.forgotten.add(subscriber_hash("b1@example.com"))  # deleted for good: refused
    connect(ctx, peer)
    for n in range(BATCH_MIN + 5):
        identify(ctx, processor, f"b{n}", email=f"b{n}@example.com", firstName=f"B{n}", tags=["fair"])
    drain(worker)
    assert len(peer.calls_to("POST", rf"/3\.0/lists/{LIST_ID}")) == 1
    assert peer.calls_to("PUT", rf"/3\.0/lists/{LIST_ID}/members/\w+") == []
    assert peer.count() == BATCH_MIN + 4
    assert peer.member("b0@example.com").merge_fields["FNAME"] == "B0"  # type: ignore[union-attr]
    assert set(peer.member("b0@example.com").tags) == {"fair"}  # type: ignore[union-attr]
    assert set(peer.member("b9@example.com").tags) == {"fair"}  # type: ignore[union-attr]
    assert len(_rows(ctx, connector_links)) == BATCH_MIN + 4
    [dead] = _rows(ctx, connector_outbox)
    assert dead.state == "dead"
    assert "permanently deleted" in dead.last_error


@pytest.mark.parametrize(
    ("policy", "local_after"), [("remote", "Remote"), ("leadflow", "Local"), ("newest", "Remote")]
)
def test_pull_applies_each_conflict_policy_without_echo(
    ctx: AppContext,
    processor: EventProcessor,
    peer: MailchimpPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
    policy: str,
    local_after: str,
) -> None:
    connect(ctx, peer, direction="both", conflict={"*": policy})
    identify(ctx, processor, "p1", email="pat@example.com", firstName="Local")
    drain(worker)
    puts = len(peer.calls_to("PUT"))
    clock.advance(timedelta(minutes=5))
    peer.change_remotely("pat@example.com", FNAME="Remote")
    clock.advance(timedelta(minutes=1))
    worker.pull_due(0)
    assert by_user(ctx, "p1")["first_name"] == local_after
    drain(worker)
    member = peer.member("pat@example.com")
    assert member is not None
    if policy == "leadflow":
        assert member.merge_fields["FNAME"] == "Local"
        assert len(peer.calls_to("PUT")) == puts + 1
    else:
        assert member.merge_fields["FNAME"] == "Remote"
        assert len(peer.calls_to("PUT")) == puts  # not echoed back
    [read] = _rows(ctx, connector_audit, direction="pull")
    assert (read.field, read.outcome) == ("FNAME", "kept" if policy == "leadflow" else "applied")
    assert peer.calls_to("GET", rf"/3\.0/lists/{LIST_ID}/members")[0].arg("since_last_changed") is None


def test_an_unsubscribe_on_either_side_reaches_the_other(
    ctx: AppContext,
    processor: EventProcessor,
    peer: MailchimpPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer, direction="both", conflict={"*": "leadflow"})
    identify(ctx, processor, "s1", email="sam@example.com", firstName="Sam")
    identify(ctx, processor, "s2", email="sue@example.com", firstName="Sue")
    drain(worker)
    clock.advance(timedelta(minutes=1))
    _unsubscribe(ctx, "s1")  # leadflow → Mailchimp
    drain(worker)
    assert peer.member("sam@example.com").status == "unsubscribed"  # type: ignore[union-attr]
    clock.advance(timedelta(minutes=1))
    peer.change_remotely("sue@example.com", status="unsubscribed")  # Mailchimp → leadflow
    clock.advance(timedelta(minutes=1))
    worker.pull_due(0)
    assert by_user(ctx, "s2")["subscription_status"] == "unsubscribed"  # even though leadflow wins
    drain(worker)
    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "s2", lastName="Sun")  # a later write never subscribes her again
    drain(worker)
    sue = peer.member("sue@example.com")
    assert sue is not None
    assert (sue.status, sue.merge_fields["LNAME"]) == ("unsubscribed", "Sun")
    assert _rows(ctx, connector_outbox) == []


def test_erasure_deletes_permanently_and_a_problem_answer_is_a_failure_with_its_title(
    ctx: AppContext, processor: EventProcessor, peer: MailchimpPeer, worker: ConnectorWorker
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "e1", email="eve@example.com")
    drain(worker)
    contacts.erase(ctx, by_user(ctx, "e1")["id"], actor="test")
    drain(worker)
    digest = subscriber_hash("eve@example.com")
    assert peer.calls_to("POST", rf"/3\.0/lists/{LIST_ID}/members/{digest}/actions/delete-permanent")
    assert peer.member("eve@example.com") is None
    [record] = _rows(ctx, connector_audit, direction="erase")
    assert (record.outcome, record.remote_id) == ("erased", digest)
    identify(ctx, processor, "e3", email="eve@example.com")  # Mailchimp refuses a forgotten address
    drain(worker)
    [dead] = _rows(ctx, connector_outbox)
    assert dead.state == "dead"
    assert "Forgotten Email Not Subscribed" in dead.last_error


def test_429_waits_and_5xx_is_retried_to_success(
    ctx: AppContext,
    processor: EventProcessor,
    peer: MailchimpPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "r1", email="rae@example.com")
    peer.faults.burst_429(1)
    assert worker.run_once() == 1
    [row] = _rows(ctx, connector_outbox)
    assert (row.attempts, row.next_at) == (0, clock.now() + BUSY_WAIT)  # no Retry-After from Mailchimp
    assert "429" in row.last_error
    clock.advance(BUSY_WAIT)
    peer.faults.error_rate = 1.0
    worker.run_once()
    [row] = _rows(ctx, connector_outbox)
    assert (row.attempts, row.next_at) == (1, clock.now() + SCHEDULE.delays[0])
    peer.faults.clear()
    clock.advance(SCHEDULE.delays[0])
    worker.run_once()
    assert peer.member("rae@example.com") is not None
    assert _rows(ctx, connector_outbox) == []


def test_an_address_messaging_suppresses_is_unsubscribed_in_mailchimp(
    ctx: AppContext,
    processor: EventProcessor,
    peer: MailchimpPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "h1", email="hal@example.com", firstName="Hal")
    drain(worker)
    assert peer.member("hal@example.com").status == "subscribed"  # type: ignore[union-attr]
    identify(ctx, processor, "h2", email="ida@example.com")
    drain(worker)
    with ctx.db.write() as conn:  # a hard bounce: the contact stays "subscribed", the address is not
        now = clock.now()
        conn.execute(
            sa.insert(suppressions),
            [
                {"email": "hal@example.com", "reason": "hard_bounce", "created_at": now},
                {"email": "ida@example.com", "reason": "unconfirmed", "created_at": now},  # not a refusal
            ],
        )
    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "h1", lastName="Hill")
    identify(ctx, processor, "h2", lastName="Ide")
    drain(worker)
    assert peer.member("ida@example.com").status == "subscribed"  # type: ignore[union-attr]
    member = peer.member("hal@example.com")
    assert member is not None
    assert (member.status, member.merge_fields["LNAME"]) == ("unsubscribed", "Hill")
    assert by_user(ctx, "h1")["subscription_status"] == "subscribed"


def test_connection_answers_ok_and_a_wrong_key_is_refused_without_showing_it(
    ctx: AppContext, peer: MailchimpPeer
) -> None:
    assert connectors.test_connection(ctx, connect(ctx, peer))["ok"] is True
    wrong = connect(ctx, peer, credentials={"api_key": "wrong-secret-us21", "list_id": LIST_ID})
    with pytest.raises(Upstream) as refused:
        connectors.test_connection(ctx, wrong)
    assert refused.value.code == "vendor_refused"
    assert "401" in refused.value.message
    assert "wrong-secret" not in refused.value.message
