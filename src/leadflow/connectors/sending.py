"""A connector's share of a pass sent to its vendor: batches of the vendor's size, paced, pipelined.

Per connector, per batch of the vendor's size: **read** the local records (one query per source,
:mod:`leadflow.connectors.sync`), **take tokens** from the connector's bucket (the vendor's documented
limit, lowered to what its rate headers say remains) — too few: the batch waits, no attempt spent — then
**write** companies, contacts, deals, activities in that order (later kinds are associated with the
remote ids of the earlier), then **record** (:mod:`leadflow.connectors.recording`).

**Pipelined, bounded.** The vendor calls of a connector are made one batch at a time, in order, from the
worker's own thread; the database work around them runs beside them on two helper threads, so the next
batch is read and the previous one recorded while a batch is at the vendor (one batch read ahead, one
being recorded: at most three batches of a connector in hand). When the worker runs passes back to back
(:meth:`~leadflow.connectors.worker.ConnectorWorker.stream`) the read ahead of a pass's last batch is the
*next pass*: its claim and its first batch's read, so the vendor calls
of a backfill follow each other without a gap at the end of every pass, and a batch's record may still be
running when the next pass's batches are sent.

Why this keeps every guarantee. A claimed row is leased: no pass claims it again until its record deletes
it or (a newer change came meanwhile) releases it, and that happens after its vendor call returned, so a
record never has two writes in flight and its writes reach the vendor in order. A record's own kinds (its
company, itself, its deals, its activities) go in one batch, in that order. A company two batches share
(in one pass or in two) is the one record that could be read twice before its link is saved: the link
written by the earlier batch is carried to the later one (:func:`leadflow.connectors.sync.refresh`) before
it is sent, and forgotten once a read started after that batch's record was saved (it then reads the link
itself).
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from leadflow.connectors import config, conversions, queries, sync
from leadflow.connectors.conversions import CONVERSION
from leadflow.connectors.outbox import ERASURE
from leadflow.connectors.recording import (
    Claimed,
    Fate,
    Recorder,
    audit_row,
    carried_by,
    fate_of,
    link_rows,
)
from leadflow.connectors.vendor import (
    ACTIVITY,
    COMPANY,
    CONTACT,
    DEAL,
    OK,
    Record,
    Vendor,
    VendorError,
    Written,
    requests_of,
)
from leadflow.kernel import netguard
from leadflow.kernel.ratelimit import Pace, WindowLog

log = logging.getLogger("leadflow.connectors.worker")

ORDER = (COMPANY, CONTACT, DEAL, ACTIVITY)
SHORT_WAIT = 1.0  # seconds a batch waits for a fixed-window log's turn on the worker's thread, not deferred
DEPTH = 2  # helper threads: the next batch read, the previous one recorded, while one is at the vendor


@dataclass
class Read:
    """A batch read ahead: the rows still held, their plan (None: none held), and the tick its reads
    started at (see :class:`Fresh`)."""

    items: list[Claimed]
    plan: sync.Plan | None
    started: int


@dataclass
class Fresh:
    """A company's link written by a batch whose record may not be saved yet; ``recorded`` is the tick
    when it was (a read started after that tick sees the link in the database)."""

    link: dict[str, Any]
    recorded: int | None = None


def ready(value: Read) -> Future[Read]:
    done: Future[Read] = Future()
    done.set_result(value)
    return done


def ids(items: list[Claimed]) -> set[int]:
    return {item.id for item in items}


def contact_batches(connector: config.Connector, vendor: Vendor, items: list[Claimed]) -> list[list[Claimed]]:
    """A connector's contact rows of a pass cut into batches of the vendor's size."""
    contacts = [item for item in items if item.kind == CONTACT]
    size = int(connector.limits.get("batch", vendor.batch_size))
    return [contacts[i : i + size] for i in range(0, len(contacts), size)]


def carried(read: Read, fresh: dict[str, Fresh]) -> sync.Plan:
    """The read's plan with the companies written by batches whose record was not saved when the read
    started (:func:`~leadflow.connectors.sync.refresh`); the links saved before it started are forgotten."""
    assert read.plan is not None
    for key in [k for k, v in fresh.items() if v.recorded is not None and v.recorded < read.started]:
        del fresh[key]
    sync.refresh(read.plan, {key: entry.link for key, entry in fresh.items()})
    return read.plan


def companies_written(planned: sync.Plan, written: dict[str, list[Written]]) -> dict[str, Fresh]:
    found: dict[str, Fresh] = {}
    for answer in written.get(COMPANY) or []:
        if answer.outcome == OK and answer.remote_id:
            record = next(r for r in planned.writes[COMPANY] if r.local_id == answer.local_id)
            link = {"remote_id": answer.remote_id, "fields": dict(record.properties)}
            found[f"{COMPANY}:{answer.local_id}"] = Fresh(link)
    return found


def by_lease(items: list[Claimed]) -> dict[datetime, list[Claimed]]:
    groups: dict[datetime, list[Claimed]] = {}
    for item in items:
        groups.setdefault(item.leased_until, []).append(item)
    return groups


class Sender(Recorder):
    """The sending half of :class:`~leadflow.connectors.worker.ConnectorWorker`."""

    _pool: ThreadPoolExecutor | None = None
    _recording: list[Future[None]]  # records not yet waited for (a pass's last one runs into the next)
    _fresh: dict[str, dict[str, Fresh]]  # connector → company:<id> → link written, maybe not yet saved
    _ticks: itertools.count[int]

    # the worker's own (vendors, buckets, owners, its LEASE, which tests may replace)
    def vendor(self, connector: config.Connector) -> Vendor:
        raise NotImplementedError

    def bucket(self, connector: config.Connector, vendor: Vendor) -> Pace:
        raise NotImplementedError

    def owners(self, connector: config.Connector, vendor: Vendor) -> dict[str, str]:
        raise NotImplementedError

    def _lease(self) -> timedelta:
        raise NotImplementedError

    def _follow(self, bucket: Pace, vendor: Vendor) -> None:
        raise NotImplementedError

    def _buckets_of(self, connector_id: str) -> Pace | None:
        raise NotImplementedError

    def _owners_at_hand(self, connector: config.Connector) -> dict[str, str] | None:
        raise NotImplementedError

    def _helpers(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(DEPTH, thread_name_prefix="connector-db")
        return self._pool

    def _stop_helpers(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _connector(
        self,
        connector: config.Connector,
        items: list[Claimed],
        *,
        first: tuple[Vendor, Read] | None = None,
        ahead: Callable[[], None] | None = None,
    ) -> bool:
        """Write a connector's share of a pass. ``first``: its first contact batch already read (with
        the vendor it was read for); ``ahead``: called once the last batch is read, to start the next pass
        (see the module doc). Whether ``ahead`` was called."""
        try:
            vendor = self.vendor(connector)
        except VendorError as exc:
            self._fail(connector, items, exc)
            return False
        erasures = [item for item in items if item.kind == ERASURE]
        hits = [item for item in items if item.kind == CONVERSION]
        dropped = [item for item in items if item.kind not in (ERASURE, CONTACT, CONVERSION)]
        if dropped:
            self._settle(connector, dropped, {item.id: Fate(done=True) for item in dropped}, [])
        if erasures and (held := self._hold(erasures)):
            self._erase(connector, vendor, held)
        batches = contact_batches(connector, vendor, items)
        called = False
        if batches:
            pre = None
            if first is not None and first[0] is vendor and ids(first[1].items) <= ids(batches[0]):
                pre = first[1]  # read for this very vendor and rows (those it still held)
            called = self._contact_batches(
                connector, vendor, batches, first=pre, ahead=None if hits else ahead
            )
        size = int(connector.limits.get("batch", vendor.batch_size))
        for start in range(0, len(hits), size):
            if held := self._hold(hits[start : start + size]):
                self._conversions(connector, vendor, held)
        return called

    # --- contacts, pipelined ----------------------------------------------------------------------------

    def _read(self, connector: config.Connector, vendor: Vendor, batch: list[Claimed]) -> Read:
        """Hold a batch (:meth:`_hold`) and read its plan (a helper thread's work)."""
        started = next(self._ticks)
        held = self._hold(batch)
        if not held:
            return Read(held, None, started)
        with self._single(write=False) as conn:
            local = [item.local_id for item in held]
            owners = self._owners_at_hand(connector)
            region = self.ctx.settings.default_phone_region
            return Read(
                held, sync.plan(conn, connector, vendor, local, owners=owners, region=region), started
            )

    def _contact_batches(
        self,
        connector: config.Connector,
        vendor: Vendor,
        batches: list[list[Claimed]],
        *,
        first: Read | None = None,
        ahead: Callable[[], None] | None = None,
    ) -> bool:
        """Read, send and record the batches, pipelined (see the module doc); the records are left
        running in :attr:`_recording`. Whether ``ahead`` was called."""
        helpers = self._helpers()
        fresh = self._fresh.setdefault(connector.id, {})
        reading = (
            ready(first) if first is not None else helpers.submit(self._read, connector, vendor, batches[0])
        )
        called = False
        try:
            for index in range(len(batches)):
                read = reading.result()
                if index + 1 < len(batches):
                    reading = helpers.submit(self._read, connector, vendor, batches[index + 1])
                elif ahead is not None:
                    ahead()  # the next pass is claimed and read while this last batch is at the vendor
                    called = True
                if read.plan is None:
                    continue
                written = self._send(connector, vendor, read.items, carried(read, fresh))
                if written is None:
                    continue
                wrote = companies_written(read.plan, written)
                fresh.update(wrote)
                self._recording.append(
                    helpers.submit(self._record_fresh, connector, read, written, list(wrote.values()))
                )
        finally:
            wait([reading])  # none left running, whatever went wrong
        return called

    def _record_fresh(
        self, connector: config.Connector, read: Read, written: dict[str, list[Written]], wrote: list[Fresh]
    ) -> None:
        assert read.plan is not None
        self._record(connector, read.items, read.plan, written)
        recorded = next(self._ticks)
        for entry in wrote:
            entry.recorded = recorded

    def _wait_records(self, *, all_of_them: bool) -> None:
        """Wait for the records (all, or only the finished ones are collected) and raise the first
        failure; with ``all_of_them`` the carried companies are forgotten (every link is saved)."""
        if all_of_them:
            wait(self._recording)
        pending = [future for future in self._recording if not future.done()]
        finished = [future for future in self._recording if future.done()]
        self._recording = pending
        if all_of_them:
            self._fresh.clear()
        for future in finished:
            future.result()

    def _send(
        self, connector: config.Connector, vendor: Vendor, items: list[Claimed], planned: sync.Plan
    ) -> dict[str, list[Written]] | None:
        """Take the batch's tokens and write it (this thread: one vendor call at a time); the answers, or
        None when the batch was settled here (waiting for tokens, failed)."""
        written: dict[str, list[Written]] = {}
        tried: list[tuple[str, list[Record]]] = []  # the requests sent, in order (the last may have failed)
        seen = vendor.rate_seen
        cost, before = 0, None
        try:
            if planned.owners_wanted:  # read only for a batch that maps an owner, on this thread
                owners = self.owners(connector, vendor)
                sync.with_owners(connector, planned, owners, self.ctx.settings.default_phone_region)
            cost = sum(vendor.calls(kind, records) for kind, records in planned.writes.items() if records)
            if cost and not self._take(connector, vendor, cost, items):
                return None
            before = requests_of(vendor)
            self._write(vendor, planned, written, tried)
        except (VendorError, netguard.Blocked) as exc:
            if written:  # what was created before the failure keeps its link: never created twice
                self._save_links(connector, planned, written)
            self._fail(connector, items, exc, carried_by(planned, tried, items) if tried else None)
            return None
        finally:
            bucket = self._buckets_of(connector.id)
            made = requests_of(vendor)
            if bucket is not None and before is not None and made is not None and made - before > cost:
                bucket.tokens -= made - before - cost  # requests calls() could not foresee (a debt)
            if bucket is not None and vendor.rate_seen is not seen:  # only a reading this batch made:
                self._follow(bucket, vendor)  # a stale "0 left" would empty the bucket at every wait
        return written

    def _write(
        self,
        vendor: Vendor,
        planned: sync.Plan,
        written: dict[str, list[Written]],
        tried: list[tuple[str, list[Record]]],
    ) -> None:
        """Write each kind in order, filling ``written`` as the answers come (``tried``: each request's
        records before it is sent)."""
        for kind in ORDER:
            records = planned.writes.get(kind) or []
            if kind in (DEAL, ACTIVITY):
                records = sync.associate(planned, kind, records)
            elif kind == CONTACT:
                records = sync.with_company(planned, records)
            if not records:
                continue
            tried.append((kind, records))
            answers = vendor.write(kind, records)
            written[kind] = answers
            for answer in answers:  # later kinds associate with these
                if answer.outcome == OK and answer.remote_id:
                    planned.links.setdefault(
                        f"{kind}:{answer.local_id}", {"remote_id": answer.remote_id, "fields": {}}
                    )

    def _save_links(
        self, connector: config.Connector, planned: sync.Plan, written: dict[str, list[Written]]
    ) -> None:
        rows = link_rows(connector, planned, written, self.ctx.clock.now())
        if rows:
            with self.ctx.db.write() as conn:
                queries.upsert_links_many(conn, rows)

    # --- leases, tokens, failures -----------------------------------------------------------------------

    def _hold(self, items: list[Claimed]) -> list[Claimed]:
        """Renew the lease on a batch just before its vendor calls and keep only the rows still ours.

        A pass writes its batches one after another, paced by the vendor's limit; one that ran past the
        lease of its later rows (slow answers, retries) may find them claimed again by another worker.
        Writing them too would race that worker's search-then-create (Pipedrive, ActiveCampaign) into a
        duplicate person, so a row goes to the vendor only from the worker whose lease is still current.
        Rows whose lease has more than half of it left are still this worker's (a leased row is claimed by
        no other worker, and a newer change keeps it leased): they go without a renewal transaction, so a
        pass's batches cost none while they run on time."""
        if not items:
            return []
        now = self.ctx.clock.now()
        lease = self._lease()
        if all(item.leased_until - now > lease / 2 for item in items):
            return items
        until = now + lease
        kept: set[int] = set()
        with self.ctx.db.write() as conn:
            for held, group in by_lease(items).items():
                kept.update(conn.execute(queries.renew([i.id for i in group], held, until)).scalars())
        lost = len(items) - len(kept)
        if lost:
            log.info("connector rows taken over by another worker after their lease ran out: %d", lost)
        return [replace(item, leased_until=until) for item in items if item.id in kept]

    def _take(self, connector: config.Connector, vendor: Vendor, cost: int, items: list[Claimed]) -> bool:
        """Spend the batch's tokens, or defer the batch (its rows due again when the tokens are there,
        uncounted). Against a fixed-window log a wait of at most :data:`SHORT_WAIT` is waited out here
        instead: at the window's pace the next request's turn is the previous window's gap between two
        requests (~0.1 s for HubSpot), and deferring would put the batch back, read it again and restart
        the pipeline every time."""
        bucket = self.bucket(connector, vendor)
        cost = min(cost, max(1, math.floor(bucket.size)))
        short = bucket.wait(cost)
        if isinstance(bucket, WindowLog) and 0 < short <= SHORT_WAIT:
            self.ctx.clock.sleep(short)
            bucket.refill(self.ctx.clock.monotonic())
        if bucket.ready(cost):
            bucket.tokens -= cost
            return True
        wait = timedelta(seconds=bucket.wait(cost))
        fates = {
            item.id: Fate(retry_after=wait, uncount=True, error="waiting for the rate limit")
            for item in items
        }
        self._settle(connector, items, fates, [], quiet=True)
        return False

    def _fail(
        self,
        connector: config.Connector,
        items: list[Claimed],
        exc: Exception,
        carried: set[int] | None = None,
    ) -> None:
        """The whole batch failed: retried (429 uncounted, after Retry-After) or dead. ``carried``: the
        rows a sent request carried (None: all); the others were never sent, so they are retried without
        an attempt counted (and never dead-lettered for another record's failure)."""
        if isinstance(exc, VendorError) and exc.rate_limited:
            bucket = self._buckets_of(connector.id)
            if bucket is not None:
                bucket.block(exc.retry_after.total_seconds() if exc.retry_after else None)
            template = Fate(retry_after=exc.retry_after, uncount=True, error=str(exc))
        elif isinstance(exc, VendorError) and exc.retry:
            template = Fate(retry_after=exc.retry_after, error=str(exc))
        else:
            template = Fate(dead=True, error=str(exc))
        after = exc.retry_after if isinstance(exc, VendorError) else None
        unsent = Fate(retry_after=after, uncount=True, error=f"not sent: {exc}")
        fates = {
            item.id: replace(template if carried is None or item.id in carried else unsent) for item in items
        }
        self._settle(connector, items, fates, [], error=str(exc))

    # --- erasures and conversions -----------------------------------------------------------------------

    def _erase(self, connector: config.Connector, vendor: Vendor, items: list[Claimed]) -> None:
        if not self._take(connector, vendor, len(items), items):
            return
        remote = {str((item.payload or {}).get("remote_id")): item for item in items}
        try:
            done = vendor.erase(sorted(remote))
        except (VendorError, netguard.Blocked) as exc:
            self._fail(connector, items, exc)
            return
        now = self.ctx.clock.now()
        audit = [
            audit_row(
                connector.id,
                ERASURE,
                remote[w.local_id],
                w.remote_id,
                "erased",
                now,
                direction="erase",
                detail=w.error,  # e.g. "anonymised": the vendor allows no delete (Kit)
            )
            for w in done
            if w.outcome == OK and w.local_id in remote
        ]
        self._settle(connector, items, {item.id: Fate(done=True) for item in items}, audit)

    def _conversions(self, connector: config.Connector, vendor: Vendor, items: list[Claimed]) -> None:
        """One hit per conversion (GA4): sent, retried, or dead-lettered with the vendor's reason; a
        conversion whose event is gone (erased) is done."""
        with self.ctx.db.read() as conn:
            records, gone = conversions.records(conn, items)
        if gone:
            self._settle(connector, gone, {item.id: Fate(done=True) for item in gone}, [])
        wanted = {record.local_id for record in records}
        sent = [item for item in items if item.local_id in wanted]
        if not sent:
            return
        try:
            if not self._take(connector, vendor, vendor.calls(CONVERSION, records), sent):
                return
            answers = {answer.local_id: answer for answer in vendor.write(CONVERSION, records)}
        except (VendorError, netguard.Blocked) as exc:
            self._fail(connector, sent, exc)
            return
        self._settle(connector, sent, {item.id: fate_of(answers.get(item.local_id)) for item in sent}, [])
