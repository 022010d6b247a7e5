"""The connector worker: drains the sync outbox into the vendors, paced, retried, audited.

A pass (:meth:`ConnectorWorker.run_once`):

1. **Claim** up to ``limit`` due rows in one statement (``UPDATE … WHERE id = ANY(ARRAY(SELECT … FOR UPDATE
   SKIP LOCKED)) RETURNING`` on PostgreSQL, so several workers share the work; SQLite has one writer),
   moving ``next_at`` to the lease's end (:data:`LEASE`). A claim counts no attempt: an attempt counts
   when a request carrying the row was sent (:mod:`leadflow.connectors.recording`). A crash leaves the
   rows to be claimed again when the lease ends: the vendor writes are idempotent (upsert by email, then
   by remote id), so a repeat creates nothing twice.
2. Per connector, its batches are read, paced by its token bucket, written and recorded, pipelined
   (:mod:`leadflow.connectors.sending`).
3. Each batch is **recorded** (:mod:`leadflow.connectors.recording`); a failed row is due again after
   :data:`SCHEDULE` (exponential, ±10 % jitter), dead after its last step.

The worker's loop runs passes back to back (:meth:`ConnectorWorker.stream`): the next pass is claimed, and
its first batch read, on a helper thread while the previous pass's last batch is at the vendor, so a
backfill's vendor calls follow each other with no database work between them (a vendor whose batch is a
whole pass — Mailchimp's 500 — otherwise waits for a claim, a read and a record every pass). A stream
ends when a claim finds nothing due, when the worker is stopped, or after ``scheduler_interval`` seconds so
the pulls run on time (a pull never overlaps a pass: a batch read before a pulled change was applied would
write the old value back). :meth:`ConnectorWorker.run_once` is one pass on its own, everything recorded
when it returns.

Erasure rows call the vendor's GDPR delete and leave an audit row holding no value.

Round trips to PostgreSQL per pass: the claim (1), the connectors (1); per batch of contacts: the plan's
reads (one per source, no transaction) and the record (1 statement when nothing failed). Pinned by
``tests/integration/connectors/test_connectors_round_trips.py``.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from leadflow.connectors import config, pull, queries, registry
from leadflow.connectors.models import connector_links, connector_outbox
from leadflow.connectors.outbox import CHANNEL
from leadflow.connectors.recording import Claimed, Fate
from leadflow.connectors.sending import ORDER, Read, Sender, by_lease, contact_batches
from leadflow.connectors.vendor import Network, Vendor, VendorError, window_of
from leadflow.kernel import netguard
from leadflow.kernel.clock import Clock
from leadflow.kernel.context import AppContext
from leadflow.kernel.netpolicy import Policy
from leadflow.kernel.queue_upkeep import QueueStatistics
from leadflow.kernel.ratelimit import Pace, TokenBucket, WindowLog
from leadflow.kernel.retry import RetrySchedule
from leadflow.kernel.worker_loop import WorkerLoop

log = logging.getLogger(__name__)

SCHEDULE = RetrySchedule(
    tuple(timedelta(seconds=s) for s in (5, 30, 120, 600, 1800, 3600, 7200, 14_400)),
    retry_after_cap=timedelta(days=1),
    jitter=0.1,
)
LEASE = timedelta(minutes=5)  # longer than a batch's calls can take (30 s timeout each)
OWNERS_TTL = 600.0  # seconds an owners list is trusted
MAX_PAUSE = 60.0
WINDOW_MARGIN = 0.25  # seconds a fixed-window log adds to the vendor's window: the request's way there
WINDOW_SPREAD = 10  # a window's requests go in this many parts of it (HubSpot: 10 in any 1.025 s)
TIMEOUT = 30.0

PASS = 500  # rows a pass claims
STATISTICS_EVERY = 10.0  # seconds between two looks at the outbox's and the links' statistics (PostgreSQL)


@dataclass
class Prepared:
    """A pass claimed ahead: its rows by connector (``None``: a connector gone or inactive) and its first
    contact batch read (``first``: the connector's id, the vendor it was read for, the read)."""

    rows: list[Claimed]
    groups: list[tuple[config.Connector | None, list[Claimed]]] = field(default_factory=list)
    first: tuple[str, Vendor, Read] | None = None


__all__ = ["LEASE", "ORDER", "SCHEDULE", "Claimed", "ConnectorWorker", "Fate", "network_check", "network_of"]


def network_check(settings: Any) -> Callable[[str], None]:
    """The cheap up-front half of the network guard: a URL whose host is refused by its text alone (an
    address inside the network, ``localhost``) is :class:`~leadflow.kernel.netguard.Blocked` at once,
    with no DNS lookup. A name is resolved and judged only once, at connect time, by the guard every
    vendor client connects through (:class:`~leadflow.kernel.netguard.GuardedTransport` for ``httpx``,
    :mod:`leadflow.kernel.netguard_urllib3` for HubSpot and Salesforce), which then connects to the
    address it checked, so a name rebound between a lookup and the connection cannot get through;
    resolving here as well only doubled the lookups of every call (``LEADFLOW_NETWORK_ALLOW`` admits a
    local peer, as there)."""
    policy = Policy.parse(settings.network_allow)

    def check(url: str) -> None:
        refused = policy.literal_refusal(urlsplit(url).hostname or "")
        if refused is not None:
            raise netguard.Blocked(refused)

    return check


def network_of(settings: Any, timeout: float, clock: Clock, ca_file: str | None = None) -> Network:
    """What a vendor client gets, for the worker and the API alike: the network guard, the timeout, the
    CA bundle (``ca_file``, else the ``connectors_ca_file`` setting, else the system's) and the clock."""
    return Network(
        network_check(settings),
        timeout,
        ca_file or settings.connectors_ca_file or None,
        clock,
        policy=Policy.parse(settings.network_allow),
    )


class ConnectorWorker(Sender):
    """Drains the outbox (:meth:`run_once`) and pulls remote changes (:meth:`pull_due`)."""

    def __init__(
        self, ctx: AppContext, *, ca_file: str | None = None, rand: Callable[[], float] | None = None
    ):
        self.ctx = ctx
        self.network = network_of(ctx.settings, TIMEOUT, ctx.clock, ca_file)
        self._vendors: dict[str, tuple[datetime, Vendor]] = {}
        self._buckets: dict[str, Pace] = {}
        self._owners: dict[str, tuple[float, dict[str, str]]] = {}
        self._rand = rand
        self._pulled_at: dict[str, float] = {}
        self._queue_statistics = QueueStatistics((connector_outbox, connector_links), STATISTICS_EVERY)
        self._recording = []
        self._fresh = {}
        self._ticks = itertools.count()
        self._stop: threading.Event | None = None
        self.pass_rows = PASS

    def close(self) -> None:
        self._stop_helpers()
        for _, vendor in self._vendors.values():
            vendor.close()
        self._vendors.clear()

    # --- vendors, buckets, owners ---------------------------------------------------------------------

    def vendor(self, connector: config.Connector) -> Vendor:
        held = self._vendors.get(connector.id)
        if held is not None and held[0] == connector.updated_at:
            return held[1]
        if held is not None:
            held[1].close()
        made = registry.factory(connector.vendor).make(
            connector.credentials, connector.host, self.network, connector.options
        )
        self._vendors[connector.id] = (connector.updated_at, made)
        return made

    def bucket(self, connector: config.Connector, vendor: Vendor) -> Pace:
        """The connector's pace: a token bucket at the vendor's ``rate`` with its ``burst``, or, for a
        vendor that counts its limit in fixed windows (:func:`~leadflow.connectors.vendor.window_of`:
        HubSpot's 100 requests per 10 s), a :class:`~leadflow.kernel.ratelimit.WindowLog` of ``burst``
        requests per window (plus :data:`WINDOW_MARGIN`), which never lets more than the limit into one
        window, spread over it in :data:`WINDOW_SPREAD` parts (a change behind a backfill waits for the
        next part, ~1 s for HubSpot, not for the next window; a window of fewer than two requests a part
        is not spread). The connector's ``limits`` (``rate``, ``burst``, ``window``) override the
        vendor's."""
        now = self.ctx.clock.monotonic()
        rate = float(connector.limits.get("rate", vendor.rate))
        size = float(connector.limits.get("burst", vendor.burst))
        window = float(connector.limits.get("window", window_of(vendor)))
        found = self._buckets.get(connector.id)
        if window > 0:
            span = window + WINDOW_MARGIN
            if not isinstance(found, WindowLog) or found.size != size or found.span != span:
                spread = round(size / WINDOW_SPREAD) if size >= 2 * WINDOW_SPREAD else None
                found = self._buckets[connector.id] = WindowLog(size, span, now, spread=spread)
        elif not isinstance(found, TokenBucket) or found.rate != rate or found.size != size:
            found = self._buckets[connector.id] = TokenBucket(rate, size, now)
        found.refill(now)
        return found

    def _buckets_of(self, connector_id: str) -> Pace | None:
        return self._buckets.get(connector_id)

    def _follow(self, bucket: Pace, vendor: Vendor) -> None:
        """Lower the bucket to what the vendor says remains of its window."""
        seen = vendor.rate_seen
        if seen is not None and seen.remaining is not None:
            bucket.tokens = min(bucket.tokens, float(seen.remaining))

    def _owners_at_hand(self, connector: config.Connector) -> dict[str, str] | None:
        """The vendor's owners by email if read less than :data:`OWNERS_TTL` seconds ago, else None."""
        held = self._owners.get(connector.id)
        if held is not None and self.ctx.clock.monotonic() - held[0] < OWNERS_TTL:
            return held[1]
        return None

    def owners(self, connector: config.Connector, vendor: Vendor) -> dict[str, str]:
        """The vendor's owners by email, read again every :data:`OWNERS_TTL` seconds (a token each time)
        and only when a batch has a contact whose owner the mapping writes."""
        at_hand = self._owners_at_hand(connector)
        if at_hand is not None:
            return at_hand
        now = self.ctx.clock.monotonic()
        bucket = self.bucket(connector, vendor)
        bucket.tokens = max(0.0, bucket.tokens - 1)
        found = vendor.owners()
        self._owners[connector.id] = (now, found)
        return found

    def _lease(self) -> timedelta:
        return LEASE  # read at each use: the chaos tests shorten it

    def _due(self, now: datetime, attempts: int, fate: Fate) -> datetime | None:
        if fate.uncount:
            return now + (fate.retry_after or timedelta(seconds=1))
        if self._rand is None:
            return SCHEDULE.next_due(now, attempts, fate.retry_after)
        return SCHEDULE.next_due(now, attempts, fate.retry_after, rand=self._rand)

    # --- a pass ------------------------------------------------------------------------------------------

    def claim(self, limit: int) -> list[Claimed]:
        """Claim and lease up to ``limit`` due rows, oldest due first (one statement)."""
        now = self.ctx.clock.now()
        until = now + self._lease()
        with self._single(write=True) as conn:
            rows = sorted(
                conn.execute(queries.claim(conn.dialect.name, now, limit, until)), key=lambda r: r.id
            )
        return [
            Claimed(
                r.id,
                r.connector_id,
                r.kind,
                r.local_id,
                r.contact_id,
                r.payload,
                r.version,
                r.attempts,
                r.enqueued_at,
                until,
            )
            for r in rows
        ]

    def run_once(self, limit: int | None = None) -> int:
        """One pass; how many rows it claimed (all of them recorded when it returns)."""
        _ = self.ctx.secret_key  # read outside any transaction
        return self.work(self.claim(self.pass_rows if limit is None else limit))

    def work(self, batch: list[Claimed]) -> int:
        """Write what :meth:`claim` gave, connector by connector; how many rows that was."""
        try:
            self._pass(self._prepare(batch))
        finally:
            self._wait_records(all_of_them=True)
        return len(batch)

    def stream(self, limit: int, more: Callable[[], bool]) -> int:
        """Passes of ``limit`` rows back to back, each claimed and its first batch read while the one
        before finishes (see the module doc), while ``more()`` and a claim finds rows; how many rows were
        claimed. Everything is recorded when it returns."""
        _ = self.ctx.secret_key
        self._statistics()
        helpers = self._helpers()
        ahead: Future[Prepared] | None = helpers.submit(self._claim_ahead, limit)
        total = 0
        try:
            while ahead is not None:
                prepared, ahead = ahead.result(), None
                if not prepared.rows:
                    break
                total += len(prepared.rows)

                def next_pass() -> None:
                    nonlocal ahead
                    if ahead is None and more():
                        ahead = helpers.submit(self._claim_ahead, limit)

                self._pass(prepared, next_pass)
                next_pass()  # when the pass ended on other work than a contact batch
                self._wait_records(all_of_them=False)
        finally:
            if ahead is not None:  # a failure left a pass claimed: its rows are due again at once
                self._unclaim(ahead)
            self._wait_records(all_of_them=True)
        return total

    def _statistics(self) -> None:
        """The outbox and the links analysed when a backfill changed them faster than autovacuum
        follows (:class:`leadflow.kernel.queue_upkeep.QueueStatistics`): otherwise a claim sorted
        the whole backlog on every pass."""
        analysed = self._queue_statistics.refresh(self.ctx.db, self.ctx.clock.monotonic())
        if analysed:
            log.info("analysed %s: their statistics were stale", ", ".join(analysed))

    def _claim_ahead(self, limit: int) -> Prepared:
        return self._prepare(self.claim(limit), read_first=True)

    def _prepare(self, batch: list[Claimed], *, read_first: bool = False) -> Prepared:
        """The claimed rows by connector (one read of the connectors) and, with ``read_first``, the
        first connector's first contact batch read when its vendor client is already made (made only on
        the worker's own thread)."""
        prepared = Prepared(batch)
        if not batch:
            return prepared
        by_connector: dict[str, list[Claimed]] = defaultdict(list)
        for item in batch:
            by_connector[item.connector_id].append(item)
        with self._single(write=False) as conn:
            found = {row.id: row for row in conn.execute(queries.connectors_of_ids(sorted(by_connector)))}
        for connector_id, items in by_connector.items():
            row = found.get(connector_id)
            opened = config.opened(self.ctx, row) if row is not None and row.active else None
            prepared.groups.append((opened, items))
        connector, items = prepared.groups[0]
        held = self._vendors.get(connector.id) if connector is not None and read_first else None
        if connector is not None and held is not None and held[0] == connector.updated_at:
            batches = contact_batches(connector, held[1], items)
            if batches:
                prepared.first = (connector.id, held[1], self._read(connector, held[1], batches[0]))
        return prepared

    def _pass(self, prepared: Prepared, ahead: Callable[[], None] | None = None) -> None:
        """Write a prepared pass, connector by connector; ``ahead`` goes to the last connector's
        contact batches (called when its last batch is read)."""
        last = len(prepared.groups) - 1
        for index, (connector, items) in enumerate(prepared.groups):
            if connector is None:
                self._settle(None, items, {item.id: Fate(done=True) for item in items}, [])
                continue
            first = prepared.first
            pre = (first[1], first[2]) if first is not None and first[0] == connector.id else None
            self._connector(connector, items, first=pre, ahead=ahead if index == last else None)

    def _unclaim(self, ahead: Future[Prepared]) -> None:
        try:
            prepared = ahead.result()
        except Exception:  # the claim itself failed: nothing is held (or the lease runs out)
            return
        if not prepared.rows:
            return
        with self.ctx.db.write() as conn:
            for held, items in by_lease(prepared.rows).items():
                conn.execute(queries.unclaim([item.id for item in items], held, self.ctx.clock.now()))

    # --- pull and the loop -----------------------------------------------------------------------------

    def pull_due(self, every: float) -> int:
        """Pull every connector syncing both ways whose last pull is ``every`` seconds old."""
        now = self.ctx.clock.monotonic()
        with self.ctx.db.read() as conn:
            rows = list(conn.execute(queries.ACTIVE_CONNECTORS))
        applied = 0
        for row in rows:
            if row.direction != "both" or now - self._pulled_at.get(row.id, -math.inf) < every:
                continue
            self._pulled_at[row.id] = now
            connector = config.opened(self.ctx, row)
            try:
                applied += pull.pull(self.ctx, connector, self.vendor(connector))
            except (VendorError, netguard.Blocked) as exc:
                log.warning("connector %s: pull failed: %s", connector.id, exc)
        return applied

    def next_due(self) -> datetime | None:
        with self.ctx.db.read() as conn:
            due: datetime | None = conn.execute(queries.NEXT_DUE).scalar()
        return due

    def _idle(self, poll: float) -> float:
        due = self.next_due()
        if due is None:
            return poll
        return min(poll, max(0.0, (due - self.ctx.clock.now()).total_seconds()))

    def _job(self) -> int:
        every = self.ctx.settings.scheduler_interval
        until = self.ctx.clock.monotonic() + every
        stop = self._stop

        def more() -> bool:
            return not (stop is not None and stop.is_set()) and self.ctx.clock.monotonic() < until

        done = self.stream(self.pass_rows, more)
        self.pull_due(every)
        return done

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        poll = self.ctx.settings.worker_poll_interval
        try:
            WorkerLoop(
                "connector sync",
                self._job,
                CHANNEL,
                poll=poll,
                backoff=poll,
                max_backoff=MAX_PAUSE,
                idle=lambda: self._idle(poll),
                logger=log,
            ).run(self.ctx.signals, stop)
        finally:
            self.close()
