"""The connector worker: drains the sync outbox into the vendors, paced, retried, audited.

A pass (:meth:`ConnectorWorker.run_once`):

1. **Claim** up to ``limit`` due rows in one short transaction (``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL, so several workers share the work; SQLite has one writer), moving ``next_at`` to the
   lease's end and counting the attempt. A crash leaves the rows to be claimed again when the lease
   ends: the vendor writes are idempotent (upsert by email, then by remote id), so a repeat creates
   nothing twice.
2. Per connector, per batch of the vendor's size: **read** the local records (one query per kind,
   :mod:`leadflow.connectors.sync`), **take tokens** from the connector's bucket (the vendor's
   documented limit, lowered to what its rate headers say remains) — too few: the batch waits,
   its attempt uncounted — then **write** companies, contacts, deals, activities in that order (later
   kinds are associated with the remote ids of the earlier).
3. **Record** in one transaction: identity links, one audit row per field written (old value: what was
   last written; new value) and one summary row per record (outcome, lag from the first change), the
   conflicts, and the rows' fate: written → deleted if no newer change arrived meanwhile (else due
   again at once); refused for good (4xx, blocked by the network guard) → dead at once with the reason;
   worth retrying (5xx, timeout, connection lost) → due after :data:`SCHEDULE` (exponential, ±10 %
   jitter), dead after its last step; ``429`` → due after ``Retry-After``, uncounted.

Erasure rows call the vendor's GDPR delete and leave an audit row holding no value.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from leadflow.connectors import config, conversions, pull, queries, registry, sync
from leadflow.connectors.conversions import CONVERSION
from leadflow.connectors.outbox import CHANNEL, ERASURE
from leadflow.connectors.vendor import (
    ACTIVITY,
    COMPANY,
    CONFLICT,
    CONTACT,
    DEAL,
    FAILED,
    OK,
    RETRY,
    Network,
    Vendor,
    VendorError,
    Written,
)
from leadflow.kernel import jsonutil, netguard
from leadflow.kernel.clock import Clock
from leadflow.kernel.context import AppContext
from leadflow.kernel.netpolicy import Policy
from leadflow.kernel.ratelimit import TokenBucket
from leadflow.kernel.retry import RetrySchedule
from leadflow.kernel.worker_loop import WorkerLoop

log = logging.getLogger(__name__)

SCHEDULE = RetrySchedule(
    tuple(timedelta(seconds=s) for s in (5, 30, 120, 600, 1800, 3600, 7200, 14_400)),
    retry_after_cap=timedelta(days=1),
    jitter=0.1,
)
LEASE = timedelta(minutes=5)  # longer than a batch's calls can take (30 s timeout each)
ORDER = (COMPANY, CONTACT, DEAL, ACTIVITY)
OWNERS_TTL = 600.0  # seconds an owners list is trusted
MAX_PAUSE = 60.0
TIMEOUT = 30.0


@dataclass(frozen=True)
class Claimed:
    id: int
    connector_id: str
    kind: str
    local_id: str
    contact_id: str | None
    payload: Any
    version: int
    attempts: int  # counting this one
    enqueued_at: datetime
    leased_until: datetime  # the end of this worker's lease on the row


def _by_lease(items: Sequence[Claimed]) -> dict[datetime, list[Claimed]]:
    groups: dict[datetime, list[Claimed]] = defaultdict(list)
    for item in items:
        groups[item.leased_until].append(item)
    return groups


@dataclass
class Fate:
    """What becomes of one claimed row."""

    done: bool = False
    retry_after: timedelta | None = None
    uncount: bool = False
    dead: bool = False
    error: str | None = None


def _fate_of(answer: Written | None) -> Fate:
    """What becomes of a row from the vendor's answer for its record (none: tried again)."""
    if answer is None:
        return Fate(error="no answer for this record")
    if answer.outcome == OK:
        return Fate(done=True)
    if answer.outcome == RETRY:
        return Fate(retry_after=answer.retry_after, uncount=answer.rate_limited, error=answer.error)
    return Fate(dead=True, error=answer.error)


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


class ConnectorWorker:
    """Drains the outbox (:meth:`run_once`) and pulls remote changes (:meth:`pull_due`)."""

    def __init__(
        self, ctx: AppContext, *, ca_file: str | None = None, rand: Callable[[], float] | None = None
    ):
        self.ctx = ctx
        self.network = network_of(ctx.settings, TIMEOUT, ctx.clock, ca_file)
        self._vendors: dict[str, tuple[datetime, Vendor]] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._owners: dict[str, tuple[float, dict[str, str]]] = {}
        self._rand = rand
        self._pulled_at: dict[str, float] = {}

    def close(self) -> None:
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

    def bucket(self, connector: config.Connector, vendor: Vendor) -> TokenBucket:
        rate = float(connector.limits.get("rate", vendor.rate))
        size = float(connector.limits.get("burst", vendor.burst))
        found = self._buckets.get(connector.id)
        if found is None or found.rate != rate or found.size != size:
            found = self._buckets[connector.id] = TokenBucket(rate, size, self.ctx.clock.monotonic())
        found.refill(self.ctx.clock.monotonic())
        return found

    def _follow(self, bucket: TokenBucket, vendor: Vendor) -> None:
        """Lower the bucket to what the vendor says remains of its window."""
        seen = vendor.rate_seen
        if seen is not None and seen.remaining is not None:
            bucket.tokens = min(bucket.tokens, float(seen.remaining))

    def owners(self, connector: config.Connector, vendor: Vendor) -> dict[str, str]:
        """The vendor's owners by email, read again every :data:`OWNERS_TTL` seconds (a token each time)."""
        now = self.ctx.clock.monotonic()
        held = self._owners.get(connector.id)
        if held is not None and now - held[0] < OWNERS_TTL:
            return held[1]
        bucket = self.bucket(connector, vendor)
        bucket.tokens = max(0.0, bucket.tokens - 1)
        found = vendor.owners()
        self._owners[connector.id] = (now, found)
        return found

    # --- a pass ------------------------------------------------------------------------------------------

    def claim(self, limit: int) -> list[Claimed]:
        now = self.ctx.clock.now()
        with self.ctx.db.write() as conn:
            rows = conn.execute(queries.claim(conn.dialect.name, now, limit)).all()
            if not rows:
                return []
            conn.execute(queries.lease([row.id for row in rows], now + LEASE))
        return [
            Claimed(
                r.id,
                r.connector_id,
                r.kind,
                r.local_id,
                r.contact_id,
                r.payload,
                r.version,
                r.attempts + 1,
                r.enqueued_at,
                now + LEASE,
            )
            for r in rows
        ]

    def run_once(self, limit: int = 500) -> int:
        """One pass; how many rows it claimed."""
        _ = self.ctx.secret_key  # read outside any transaction
        return self.work(self.claim(limit))

    def work(self, batch: list[Claimed]) -> int:
        """Write what :meth:`claim` gave, connector by connector; how many rows that was."""
        if not batch:
            return 0
        by_connector: dict[str, list[Claimed]] = defaultdict(list)
        for item in batch:
            by_connector[item.connector_id].append(item)
        with self.ctx.db.read() as conn:
            found = {row.id: row for row in conn.execute(queries.connectors_of_ids(sorted(by_connector)))}
        for connector_id, items in by_connector.items():
            row = found.get(connector_id)
            if row is None or not row.active:
                self._settle(None, items, {item.id: Fate(done=True) for item in items}, [])
                continue
            self._connector(config.opened(self.ctx, row), items)
        return len(batch)

    def _connector(self, connector: config.Connector, items: list[Claimed]) -> None:
        try:
            vendor = self.vendor(connector)
        except VendorError as exc:
            self._fail(connector, items, exc)
            return
        erasures = [item for item in items if item.kind == ERASURE]
        contacts = [item for item in items if item.kind == CONTACT]
        hits = [item for item in items if item.kind == CONVERSION]
        dropped = [item for item in items if item.kind not in (ERASURE, CONTACT, CONVERSION)]
        if dropped:
            self._settle(connector, dropped, {item.id: Fate(done=True) for item in dropped}, [])
        if erasures and (held := self._hold(erasures)):
            self._erase(connector, vendor, held)
        size = int(connector.limits.get("batch", vendor.batch_size))
        for start in range(0, len(contacts), size):
            if held := self._hold(contacts[start : start + size]):
                self._contacts(connector, vendor, held)
        for start in range(0, len(hits), size):
            if held := self._hold(hits[start : start + size]):
                self._conversions(connector, vendor, held)

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
        self._settle(connector, sent, {item.id: _fate_of(answers.get(item.local_id)) for item in sent}, [])

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
        if all(item.leased_until - now > LEASE / 2 for item in items):
            return items
        until = now + LEASE
        kept: set[int] = set()
        with self.ctx.db.write() as conn:
            for held, group in _by_lease(items).items():
                kept.update(conn.execute(queries.renew([i.id for i in group], held, until)).scalars())
        lost = len(items) - len(kept)
        if lost:
            log.info("connector rows taken over by another worker after their lease ran out: %d", lost)
        return [replace(item, leased_until=until) for item in items if item.id in kept]

    def _take(self, connector: config.Connector, vendor: Vendor, cost: int, items: list[Claimed]) -> bool:
        bucket = self.bucket(connector, vendor)
        cost = min(cost, max(1, math.floor(bucket.size)))
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

    def _fail(self, connector: config.Connector, items: list[Claimed], exc: Exception) -> None:
        """The whole batch failed: retried (429 uncounted, after Retry-After) or dead."""
        if isinstance(exc, VendorError) and exc.rate_limited:
            bucket = self._buckets.get(connector.id)
            if bucket is not None:
                bucket.tokens = 0.0
            template = Fate(retry_after=exc.retry_after, uncount=True, error=str(exc))
        elif isinstance(exc, VendorError) and exc.retry:
            template = Fate(retry_after=exc.retry_after, error=str(exc))
        else:
            template = Fate(dead=True, error=str(exc))
        fates = {item.id: replace(template) for item in items}
        self._settle(connector, items, fates, [], error=str(exc))

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
            self._audit(
                connector.id,
                ERASURE,
                remote[w.local_id],
                w.remote_id,
                None,
                None,
                None,
                "erase",
                "erased",
                now,
                detail=w.error,  # e.g. "anonymised": the vendor allows no delete (Kit)
            )
            for w in done
            if w.outcome == OK and w.local_id in remote
        ]
        self._settle(connector, items, {item.id: Fate(done=True) for item in items}, audit)

    def _contacts(self, connector: config.Connector, vendor: Vendor, items: list[Claimed]) -> None:
        ids = [item.local_id for item in items]
        written: dict[str, list[Written]] = {}
        seen = vendor.rate_seen
        try:
            owners = (
                self.owners(connector, vendor)
                if any(e.transform == "owner" for e in connector.mapping)
                else {}
            )
            with self.ctx.db.read() as conn:
                planned = sync.plan(
                    conn, connector, vendor, ids, owners=owners, region=self.ctx.settings.default_phone_region
                )
            cost = sum(vendor.calls(kind, records) for kind, records in planned.writes.items() if records)
            if cost and not self._take(connector, vendor, cost, items):
                return
            self._write(vendor, planned, written)
        except (VendorError, netguard.Blocked) as exc:
            if written:  # what was created before the failure keeps its link: never created twice
                self._save_links(connector, planned, written)
            self._fail(connector, items, exc)
            return
        finally:
            bucket = self._buckets.get(connector.id)
            if bucket is not None and vendor.rate_seen is not seen:  # only a reading this batch made:
                self._follow(bucket, vendor)  # a stale "0 left" would empty the bucket at every wait
        self._record(connector, items, planned, written)

    def _write(self, vendor: Vendor, planned: sync.Plan, written: dict[str, list[Written]]) -> None:
        """Write each kind in order, filling ``written`` as the answers come."""
        for kind in ORDER:
            records = planned.writes.get(kind) or []
            if kind in (DEAL, ACTIVITY):
                records = sync.associate(planned, kind, records)
            elif kind == CONTACT:
                records = sync.with_company(planned, records)
            if not records:
                continue
            answers = vendor.write(kind, records)
            written[kind] = answers
            for answer in answers:  # later kinds associate with these
                if answer.outcome == OK and answer.remote_id:
                    planned.links.setdefault(
                        f"{kind}:{answer.local_id}", {"remote_id": answer.remote_id, "fields": {}}
                    )

    def _link_rows(
        self,
        connector: config.Connector,
        planned: sync.Plan,
        written: dict[str, list[Written]],
        now: datetime,
    ) -> list[dict[str, Any]]:
        records = {(r.kind, r.local_id): r for kind in planned.writes for r in planned.writes[kind]}
        return [
            {
                "connector_id": connector.id,
                "kind": kind,
                "local_id": answer.local_id,
                "remote_id": answer.remote_id,
                "remote_modified_at": answer.modified_at,
                "synced_at": now,
                "fields": dict(records[(kind, answer.local_id)].properties),
            }
            for kind, answers in written.items()
            for answer in answers
            if answer.outcome == OK and answer.remote_id and (kind, answer.local_id) in records
        ]

    def _save_links(
        self, connector: config.Connector, planned: sync.Plan, written: dict[str, list[Written]]
    ) -> None:
        rows = self._link_rows(connector, planned, written, self.ctx.clock.now())
        if rows:
            with self.ctx.db.write() as conn:
                conn.execute(queries.save_links(conn.dialect.name, rows))

    # --- recording ---------------------------------------------------------------------------------------

    def _audit(
        self,
        connector_id: str,
        kind: str,
        item: Claimed | None,
        remote_id: str | None,
        field: str | None,
        old: Any,
        new: Any,
        direction: str,
        outcome: str,
        at: datetime,
        *,
        local_id: str | None = None,
        detail: str | None = None,
    ) -> dict[str, Any]:
        lag = None if item is None else max(0, round((at - item.enqueued_at).total_seconds() * 1000))
        return {
            "connector_id": connector_id,
            "kind": kind,
            "local_id": local_id or (item.local_id if item else ""),
            "contact_id": item.contact_id if item else None,
            "remote_id": remote_id,
            "field": field,
            "old_value": None if old is None else jsonutil.dumps(old),
            "new_value": None if new is None else jsonutil.dumps(new),
            "direction": direction,
            "outcome": outcome,
            "detail": detail,
            "lag_ms": lag if field is None else None,
            "at": at,
        }

    def _record(
        self,
        connector: config.Connector,
        items: list[Claimed],
        planned: sync.Plan,
        written: dict[str, list[Written]],
    ) -> None:
        now = self.ctx.clock.now()
        by_local = {item.local_id: item for item in items}
        records = {(r.kind, r.local_id): r for kind in planned.writes for r in planned.writes[kind]}
        links = self._link_rows(connector, planned, written, now)
        audit: list[dict[str, Any]] = []
        conflicts: list[dict[str, Any]] = []
        fates: dict[int, Fate] = {}
        for kind, answers in written.items():
            for answer in answers:
                record = records.get((kind, answer.local_id))
                owner = by_local.get(answer.local_id) if kind == CONTACT else None
                old = (planned.link(kind, answer.local_id) or {}).get("fields") or {}
                if answer.outcome == OK and record is not None and kind == CONTACT:
                    for name, value in record.properties.items():
                        if old.get(name) != value:
                            audit.append(
                                self._audit(
                                    connector.id,
                                    kind,
                                    owner,
                                    answer.remote_id,
                                    name,
                                    old.get(name),
                                    value,
                                    "push",
                                    "written",
                                    now,
                                )
                            )
                if owner is None:
                    continue
                if answer.outcome == OK:
                    fates[owner.id] = Fate(done=True)
                    audit.append(
                        self._audit(
                            connector.id,
                            kind,
                            owner,
                            answer.remote_id,
                            None,
                            None,
                            None,
                            "push",
                            "written",
                            now,
                        )
                    )
                elif answer.outcome == CONFLICT:
                    fates[owner.id] = Fate(done=True)
                    conflicts.append(
                        {
                            "connector_id": connector.id,
                            "kind": kind,
                            "local_id": answer.local_id,
                            "contact_id": owner.contact_id,
                            "candidates": list(answer.candidates),
                            "reason": answer.error or "several remote records match",
                            "created_at": now,
                            "resolved_at": None,
                        }
                    )
                    audit.append(
                        self._audit(
                            connector.id,
                            kind,
                            owner,
                            None,
                            None,
                            None,
                            None,
                            "push",
                            "conflict",
                            now,
                            detail=answer.error,
                        )
                    )
                elif answer.outcome == RETRY:
                    fates[owner.id] = Fate(
                        error=answer.error, retry_after=answer.retry_after, uncount=answer.rate_limited
                    )
                else:
                    fates[owner.id] = Fate(dead=True, error=answer.error)
        self._follow_failures(planned, written, by_local, fates)
        for item in items:
            if item.id in fates:
                continue
            fates[item.id] = Fate(done=True)  # unchanged, or gone
            outcome = (
                "gone"
                if item.local_id in planned.missing
                else "skipped"
                if item.local_id in planned.skipped
                else "unchanged"
            )
            audit.append(
                self._audit(
                    connector.id,
                    CONTACT,
                    item,
                    planned.remote(CONTACT, item.local_id),
                    None,
                    None,
                    None,
                    "push",
                    outcome,
                    now,
                )
            )
        self._settle(connector, items, fates, audit, links=links, conflicts=conflicts)

    @staticmethod
    def _follow_failures(
        planned: sync.Plan,
        written: dict[str, list[Written]],
        by_local: dict[str, Claimed],
        fates: dict[int, Fate],
    ) -> None:
        """A deal or activity has no outbox row of its own: it rides on its contact's. One that failed
        keeps that row queued (retry) or dead-letters it with the reason, as a contact's own failure
        would; the next attempt finds the contact unchanged and writes only what is missing."""
        for kind in (DEAL, ACTIVITY):
            for answer in written.get(kind) or []:
                if answer.outcome not in (RETRY, FAILED):
                    continue
                row = planned.rows.get(f"{kind}:{answer.local_id}") or {}
                owner = by_local.get(str(row.get("contact_id")))
                if owner is None or not fates.get(owner.id, Fate(done=True)).done:
                    continue
                error = f"{kind} {answer.local_id}: {answer.error}"
                if answer.outcome == RETRY:
                    fates[owner.id] = Fate(
                        error=error, retry_after=answer.retry_after, uncount=answer.rate_limited
                    )
                else:
                    fates[owner.id] = Fate(dead=True, error=error)

    def _settle(
        self,
        connector: config.Connector | None,
        items: Sequence[Claimed],
        fates: dict[int, Fate],
        audit: list[dict[str, Any]],
        *,
        links: list[dict[str, Any]] | None = None,
        conflicts: list[dict[str, Any]] | None = None,
        error: str | None = None,
        quiet: bool = False,
    ) -> None:
        now = self.ctx.clock.now()
        done: list[dict[str, Any]] = []
        retry: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        for item in items:
            fate = fates[item.id]
            if fate.done:
                done.append({"b_id": item.id, "b_version": item.version, "v_next_at": now})
                continue
            due = None if fate.dead else self._due(now, item, fate)
            if due is None:
                dead.append(
                    {"b_id": item.id, "b_attempts": item.attempts, "v_dead_at": now, "v_error": fate.error}
                )
                if connector is not None:
                    audit.append(
                        self._audit(
                            connector.id,
                            item.kind,
                            item,
                            None,
                            None,
                            None,
                            None,
                            "push",
                            "dead",
                            now,
                            detail=fate.error,
                        )
                    )
                continue
            retry.append(
                {
                    "b_id": item.id,
                    "b_attempts": item.attempts,
                    "v_next_at": due,
                    "v_error": fate.error,
                    "v_uncount": 1 if fate.uncount else 0,
                }
            )
            if connector is not None and not quiet:
                audit.append(
                    self._audit(
                        connector.id,
                        item.kind,
                        item,
                        None,
                        None,
                        None,
                        None,
                        "push",
                        "failed",
                        now,
                        detail=fate.error,
                    )
                )
        versions: dict[int, list[int]] = defaultdict(list)
        for row in done:
            versions[row["b_version"]].append(row["b_id"])
        with self.ctx.db.write() as conn:
            if links:
                queries.upsert_links_many(conn, links)
            for version, ids in versions.items():  # set-based: one DELETE per claimed version
                conn.execute(queries.done_in(ids, version))
            if done:
                conn.execute(queries.release_in([row["b_id"] for row in done], now))
            if retry:
                conn.execute(queries.RETRY, retry)
            if dead:
                conn.execute(queries.KILL, dead)
            if audit:
                queries.insert_audit(conn, audit)
            if conflicts:
                conn.execute(queries.INSERT_CONFLICT, conflicts)
            if connector is not None and error is not None:
                conn.execute(queries.update_connector(connector.id, {"last_error": error[:1000]}))
        if dead:
            log.warning(
                "connector %s: %d record(s) dead: %s",
                connector.id if connector else "?",
                len(dead),
                dead[0]["v_error"],
            )

    def _due(self, now: datetime, item: Claimed, fate: Fate) -> datetime | None:
        if fate.uncount:
            return now + (fate.retry_after or timedelta(seconds=1))
        if self._rand is None:
            return SCHEDULE.next_due(now, item.attempts, fate.retry_after)
        return SCHEDULE.next_due(now, item.attempts, fate.retry_after, rand=self._rand)

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
        done = self.run_once()
        self.pull_due(self.ctx.settings.scheduler_interval)
        return done

    def run(self, stop: threading.Event) -> None:
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
