"""Kit (v4, httpx) against its peer over a socket, on both databases: subscribers upserted by email then
written by id, custom fields created when missing, tags by email, pulls with each conflict policy,
unsubscribes both ways, erasure as an anonymisation, the rolling limit's 429, 5xx and 422."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors import service as connectors
from leadflow.connectors.kit import BUSY_WAIT, DEFAULT_MAPPING
from leadflow.connectors.models import connector_audit, connector_links, connector_outbox
from leadflow.connectors.worker import SCHEDULE, ConnectorWorker
from leadflow.contacts import service as contacts
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Upstream
from tests.integration.connectors.conftest import drain, identify
from tests.peers.kit import API_KEY, KitPeer, Subscriber
from tests.support.contacts import by_user

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")

MAPPING = [
    *DEFAULT_MAPPING,
    {"from": "traits.tags", "to": "tags"},
    {"from": "traits.badge_name", "to": "Badge Name"},
]
FAST = {"rate": 1000, "burst": 1000}


@pytest.fixture
def peer(clock: VirtualClock) -> Iterator[KitPeer]:
    with KitPeer(clock=clock.monotonic, now=clock.now) as running:
        yield running


def connect(ctx: AppContext, peer: KitPeer, **settings: Any) -> str:
    values = {
        "vendor": "kit",
        "name": "Kit",
        "credentials": {"api_key": API_KEY},
        "host": peer.url,
        "mapping": MAPPING,
        "limits": FAST,
    }
    return str(connectors.create(ctx, {**values, **settings}, actor="test")["id"])


def _rows(ctx: AppContext, table: sa.Table, **where: Any) -> list[Any]:
    with ctx.db.read() as conn:
        query = sa.select(table)
        for name, value in where.items():
            query = query.where(table.c[name] == value)
        return list(conn.execute(query))


def test_subscriber_upserted_then_written_by_id_with_fields_and_tags(
    ctx: AppContext,
    processor: EventProcessor,
    peer: KitPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer)
    identify(
        ctx, processor, "u1", email="ann@example.com", firstName="Ann", badge_name="Ann A.", tags=["vip"]
    )
    drain(worker)
    first = peer.subscriber("ann@example.com")
    assert first is not None
    assert (first.first_name, first.fields, first.state) == ("Ann", {"badge_name": "Ann A."}, "active")
    assert peer.tags_of("ann@example.com") == {"vip"}  # created when missing, tagged by email
    assert peer.calls_to("POST", r"/v4/custom_fields")  # the custom field made on first use
    clock.advance(timedelta(minutes=1))
    identify(ctx, processor, "u1", email="ann.lee@example.com", badge_name="Annie")
    drain(worker)
    assert peer.count() == 1
    moved = peer.subscriber("ann.lee@example.com")
    assert moved is not None
    assert (moved.id, moved.fields["badge_name"]) == (first.id, "Annie")
    assert peer.calls_to("PUT", rf"/v4/subscribers/{first.id}")
    [link] = _rows(ctx, connector_links)
    assert link.remote_id == str(first.id)
    assert len(peer.calls_to("POST", r"/v4/custom_fields")) == 1  # cached per connector


@pytest.mark.parametrize(
    ("policy", "local_after"), [("remote", "Remote"), ("leadflow", "Local"), ("newest", "Remote")]
)
def test_pull_applies_each_conflict_policy_without_echo(
    ctx: AppContext,
    processor: EventProcessor,
    peer: KitPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
    policy: str,
    local_after: str,
) -> None:
    connect(ctx, peer, direction="both", conflict={"*": policy})
    identify(ctx, processor, "p1", email="pat@example.com", firstName="Local")
    drain(worker)
    writes = len(peer.calls_to(None, r"/v4/subscribers(/\d+)?"))
    clock.advance(timedelta(minutes=5))
    peer.change_remotely("pat@example.com", first_name="Remote")
    clock.advance(timedelta(minutes=1))
    worker.pull_due(0)
    assert by_user(ctx, "p1")["first_name"] == local_after
    reads = len(peer.calls_to("GET", r"/v4/subscribers"))
    drain(worker)
    after = len(peer.calls_to(None, r"/v4/subscribers(/\d+)?")) - reads
    remote = peer.subscriber("pat@example.com")
    assert remote is not None
    if policy == "leadflow":
        assert remote.first_name == "Local"
        assert after == writes + 1
    else:
        assert remote.first_name == "Remote"
        assert after == writes  # not echoed back
    [read] = _rows(ctx, connector_audit, direction="pull")
    assert (read.field, read.outcome) == ("first_name", "kept" if policy == "leadflow" else "applied")
    clock.advance(timedelta(minutes=1))
    worker.pull_due(0)  # read again around the cursor: nothing new
    assert len(_rows(ctx, connector_audit, direction="pull")) == 1


def test_an_unsubscribe_on_either_side_reaches_the_other(
    ctx: AppContext,
    processor: EventProcessor,
    peer: KitPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer, direction="both", conflict={"*": "leadflow"})
    identify(ctx, processor, "s1", email="sam@example.com")
    identify(ctx, processor, "s2", email="sue@example.com")
    drain(worker)
    clock.advance(timedelta(minutes=1))
    patch = contacts.ContactPatch(subscription_status="unsubscribed")
    contacts.patch(ctx, by_user(ctx, "s1")["id"], patch, actor="test")
    drain(worker)
    assert peer.subscriber("sam@example.com").state == "cancelled"  # type: ignore[union-attr]
    clock.advance(timedelta(minutes=1))
    peer.change_remotely("sue@example.com", state="cancelled")
    clock.advance(timedelta(minutes=1))
    worker.pull_due(0)
    assert by_user(ctx, "s2")["subscription_status"] == "unsubscribed"  # even though leadflow wins
    drain(worker)
    assert peer.subscriber("sue@example.com").state == "cancelled"  # type: ignore[union-attr]
    assert _rows(ctx, connector_outbox) == []
    identify(ctx, processor, "s3", email="sid@example.com")  # unsubscribed before Kit ever saw him
    contacts.patch(ctx, by_user(ctx, "s3")["id"], patch, actor="test")
    drain(worker)
    assert peer.subscriber("sid@example.com").state == "cancelled"  # type: ignore[union-attr]
    created = peer.calls_to("POST", r"/v4/subscribers")[-1].json()
    assert (created["email_address"], created["state"]) == ("sid@example.com", "inactive")


def test_erasure_anonymises_and_unsubscribes_and_is_recorded_as_an_anonymisation(
    ctx: AppContext, processor: EventProcessor, peer: KitPeer, worker: ConnectorWorker
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "e1", email="eve@example.com", firstName="Eve", badge_name="Eve E.")
    drain(worker)
    remote = peer.subscriber("eve@example.com")
    assert remote is not None
    contacts.erase(ctx, by_user(ctx, "e1")["id"], actor="test")
    drain(worker)
    assert peer.subscriber("eve@example.com") is None
    with peer.lock:
        anonymous = peer.subscribers[remote.id]
    assert anonymous.email_address == f"erased-{remote.id}@anonymised.invalid"
    assert (anonymous.first_name, anonymous.fields["badge_name"], anonymous.state) == ("", None, "cancelled")
    [record] = _rows(ctx, connector_audit, direction="erase")
    assert (record.outcome, record.remote_id) == ("erased", str(remote.id))
    assert record.detail.startswith("anonymised")


def test_the_rolling_limit_429_is_waited_uncounted_5xx_retried_and_422_fails_with_kits_message(
    ctx: AppContext,
    processor: EventProcessor,
    peer: KitPeer,
    worker: ConnectorWorker,
    clock: VirtualClock,
) -> None:
    connect(ctx, peer, mapping=DEFAULT_MAPPING)
    peer.windows["key"].limit = 1  # the rolling window full after one request
    identify(ctx, processor, "r1", email="rae@example.com")
    identify(ctx, processor, "r2", email="roy@example.com")
    worker.run_once()
    rows = _rows(ctx, connector_outbox)
    assert [(r.attempts, r.next_at) for r in rows] == [(0, clock.now() + BUSY_WAIT)]
    assert "429" in rows[0].last_error
    peer.windows["key"].limit = 120
    clock.advance(timedelta(seconds=60))
    peer.faults.error_rate = 1.0
    worker.run_once()
    [row] = _rows(ctx, connector_outbox)
    assert (row.attempts, row.next_at) == (1, clock.now() + SCHEDULE.delays[0])
    peer.faults.clear()
    clock.advance(SCHEDULE.delays[0])
    worker.run_once()
    assert peer.count() == 2
    assert _rows(ctx, connector_outbox) == []
    clock.advance(timedelta(minutes=1))
    with peer.lock:  # an address Kit already holds for someone leadflow does not know
        peer.subscribers[999] = Subscriber(999, "kim@example.com", None, "active", clock.now(), clock.now())
    identify(ctx, processor, "r2", email="kim@example.com")
    drain(worker)
    [dead] = _rows(ctx, connector_outbox)
    assert dead.state == "dead"
    assert "Kit 422: Email address has already been taken" in dead.last_error


def test_connection_answers_ok_and_a_wrong_key_is_refused_without_showing_it(
    ctx: AppContext, peer: KitPeer
) -> None:
    assert connectors.test_connection(ctx, connect(ctx, peer))["ok"] is True
    wrong = connect(ctx, peer, credentials={"api_key": "wrong-secret"})
    with pytest.raises(Upstream) as refused:
        connectors.test_connection(ctx, wrong)
    assert refused.value.code == "vendor_refused"
    assert "401" in refused.value.message
    assert "wrong-secret" not in refused.value.message
