"""Connector backfills against each vendor peer at the vendor's documented limit (issue 14, §5).

    python -m bench.connectors [--vendors hubspot,salesforce,...] [--seconds 30] [--latency-seconds 20]
                               [--rss 100000] [--workers 1] [--split-limit]

For each vendor (PostgreSQL; a fresh database per vendor, created and dropped here):

1. *Backfill*: ``ceiling x --seconds`` contacts are ``COPY``-loaded, a connector to the vendor's peer
   (``bench/connectors_peers.py``: the test peer at its documented limit, each request stamped on arrival)
   is created with ``connectors.create``, a worker process is started (its own process running the real
   :class:`~leadflow.connectors.worker.ConnectorWorker` loop, as ``leadflow worker`` does), then every
   contact is queued as ``connectors.backfill`` queues a segment's members (``outbox.enqueue_many``, pages of
   5,000). Timed from the first page queued until the connector's backlog is empty; the peer's records are
   counted after. The ceiling is the steady rate the documented limit allows with the vendor's best bulk
   path (per vendor in ``connectors_peers.SPECS``); where no per-second limit is documented (Salesforce,
   Mailchimp) it is the peer's own speed for the very requests it received, replayed in order by a plain
   ``httpx`` client with no database (measured in the same run).
2. *Change → remote*: a steady stream of ``contacts.patch`` (first name set to a unique token, one linked
   contact each) under the limit for ``--latency-seconds``; each change's commit time (when ``patch``
   returned) against the arrival at the peer of the first successful request whose body carries its token.
3. *Peak RSS*: ``--rss`` contacts backfilled to a HubSpot peer with a raised limit (10,000 requests / 10 s,
   the connector's bucket raised to match); the worker process's ``VmHWM`` from ``/proc/self/status``.

Targets: backfill ≥ 0.9 of the ceiling; change → remote p99 ≤ 5 s; peak RSS ≤ 300 MB.
``LEADFLOW_NETWORK_ALLOW`` is ``127.0.0.1`` for the bench only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

from bench.common import create_database, drop_database, machine
from bench.connectors_peers import SPECS, Spec, replay
from leadflow.connectors import outbox, queries, registry
from leadflow.connectors import service as connectors
from leadflow.connectors.vendor import CONTACT
from leadflow.contacts import service as contacts
from leadflow.kernel.clock import SystemClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.runtime import collector
from leadflow.runtime.context import build_context

TOKEN = re.compile(rb"Lt\d{7}z")
PAGE = 5000
PASS = 500  # rows a worker pass claims (ConnectorWorker.run_once)
IDS = re.compile(r"/(?:[0-9a-f]{6,}|\d{2,})(?=/|$)")


def context(url: str) -> AppContext:
    settings = Settings(database_url=url, secret_key="bench", network_allow="127.0.0.1")
    return build_context(settings, clock=SystemClock())


def cid(n: int) -> str:
    return f"C{n:025d}"


def load(url: str, count: int) -> list[str]:
    """``COPY`` ``count`` contacts (email, first and last name, subscribed); their ids."""
    libpq = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(libpq) as conn:
        with conn.cursor() as cursor:
            columns = (
                "contacts (id, email, first_name, last_name, traits, lifecycle_stage, subscription_status,"
                " consent, created_at, updated_at, sessions)"
            )
            with cursor.copy(f"COPY {columns} FROM STDIN") as copy:
                for n in range(count):
                    copy.write_row(
                        (cid(n), f"p{n}@example.com", "Pat", f"L{n}", "{}", "lead", "subscribed", "{}",
                         now, now, 0)
                    )  # fmt: skip
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE contacts")
    return [cid(n) for n in range(count)]


# --- the worker process ---------------------------------------------------------------------------------


def _vmhwm_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _count_round_trips(engine: sa.Engine, statements: Any, transactions: Any) -> None:
    """Count the worker's statements and its transactions outside autocommit (each costs PostgreSQL two
    more round trips, ``BEGIN`` and ``COMMIT``) into shared counters the bench reads."""

    def statement(*_: Any) -> None:
        with statements.get_lock():
            statements.value += 1

    def begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            with transactions.get_lock():
                transactions.value += 1

    sa.event.listen(engine, "before_cursor_execute", statement)
    sa.event.listen(engine, "begin", begin)


def _work(url: str, ca_file: str | None, ready: Any, stop: Any, out: Any, counts: Any) -> None:
    ctx = context(url)
    collector.tune()  # as ``leadflow worker`` does once started
    _count_round_trips(ctx.db.engine, *counts)
    worker = connectors.ConnectorWorker(ctx, ca_file=ca_file)
    halt = threading.Event()
    runner = threading.Thread(target=worker.run, args=(halt,))
    runner.start()
    ready.set()
    stop.wait()
    halt.set()
    runner.join(120)
    out.put(_vmhwm_kb())
    ctx.close()


class WorkerProcess:
    def __init__(self, url: str, ca_file: str | None) -> None:
        spawn = multiprocessing.get_context("spawn")
        ready, self._stop, self._out = spawn.Event(), spawn.Event(), spawn.Queue()
        self.counts = (spawn.Value("q", 0), spawn.Value("q", 0))  # statements, transactions
        self.process = spawn.Process(
            target=_work, args=(url, ca_file, ready, self._stop, self._out, self.counts)
        )
        self.process.start()
        self.pid = int(self.process.pid or 0)
        if not ready.wait(60):
            raise RuntimeError("the worker did not start")
        time.sleep(1)  # its first idle pass, outside the measured time

    def round_trips(self) -> int:
        """The worker's PostgreSQL round trips so far (statements; ``BEGIN`` + ``COMMIT`` a transaction)."""
        statements, transactions = (int(c.value) for c in self.counts)
        return statements + 2 * transactions

    def stop(self) -> int:
        """Stop it; its peak RSS (kB)."""
        self._stop.set()
        peak = int(self._out.get(timeout=180))
        self.process.join(30)
        return peak


# --- the measures ---------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backlog(ctx: AppContext, connector_id: str) -> tuple[int, int]:
    with ctx.db.read() as conn:
        found = conn.execute(queries.backlog(connector_id)).one()
    return int(found.pending or 0), int(found.dead or 0)


def enqueue_all(ctx: AppContext, connector_id: str, ids: list[str]) -> int:
    """What ``connectors.backfill`` does for a segment's members: pages of 5,000 into the outbox."""
    queued = 0
    for start in range(0, len(ids), PAGE):
        now = ctx.clock.now()
        rows = [outbox.row(connector_id, CONTACT, i, now, contact_id=i) for i in ids[start : start + PAGE]]
        with ctx.db.write() as conn:
            queued += outbox.enqueue_many(conn, ctx, rows)
    return queued


def wait_empty(ctx: AppContext, connector_id: str, limit_s: float) -> tuple[float, int, int]:
    """Seconds until the backlog is empty (or ``limit_s``), what is left, dead letters."""
    started = time.perf_counter()
    while True:
        pending, dead = backlog(ctx, connector_id)
        if pending == 0 or time.perf_counter() - started > limit_s:
            return time.perf_counter() - started, pending, dead
        time.sleep(0.05)


def stream(ctx: AppContext, ids: list[str], rate: float, seconds: float) -> tuple[dict[str, float], float]:
    """``rate`` patches a second for ``seconds``, each on another contact; token → commit time, and the
    rate achieved."""
    committed: dict[str, float] = {}
    total = max(1, int(rate * seconds))
    started = time.perf_counter()
    for n in range(total):
        if time.perf_counter() - started > seconds:  # the driver could not keep the rate: stop on time
            total = n
            break
        pause = started + n / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        token = f"Lt{n:07d}z"
        contacts.patch(ctx, ids[n % len(ids)], contacts.ContactPatch(first_name=token), actor="bench")
        committed[token] = time.time()
    return committed, total / (time.perf_counter() - started)


def arrivals(peer: Any) -> dict[str, float]:
    """token → arrival of the first successful request carrying it."""
    seen: dict[str, float] = {}
    for call in list(peer.calls):
        if not 200 <= call.status < 300 or "at" not in call.meta:
            continue
        for token in TOKEN.findall(call.body):
            name = token.decode()
            seen[name] = min(seen.get(name, call.meta["at"]), call.meta["at"])
    return seen


def paths(calls: list[Any]) -> str:
    """Requests by method and path (ids folded), the most frequent first."""
    counts: dict[str, int] = {}
    for call in calls:
        key = call.method + " " + IDS.sub("/{id}", call.path)
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:6])


def pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def connect(ctx: AppContext, spec: Spec, peer: Any, limits: dict[str, Any] | None = None) -> str:
    values: dict[str, Any] = {
        "vendor": spec.name,
        "name": f"bench {spec.name}",
        "credentials": spec.credentials,
        "host": peer.url,
    }
    if limits:
        values["limits"] = limits
    return str(connectors.create(ctx, values, actor="bench")["id"])


def load_average() -> str:
    return "load average {:.1f} {:.1f} {:.1f}".format(*os.getloadavg())


def split_limits(spec: Spec, workers: int) -> dict[str, Any] | None:
    """The vendor's documented limit shared by ``workers`` processes: each one's bucket earns and holds
    ``1/workers`` of it (a connector's ``limits``), so together they stay under it."""
    if workers <= 1:
        return None
    vendor: Any = registry.factory(spec.name).make
    return {"rate": float(vendor.rate) / workers, "burst": float(vendor.burst) / workers}


def run_vendor(
    spec: Spec, seconds: float, latency_s: float, workdir: Path, workers: int = 1, split: bool = False
) -> None:
    count = max(50, int((spec.ceiling or 1000.0) * seconds))
    print(f"{spec.name}: {count:,} contacts, {workers} worker process(es); {load_average()}", flush=True)
    url = create_database("postgresql", workdir)
    ctx = context(url)
    try:
        ids = load(url, count)
        with spec.make() as peer:
            connector_id = connect(ctx, spec, peer, split_limits(spec, workers) if split else None)
            worker = WorkerProcess(url, peer.ca_file)
            others = [WorkerProcess(url, peer.ca_file) for _ in range(workers - 1)]
            pids = [worker.pid, *(o.pid for o in others)]
            try:
                processes = [worker, *others]
                trips = sum(p.round_trips() for p in processes)
                started, cpu = time.perf_counter(), sum(cpu_seconds(p) for p in pids)
                queued = enqueue_all(ctx, connector_id, ids)
                enqueued = time.perf_counter() - started
                waited, left, dead = wait_empty(ctx, connector_id, max(120.0, 10 * seconds))
                elapsed = enqueued + waited
                cpu = sum(cpu_seconds(p) for p in pids) - cpu
                trips = sum(p.round_trips() for p in processes) - trips
                remote = spec.count(peer)
                made = list(peer.calls)
                refused = sum(1 for c in made if c.status == 429)
                print(f"{spec.name}: {len(made):,} requests, {refused} answered 429: {paths(made)}")
                rate = (count - left) / elapsed
                ceiling = spec.ceiling
                if left or dead:
                    print(f"{spec.name}: last error: {connectors.health(ctx, connector_id)['last_error']}")
                if spec.measured:
                    with spec.make() as fresh:
                        ceiling = replay(peer, fresh, count)
                print(
                    f"{spec.name}: backfill of {queued:,} contacts in {elapsed:.1f} s (queued in "
                    f"{enqueued:.1f} s) = {rate:,.1f} contacts/s; {remote:,} at the peer, {left} left, "
                    f"{dead} dead; ceiling {ceiling:,.1f}/s ({spec.why}); ratio {rate / ceiling:.2f}; "
                    f"the worker used {cpu:.1f} CPU s ({cpu / max(count - left, 1) * 1e6:,.0f} µs a contact)",
                    flush=True,
                )
                kind: Any = registry.factory(spec.name).make
                size = int(kind.batch_size)
                per_pass = -(-PASS // size)  # a pass's rows are cut into batches of the vendor's size
                batches = max(1, -(-(count - left) // PASS) * per_pass)
                print(
                    f"{spec.name}: the worker(s) made {trips:,} PostgreSQL round trips (statements, and "
                    f"BEGIN + COMMIT a transaction) = {trips / batches:.1f} a batch of {size} "
                    f"({batches:,} batches; the idle polls while the backlog drained included)",
                    flush=True,
                )
                if spec.pace:
                    print(
                        f"{spec.name}: against {spec.pace:,.0f}/s ({spec.pace_why}): "
                        f"ratio {rate / spec.pace:.2f}",
                        flush=True,
                    )
                before = len(peer.calls)
                committed, achieved = stream(ctx, ids, spec.change_rate, latency_s)
                wait_empty(ctx, connector_id, 60.0)
                seen = arrivals(peer)
                lags = [seen[t] - at for t, at in committed.items() if t in seen]
                missing = len(committed) - len(lags)
                if lags:
                    print(
                        f"{spec.name}: {len(committed):,} changes at {achieved:.1f}/s ({spec.change_why}); "
                        f"change -> remote p50 {pct(lags, 0.5):.2f} s, p99 {pct(lags, 0.99):.2f} s, max "
                        f"{max(lags):.2f} s; {missing} not arrived; {len(peer.calls) - before} requests",
                        flush=True,
                    )
            finally:
                peak = worker.stop()
                for other in others:
                    peak = max(peak, other.stop())
            print(f"{spec.name}: worker peak RSS {peak / 1024:.0f} MB; {load_average()}", flush=True)
    finally:
        ctx.close()
        drop_database(url)


def run_rss(count: int, workdir: Path) -> None:
    spec = SPECS["hubspot"]
    url = create_database("postgresql", workdir)
    ctx = context(url)
    try:
        ids = load(url, count)
        with spec.make(limit=10_000) as peer:
            connector_id = connect(ctx, spec, peer, {"rate": 1000, "burst": 1000})
            worker = WorkerProcess(url, None)
            try:
                started, cpu = time.perf_counter(), cpu_seconds(worker.pid)
                enqueue_all(ctx, connector_id, ids)
                _, left, dead = wait_empty(ctx, connector_id, 900.0)
                elapsed, cpu = time.perf_counter() - started, cpu_seconds(worker.pid) - cpu
            finally:
                peak = worker.stop()
            print(
                f"rss: {count:,} contacts backfilled to HubSpot (raised limit) in {elapsed:.1f} s "
                f"({count / elapsed:,.0f}/s, the worker {cpu:.0f} CPU s), {spec.count(peer):,} at the peer, "
                f"{left} left, {dead} dead; "
                f"worker peak RSS (VmHWM) {peak / 1024:.0f} MB; {load_average()}",
                flush=True,
            )
    finally:
        ctx.close()
        drop_database(url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vendors", default=",".join(SPECS))
    parser.add_argument("--seconds", type=float, default=30.0, help="a backfill's length at the ceiling")
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--rss", type=int, default=100_000, help="contacts of the RSS run (0: none)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes sharing the outbox")
    parser.add_argument(
        "--split-limit", action="store_true", help="each worker's bucket gets 1/workers of the vendor's limit"
    )
    args = parser.parse_args()
    print(machine(), "—", dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), flush=True)
    workdir = Path(tempfile.mkdtemp())
    try:
        for name in [v for v in args.vendors.split(",") if v]:
            spec = SPECS[name]
            run_vendor(spec, args.seconds, args.latency_seconds, workdir, args.workers, args.split_limit)
        if args.rss:
            run_rss(args.rss, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
