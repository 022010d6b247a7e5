"""The chaos run shared by ``test_chaos.py`` (HubSpot, Salesforce, Mailchimp: batch APIs) and
``test_chaos_per_person.py`` (Pipedrive, ActiveCampaign, Kit: a call or two per person).

:func:`run` loads the contacts and their syncs at once, starts two real connector-worker processes on
PostgreSQL, and while they drain the outbox every peer injects 5 % 5xx, 1 % timeouts (the peer hangs
0.3 s, then resets the connection) and bursts of 429 in the vendor's own form (Salesforce's 403
REQUEST_LIMIT_EXCEEDED, Kit's 429 without ``Retry-After``…), and a worker process is killed with SIGKILL
:data:`KILLS` times (then started again). Afterwards: every contact present exactly once in each vendor
with the fields the mapping renders (the link's fields equal the rendered mapping; every mapped field the
peer keeps read back from it), one ``written`` audit row per contact and field at least, no dead letter,
no outbox row left.

The worker processes run the real :class:`~leadflow.connectors.worker.ConnectorWorker` loop on the wall
clock; its time constants are scaled down as ``test_crash_safety`` does for email leases (lease 4 s,
retry steps from 0.2 s, the vendors' own waits 1 s or less) so the run is about correctness, not pace;
the peers' rate limits (and the connectors' own pacing of Pipedrive's searches) are raised far above
the pace of the run.

Sizes: ``LEADFLOW_CHAOS_CONTACTS`` (every connector of the run syncs that many contacts; unset, each test
file's cheap default). The issue's figure is 10,000 for every vendor; that run is recorded in
docs/benchmarks.md ("Chaos at full size").
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from leadflow.connectors import mapping, outbox, sync
from leadflow.connectors import service as connectors
from leadflow.connectors.config import opened
from leadflow.connectors.models import connector_audit, connector_links, connector_outbox
from leadflow.connectors.models import connectors as table
from leadflow.contacts.models import contacts
from leadflow.kernel.clock import SystemClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.ids import new_id
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context
from tests.peers.saas import SaasPeer
from tests.support import databases

KILLS = 6
WORKERS = 2
SECRET = "chaos-test-secret"
PER_SECOND = 25  # syncs a second the deadline allows for, at the least (a loaded 2-core machine)

RUNNER = r"""
import sys, threading
from datetime import timedelta
from leadflow.connectors import activecampaign, kit, mailchimp, pipedrive, salesforce, worker
from leadflow.kernel.clock import SystemClock
from leadflow.kernel.retry import RetrySchedule
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context

worker.SCHEDULE = RetrySchedule(
    tuple(timedelta(seconds=s) for s in (0.2, 0.5, 1, 2, 3, 5, 8, 13)),
    retry_after_cap=timedelta(seconds=5),
    jitter=0.1,
)
worker.LEASE = timedelta(seconds=4)
salesforce.CONCURRENT_WAIT = timedelta(seconds=1)
mailchimp.BUSY_WAIT = timedelta(seconds=1)
kit.BUSY_WAIT = timedelta(seconds=1)
pipedrive.SEARCH_LIMIT = 10**9
activecampaign.POLL_PAUSE = 0.2
activecampaign.RETRY_RUNNING = timedelta(seconds=1)
PASS = int(sys.argv[2])


ctx = build_context(Settings(), clock=SystemClock())
_ = ctx.secret_key
ctx.signals.listen()
print("connector worker running", flush=True)
running = worker.ConnectorWorker(ctx, ca_file=sys.argv[1])
running.pass_rows = PASS
running.run(threading.Event())
"""


@dataclass
class Target:
    """One connector of the run: its vendor, the peer (fault seed chosen by the caller), what it syncs."""

    name: str
    vendor: str
    peer: SaasPeer
    credentials: dict[str, Any]
    batch: int
    size: int
    remote: Callable[[SaasPeer], dict[str, dict[str, Any]]]  # email → the mapped fields the peer keeps


def size(default: int) -> int:
    """``LEADFLOW_CHAOS_CONTACTS`` when set, else ``default``."""
    found = os.environ.get("LEADFLOW_CHAOS_CONTACTS", "").strip()
    return int(found) if found else default


def budget(total: int) -> float:
    """Seconds the run may take to drain ``total`` syncs."""
    return 120.0 + total / PER_SECOND


def postgres() -> Iterator[str]:
    if not databases.postgres_available():
        databases.skip_or_fail_without_postgres()
    url = databases.migrated(databases.create_postgres_database())
    yield url
    databases.drop_postgres_database(url)


def _start(env: dict[str, str], ca_file: str, log: Path, rows: int) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-c", RUNNER, ca_file, str(rows)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )


def _load(ctx: AppContext, count: int, sizes: dict[str, int]) -> None:
    """``count`` contacts and their syncs (``sizes``: connector → how many of them), set-based."""
    now = ctx.clock.now()
    rows: list[dict[str, Any]] = [
        {
            "id": new_id(),
            "user_id": f"user-{n:05d}",
            "email": f"user-{n:05d}@example.com",
            "first_name": f"First{n}",
            "last_name": f"Last{n}",
            "traits": {},
            "lifecycle_stage": "lead",
            "subscription_status": "subscribed",
            "consent": {},
            "created_at": now,
            "updated_at": now,
        }
        for n in range(count)
    ]
    with ctx.db.write() as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(contacts.insert(), rows[start : start + 1000])
        queued = [
            outbox.row(connector_id, outbox.CONTACT, row["id"], now, contact_id=row["id"])
            for connector_id, many in sizes.items()
            for row in rows[:many]
        ]
        for start in range(0, len(queued), 5000):
            outbox.enqueue_many(conn, ctx, queued[start : start + 5000])


def _left(ctx: AppContext) -> int:
    """The outbox rows left; a dead one fails the run at once (it would wait out the budget)."""
    with ctx.db.read() as conn:
        left = int(conn.scalar(sa.select(sa.func.count()).select_from(connector_outbox)) or 0)
        dead = conn.execute(
            sa.select(connector_outbox.c.attempts, connector_outbox.c.last_error)
            .where(connector_outbox.c.state == "dead")
            .limit(3)
        ).all()
    assert not dead, f"dead letters: {[tuple(row) for row in dead]}"
    return left


def check(ctx: AppContext, connector_id: str, target: Target) -> None:
    """Exactly once remotely with the mapped fields, the link's fields the rendered mapping, a
    ``written`` audit row per contact and field."""
    with ctx.db.read() as conn:
        connector = opened(ctx, conn.execute(sa.select(table).where(table.c.id == connector_id)).one())
        ids = list(conn.scalars(sa.select(contacts.c.id).order_by(contacts.c.user_id).limit(target.size)))
        views = sync.views(conn, ids)
        written = {
            (row.local_id, row.field)
            for row in conn.execute(
                sa.select(connector_audit.c.local_id, connector_audit.c.field)
                .where(
                    connector_audit.c.connector_id == connector_id,
                    connector_audit.c.outcome == "written",
                    connector_audit.c.field.is_not(None),
                )
                .distinct()
            )
        }
        linked = {
            row.local_id: row.fields
            for row in conn.execute(
                sa.select(connector_links.c.local_id, connector_links.c.fields).where(
                    connector_links.c.connector_id == connector_id, connector_links.c.kind == "contact"
                )
            )
        }
    remote = target.remote(target.peer)  # asserts no email twice
    assert len(remote) == target.size, f"{target.name}: {len(remote)} remote records"
    names = [next(e.to for e in connector.mapping if e.source == (n,)) for n in ("email", "first_name")]
    for contact_id, view in views.items():
        expected = mapping.render(connector.mapping, view)
        assert linked.get(contact_id) == expected, (target.name, contact_id)
        got = remote[view["email"]]
        assert set(names) <= set(got), (target.name, sorted(got))
        for name, value in expected.items():
            if name in got:
                assert str(got[name]) == str(value), (target.name, view["email"], name, got[name])
        missing = {(contact_id, name) for name in expected} - written
        assert not missing, (target.name, sorted(missing)[:5])


def run(
    postgres: str, tmp_path: Path, targets: list[Target], *, seed: int, rows: int = 500
) -> dict[str, Any]:
    """The chaos run over ``targets`` (their peers already serving); what it met, for the log. ``rows``:
    what a worker claims a pass (the worker's 500 by default). A claim counts an attempt, and at the
    run's unpaced speed a pass of 500 people written one or two calls each outlasts the scaled 4-s lease:
    its later rows were claimed again by the other worker, an attempt counted each time without a call
    (at the vendors' real limits the bucket defers a pass's rows at once, uncounted, and the lease is
    5 minutes)."""
    chance = random.Random(seed)
    ctx = build_context(
        Settings(database_url=postgres, secret_key=SECRET, network_allow="127.0.0.1"), clock=SystemClock()
    )
    ids: dict[str, str] = {}
    for target in targets:
        made = connectors.create(
            ctx,
            {
                "vendor": target.vendor,
                "name": target.name,
                "credentials": target.credentials,
                "host": target.peer.url,
                "limits": {"rate": 10_000, "burst": 10_000, "batch": target.batch},
            },
            actor="test",
        )
        ids[target.name] = str(made["id"])
        target.peer.faults.error_rate = 0.05
        target.peer.faults.timeout_rate = 0.01
        target.peer.faults.hang_s = 0.3
    _load(ctx, max(t.size for t in targets), {ids[t.name]: t.size for t in targets})
    total = sum(t.size for t in targets)
    bursts_wanted = 3 * len(targets)  # three per peer (a burst armed again and again would starve a batch)
    for target in targets:  # the first before any request: a peer done in a few seconds meets one too
        target.peer.faults.burst_429(chance.randint(3, 10), 1)
    bursts = len(targets)

    env = {
        **os.environ,
        "LEADFLOW_DATABASE_URL": postgres,
        "LEADFLOW_SECRET_KEY": SECRET,
        "LEADFLOW_NETWORK_ALLOW": "127.0.0.1",
        "LEADFLOW_WORKER_POLL_INTERVAL": "0.2",
        "LEADFLOW_LOG_LEVEL": "warning",
    }
    ca_file = next((t.peer.ca_file for t in targets if t.peer.ca_file), None) or ""
    logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
    workers = [_start(env, ca_file, log, rows) for log in logs]
    kills = 0
    started = time.monotonic()
    limit = budget(total)
    try:
        while left := _left(ctx):
            assert time.monotonic() < started + limit, f"{left} syncs left: {logs[0].read_text()[-2000:]}"
            time.sleep(chance.uniform(1.0, 2.5))
            if bursts < bursts_wanted:
                targets[bursts % len(targets)].peer.faults.burst_429(chance.randint(3, 10), 1)
                bursts += 1
            if kills < KILLS and left < total:  # once work has begun
                n = chance.randrange(WORKERS)
                workers[n].send_signal(signal.SIGKILL)
                workers[n].wait(10)
                kills += 1
                workers[n] = _start(env, ca_file, logs[n], rows)
    finally:
        for process in workers:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
    elapsed = time.monotonic() - started
    assert (kills, bursts) == (KILLS, bursts_wanted)
    for target in targets:
        target.peer.faults.clear()
    faults = {t.name: dict(t.peer.faults.counts) for t in targets}
    # every peer met rate limits and server failures (a 5xx drawn while a burst is armed is a 429)
    assert all(c["429"] > 0 and c["5xx"] + c["timeout"] > 0 for c in faults.values()), faults
    assert sum(c["5xx"] for c in faults.values()) > 0, faults
    assert sum(c["timeout"] for c in faults.values()) > 0, faults
    for target in targets:
        check(ctx, ids[target.name], target)
    with ctx.db.read() as conn:
        dead = conn.scalar(sa.select(sa.func.count()).where(connector_audit.c.outcome == "dead"))
    assert dead == 0
    assert _left(ctx) == 0
    met = {"sizes": {t.name: t.size for t in targets}, "kills": kills, "faults": faults, "seconds": elapsed}
    print(f"chaos: {met}")
    return met
