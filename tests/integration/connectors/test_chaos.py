"""Chaos: 10,000 contacts synced to HubSpot (batch upserts of 100) and the first 2,000 of them to
Salesforce (sObject Collections) and Mailchimp (batch subscribe), 100 records a request, all at once, by two
connector-worker processes on PostgreSQL, while every peer injects 5 % 5xx, 1 % timeouts (the peer
hangs 0.3 s, then resets the connection) and bursts of 429 (Salesforce's own form: 403
REQUEST_LIMIT_EXCEEDED), and a worker process is killed with SIGKILL 6 times (then started again).
Afterwards: every contact present exactly once in each vendor with the fields the mapping renders (the
link's fields equal the rendered mapping; email, first and last name read back from the peer), one
``written`` audit row per contact and field at least, no dead letter, no outbox row left.

The worker processes run the real :class:`~leadflow.connectors.worker.ConnectorWorker` loop on the wall
clock; its time constants are scaled down as ``test_crash_safety`` does for email leases (lease 4 s,
retry steps from 0.2 s, Salesforce's concurrency wait and Mailchimp's wait after a 429 1 s) so the run
is about correctness, not pace, and the peers' rate limits are raised far above the pace of the run.
Pipedrive, ActiveCampaign and Kit are left out here: their per-person calls (search then write; a
polled bulk import; one subscriber a call) do not fit 10,000 contacts in the budget; their faults are
covered by their own tests. Neither do 10,000 for every vendor: the worker writes a few hundred syncs a
second on this 2-core machine shared with other work (10,000 for each of the three took about 220 s),
hence 2,000 for Salesforce and Mailchimp. SQLite (one writer, one worker) is left to the in-process
tests.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
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
from tests.peers import hubspot, mailchimp, salesforce
from tests.peers.saas import SaasPeer
from tests.support import databases

pytestmark = pytest.mark.postgres_only

CONTACTS = 10_000
SMALL = 2_000  # contacts synced to Salesforce and Mailchimp (the first of the 10,000)
KILLS = 6
# records a write: HubSpot's batch maximum; Salesforce and Mailchimp below theirs (200, 500) so that
# their 2,000 take enough requests to meet faults (the seeds put a 5xx and a timeout among each
# peer's first dozen requests)
BATCH = {"hubspot": 100, "salesforce": 100, "mailchimp": 100}
BURSTS = 9  # bursts of 429, three per peer (a burst armed again and again would starve a batch for ever)
WORKERS = 2
SECRET = "chaos-test-secret"

RUNNER = r"""
import sys, threading
from datetime import timedelta
from leadflow.connectors import mailchimp, salesforce, worker
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
ctx = build_context(Settings(), clock=SystemClock())
_ = ctx.secret_key
ctx.signals.listen()
print("connector worker running", flush=True)
worker.ConnectorWorker(ctx, ca_file=sys.argv[1]).run(threading.Event())
"""


@pytest.fixture
def postgres() -> Iterator[str]:
    if not databases.postgres_available():
        databases.skip_or_fail_without_postgres()
    url = databases.migrated(databases.create_postgres_database())
    yield url
    databases.drop_postgres_database(url)


def _start(env: dict[str, str], ca_file: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-c", RUNNER, ca_file], env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def _load(ctx: AppContext, sizes: dict[str, int]) -> None:
    """10,000 contacts and their syncs (``sizes``: connector → how many of them), set-based."""
    now = ctx.clock.now()
    rows = [
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
        for n in range(CONTACTS)
    ]
    with ctx.db.write() as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(contacts.insert(), rows[start : start + 1000])
        queued = [
            outbox.row(connector_id, outbox.CONTACT, row["id"], now, contact_id=row["id"])
            for connector_id, size in sizes.items()
            for row in rows[:size]
        ]
        outbox.enqueue_many(conn, ctx, queued)


def _left(ctx: AppContext) -> int:
    with ctx.db.read() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(connector_outbox)) or 0)


def _hubspot(peer: SaasPeer) -> dict[str, dict[str, Any]]:
    assert isinstance(peer, hubspot.HubSpotPeer)
    found: dict[str, dict[str, Any]] = {}
    for record in peer.records():
        email = record["properties"]["email"]
        assert email not in found, f"{email} twice in HubSpot"
        found[email] = record["properties"]
    return found


def _salesforce(peer: SaasPeer) -> dict[str, dict[str, Any]]:
    assert isinstance(peer, salesforce.SalesforcePeer)
    found: dict[str, dict[str, Any]] = {}
    for record in peer.find("Lead"):
        email = record["Email"]
        assert email not in found, f"{email} twice in Salesforce"
        found[email] = record
    return found


def _mailchimp(peer: SaasPeer) -> dict[str, dict[str, Any]]:
    assert isinstance(peer, mailchimp.MailchimpPeer)
    with peer.lock:
        members = list(peer.audiences[mailchimp.LIST_ID].members.values())
    found: dict[str, dict[str, Any]] = {}
    for member in members:
        assert member.email not in found, f"{member.email} twice in Mailchimp"
        found[member.email] = {"email_address": member.email, "status": member.status, **member.merge_fields}
    return found


REMOTE: dict[str, Callable[[SaasPeer], dict[str, dict[str, Any]]]] = {
    "hubspot": _hubspot,
    "salesforce": _salesforce,
    "mailchimp": _mailchimp,
}


def _check(ctx: AppContext, connector_id: str, vendor: str, peer: SaasPeer, size: int) -> None:
    with ctx.db.read() as conn:
        connector = opened(ctx, conn.execute(sa.select(table).where(table.c.id == connector_id)).one())
        ids = list(conn.scalars(sa.select(contacts.c.id).order_by(contacts.c.user_id).limit(size)))
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
    remote = REMOTE[vendor](peer)
    assert len(remote) == size, f"{vendor}: {len(remote)} remote records"
    for contact_id, view in views.items():
        expected = mapping.render(connector.mapping, view)
        assert linked.get(contact_id) == expected, (vendor, contact_id)
        got = remote[view["email"]]
        for name in ("email", "first_name", "last_name"):
            remote_name = next(e.to for e in connector.mapping if e.source == (name,))
            assert str(got[remote_name]) == str(expected[remote_name]), (vendor, view["email"], remote_name)
        missing = {(contact_id, name) for name in expected} - written
        assert not missing, (vendor, sorted(missing)[:5])


@pytest.mark.timeout(300)
def test_ten_thousand_contacts_survive_faults_and_sigkills(postgres: str, tmp_path: Path) -> None:
    chance = random.Random(20261207)
    ctx = build_context(
        Settings(database_url=postgres, secret_key=SECRET, network_allow="127.0.0.1"), clock=SystemClock()
    )
    with (
        hubspot.HubSpotPeer(limit=1_000_000, daily=10_000_000, seed=124) as hub,
        salesforce.SalesforcePeer(daily_limit=10_000_000, seed=76) as force,
        mailchimp.MailchimpPeer(max_connections=100, seed=39) as chimp,
    ):
        peers: dict[str, SaasPeer] = {"hubspot": hub, "salesforce": force, "mailchimp": chimp}
        credentials = {
            "hubspot": {"access_token": hubspot.TOKEN},
            "salesforce": {"session_id": salesforce.SESSION_ID},
            "mailchimp": {"api_key": mailchimp.API_KEY, "list_id": mailchimp.LIST_ID},
        }
        ids: dict[str, str] = {}
        for vendor, peer in peers.items():
            made = connectors.create(
                ctx,
                {
                    "vendor": vendor,
                    "name": vendor,
                    "credentials": credentials[vendor],
                    "host": peer.url,
                    "limits": {"rate": 10_000, "burst": 10_000, "batch": BATCH[vendor]},
                },
                actor="test",
            )
            ids[vendor] = str(made["id"])
            peer.faults.error_rate = 0.05
            peer.faults.timeout_rate = 0.01
            peer.faults.hang_s = 0.3
        sizes = {"hubspot": CONTACTS, "salesforce": SMALL, "mailchimp": SMALL}
        _load(ctx, {ids[vendor]: size for vendor, size in sizes.items()})
        total = sum(sizes.values())

        env = {
            **os.environ,
            "LEADFLOW_DATABASE_URL": postgres,
            "LEADFLOW_SECRET_KEY": SECRET,
            "LEADFLOW_NETWORK_ALLOW": "127.0.0.1",
            "LEADFLOW_WORKER_POLL_INTERVAL": "0.2",
            "LEADFLOW_LOG_LEVEL": "warning",
        }
        ca_file = force.ca_file or ""
        logs = [tmp_path / f"worker-{n}.log" for n in range(WORKERS)]
        workers = [_start(env, ca_file, log) for log in logs]
        kills = bursts = 0
        started = time.monotonic()
        try:
            while left := _left(ctx):
                assert time.monotonic() < started + 240, f"{left} syncs left: {logs[0].read_text()[-2000:]}"
                time.sleep(chance.uniform(1.0, 2.5))
                if bursts < BURSTS:
                    list(peers.values())[bursts % len(peers)].faults.burst_429(chance.randint(3, 10), 1)
                    bursts += 1
                if kills < KILLS and left < total:  # once work has begun
                    n = chance.randrange(WORKERS)
                    workers[n].send_signal(signal.SIGKILL)
                    workers[n].wait(10)
                    kills += 1
                    workers[n] = _start(env, ca_file, logs[n])
        finally:
            for process in workers:
                process.send_signal(signal.SIGKILL)
                process.wait(10)
        elapsed = time.monotonic() - started
        assert (kills, bursts) == (KILLS, BURSTS)
        for peer in peers.values():
            peer.faults.clear()
        faults = {vendor: dict(peer.faults.counts) for vendor, peer in peers.items()}
        # every peer met rate limits and server failures (a 5xx drawn while a burst is armed is a 429)
        assert all(c["429"] > 0 and c["5xx"] + c["timeout"] > 0 for c in faults.values()), faults
        assert sum(c["5xx"] for c in faults.values()) > 0, faults
        assert sum(c["timeout"] for c in faults.values()) > 0, faults
        for vendor, peer in peers.items():
            _check(ctx, ids[vendor], vendor, peer, sizes[vendor])
        with ctx.db.read() as conn:
            dead = conn.scalar(sa.select(sa.func.count()).where(connector_audit.c.outcome == "dead"))
        assert dead == 0
        print(f"chaos: {sizes} kills={kills} faults={faults} synced in {elapsed:.0f} s")
