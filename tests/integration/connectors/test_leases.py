"""The lease guards the record too, on both databases: a worker whose pass outlived its lease (its vendor
call was slow) and whose rows another worker claimed since neither deletes them nor releases them under
that worker; it leaves them, as it leaves a row it could not renew before sending."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors import config
from leadflow.connectors.models import connector_outbox
from leadflow.connectors.recording import Claimed
from leadflow.connectors.vendor import Record, Vendor, Written
from leadflow.connectors.worker import LEASE, ConnectorWorker
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import connect, identify
from tests.peers.hubspot import HubSpotPeer

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")


class Slow:
    """A vendor whose write outlives the lease: the clock moves past it and ``then`` runs (another
    worker claims the rows, a change arrives) before the write goes out."""

    def __init__(self, inner: Vendor, clock: VirtualClock, then: Any) -> None:
        self.inner, self.clock, self.then = inner, clock, then

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def write(self, kind: str, records: Sequence[Record]) -> list[Written]:
        self.clock.advance(LEASE + timedelta(seconds=1))
        self.then()
        return self.inner.write(kind, records)


class Late(ConnectorWorker):
    def __init__(self, ctx: AppContext, clock: VirtualClock, then: Any) -> None:
        super().__init__(ctx, rand=lambda: 0.5)
        self.clock, self.then = clock, then

    def vendor(self, connector: config.Connector) -> Vendor:
        return Slow(super().vendor(connector), self.clock, self.then)  # type: ignore[return-value]


def _outbox(ctx: AppContext) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(connector_outbox)))


@pytest.mark.parametrize("changed", [False, True], ids=["same version", "newer version"])
def test_a_record_after_the_lease_ran_out_leaves_the_rows_to_the_worker_that_took_them_over(
    ctx: AppContext, processor: EventProcessor, peer: HubSpotPeer, clock: VirtualClock, changed: bool
) -> None:
    connect(ctx, peer)
    identify(ctx, processor, "u1", email="p1@example.com", firstName="Pat")
    other = ConnectorWorker(ctx, rand=lambda: 0.5)
    taken: list[Claimed] = []

    def meanwhile() -> None:
        if changed:  # a newer change while the late write is out; the other worker claims it
            identify(ctx, processor, "u1", firstName="Patricia")
        taken.extend(other.claim(500))

    late = Late(ctx, clock, meanwhile)
    try:
        assert late.run_once() == 1
        assert len(taken) == 1
        [row] = _outbox(ctx)  # neither deleted nor released under the other worker
        assert row.leased_until == taken[0].leased_until
        assert other.work(taken) == 1
    finally:
        late.close()
        other.close()
    assert _outbox(ctx) == []
    [remote] = peer.records()
    assert remote["properties"]["firstname"] == ("Patricia" if changed else "Pat")
