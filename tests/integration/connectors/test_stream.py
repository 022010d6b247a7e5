"""The worker's passes back to back (:meth:`ConnectorWorker.stream`), on both databases: the next pass is
claimed and its first batch read while the previous pass's last batch is at the vendor, and nothing of
the one-pass guarantees is lost (every record once, a company two passes share created once, rows of a
pass claimed ahead given back when the stream fails)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors import config
from leadflow.connectors.models import connector_audit, connector_outbox
from leadflow.connectors.vendor import Record, Vendor, Written
from leadflow.connectors.worker import ConnectorWorker, Prepared
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import connect
from tests.peers.hubspot import HubSpotPeer
from tests.support.events import send

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")
COMPANIES = r"/crm/v3/objects/companies/batch/.*"


class Paused:
    """A vendor whose first write waits (at most 30 s) for the worker's second claim ahead: a write
    that sees it has overlapped the next pass's claim and first read."""

    def __init__(self, inner: Vendor, claimed: threading.Event, fail: bool = False) -> None:
        self.inner = inner
        self.claimed = claimed
        self.fail = fail
        self.overlapped: bool | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, kind: str, records: Sequence[Record]) -> list[Written]:
        if self.overlapped is None:
            self.overlapped = self.claimed.wait(30)
            if self.fail:
                raise RuntimeError("the worker's own bug")
        return self.inner.write(kind, records)


class Watched(ConnectorWorker):
    def __init__(self, ctx: AppContext, *, fail: bool = False) -> None:
        super().__init__(ctx, rand=lambda: 0.5)
        self.claims = 0
        self.claimed = threading.Event()
        self.fail = fail
        self.paused: Paused | None = None

    def vendor(self, connector: config.Connector) -> Vendor:
        made = super().vendor(connector)
        if self.paused is None:
            self.paused = Paused(made, self.claimed, self.fail)
            self._vendors[connector.id] = (connector.updated_at, self.paused)  # type: ignore[assignment]
        return self._vendors[connector.id][1]

    def _claim_ahead(self, limit: int) -> Prepared:
        prepared = super()._claim_ahead(limit)
        self.claims += 1
        if self.claims == 2:
            self.claimed.set()
        return prepared


def _people_of_one_company(ctx: AppContext, processor: EventProcessor, count: int) -> None:
    events: list[dict[str, Any]] = []
    for n in range(count):
        user = f"a{n}"
        events.append(
            {
                "type": "identify",
                "userId": user,
                "traits": {"email": f"{user}@example.com"},
                "messageId": user,
            }
        )
        traits = {"name": "Acme", "domain": "acme.example"}
        events.append(
            {"type": "group", "userId": user, "groupId": "acme", "traits": traits, "messageId": f"{user}g"}
        )
    send(ctx, *events)
    processor.drain()


def _outbox(ctx: AppContext) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(connector_outbox)))


def test_the_next_pass_is_claimed_while_a_batch_is_at_the_vendor_and_a_shared_company_made_once(
    ctx: AppContext, processor: EventProcessor, peer: HubSpotPeer
) -> None:
    # the ~11 requests go at one instant of the test's clock: a window of 1,000 is spread in parts of 100
    # (HubSpot's 100 would be parts of 10, and the last pass would wait for the next part)
    connect(ctx, peer, objects=["contact", "company"], limits={"batch": 1, "burst": 1000})
    _people_of_one_company(ctx, processor, 3)
    worker = Watched(ctx)
    try:
        assert worker.stream(1, lambda: True) == 3  # three passes of one row each
    finally:
        worker.close()
    assert worker.paused is not None
    assert worker.paused.overlapped  # pass 2 was claimed and read while pass 1's batch was at the vendor
    assert len(peer.records("contacts")) == 3
    # pass 2 was read before pass 1's record saved Acme's link: carried over, not written again (HubSpot
    # upserts companies by leadflow's id, so a second write would not show in its records)
    [company] = peer.records("companies")
    assert len(peer.calls_to("POST", COMPANIES)) == 1
    for contact in peer.records("contacts"):
        assert peer.associated("contacts", contact["id"], "companies") == [company["id"]]
    assert _outbox(ctx) == []
    with ctx.db.read() as conn:
        outcomes = conn.execute(
            sa.select(connector_audit.c.outcome).where(connector_audit.c.field.is_(None))
        ).scalars()
        assert sorted(outcomes) == ["written"] * 3


def test_a_stream_that_fails_gives_back_the_pass_it_claimed_ahead(
    ctx: AppContext, processor: EventProcessor, peer: HubSpotPeer
) -> None:
    connect(ctx, peer, objects=["contact"], limits={"batch": 1})
    _people_of_one_company(ctx, processor, 2)
    worker = Watched(ctx, fail=True)
    try:
        with pytest.raises(RuntimeError):
            worker.stream(1, lambda: True)
    finally:
        worker.close()
    rows = sorted(_outbox(ctx), key=lambda row: row.leased_until is None)
    assert len(rows) == 2
    assert rows[0].leased_until is not None  # the pass that failed: left to its lease, as after a crash
    assert rows[1].leased_until is None  # the pass claimed ahead: due again at once
    assert peer.records("contacts") == []
