"""Crash safety and scale-out, with real worker processes on PostgreSQL and a real SMTP server.

* A worker killed with SIGKILL at random moments, 10 times, while 2,000 contacts run a 3-email journey:
  afterwards the SMTP server holds exactly 6,000 messages (by ``Message-ID``, as receivers count them),
  3 per contact. A message whose sending was cut between the server's acceptance and our commit is sent
  again after its lease — byte for byte the same, so the receiver drops it as a duplicate.
* Two workers share the load: every step runs once, every message arrives once, both did work.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as email_policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from leadflow.events import ingest, schemas
from leadflow.journeys.models import journey_runs, journey_steps
from leadflow.kernel.clock import SystemClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.messaging.models import messages
from leadflow.runtime.context import build_context
from tests.peers.smtp import Received, SmtpPeer
from tests.support import databases
from tests.support import journeys as j

THREE_EMAILS = {
    "name": "Three emails",
    "trigger": {"type": "event", "event": "Signed Up"},
    "settings": {"frequency_cap": False},
    "steps": [
        {"id": "one", "type": "send_email", "template": "one", "next": "two"},
        {"id": "two", "type": "send_email", "template": "two", "next": "three"},
        {"id": "three", "type": "send_email", "template": "three"},
    ],
}


@pytest.fixture
def postgres() -> Iterator[str]:
    if not databases.postgres_available():
        databases.skip_or_fail_without_postgres()
    url = databases.migrated(databases.create_postgres_database())
    yield url
    databases.drop_postgres_database(url)


def _environment(url: str, smtp_url: str, log: Path) -> dict[str, str]:
    return {
        **os.environ,
        "LEADFLOW_DATABASE_URL": url,
        "LEADFLOW_SMTP_URL": smtp_url,
        "LEADFLOW_SECRET_KEY": "crash-test-secret",
        "LEADFLOW_EMAIL_LEASE_SECONDS": "3",
        "LEADFLOW_WORKER_POLL_INTERVAL": "0.2",
        "LEADFLOW_EMAIL_BATCH_SIZE": "100",
        "LEADFLOW_JOURNEY_BATCH_SIZE": "300",
        "LEADFLOW_LOG_LEVEL": "debug",
        "LEADFLOW_EMAIL_FROM": "School <hello@school.example>",
    }


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "leadflow", "worker"], env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def _prepare(url: str, contacts: int, *, send: bool = True) -> AppContext:
    ctx = build_context(
        Settings(
            database_url=url,
            secret_key="crash-test-secret",
            ingest_rate_limit=0,
            api_rate_limit=0,
            brand_address="1 Main St, Springfield",
        ),
        clock=SystemClock(),
    )
    for key in ("one", "two", "three"):
        j.template(ctx, key, subject=f"{key} for {{{{ contact.email }}}}", html=f"<p>{key}</p>")
    j.publish(ctx, THREE_EMAILS)
    if send:
        _sign_up(ctx, contacts)
    return ctx


def _sign_up(ctx: AppContext, contacts: int) -> None:
    batch = []
    for n in range(contacts):
        user = f"user-{n:05d}"
        batch.append({"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"}})
        batch.append({"type": "track", "userId": user, "event": "Signed Up"})
    for start in range(0, len(batch), 2000):
        rows = schemas.batch_rows({"batch": batch[start : start + 2000]}, ctx.clock.now())
        ingest.store(ctx.db, ctx.signals, ctx.metrics, rows)


def _finished(ctx: AppContext, expected: int) -> bool:
    with ctx.db.read() as conn:
        sent = conn.execute(sa.select(sa.func.count()).where(messages.c.status == "sent")).scalar_one()
        open_steps = conn.execute(
            sa.select(sa.func.count()).where(journey_steps.c.status == "pending")
        ).scalar_one()
    return bool(sent == expected and open_steps == 0)


def _wait_until_finished(ctx: AppContext, expected: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not _finished(ctx, expected):
        assert time.monotonic() < deadline, "the workers did not finish in time"
        time.sleep(0.5)


def _wait_for_start(logs: list[Path], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(log.exists() and "worker running" in log.read_text() for log in logs):
        assert time.monotonic() < deadline, "the workers did not start"
        time.sleep(0.2)


def _message_id(item: Received) -> str:
    return str(message_from_bytes(item.data, policy=email_policy)["Message-ID"])


def _by_message_id(received: list[Received]) -> dict[str, list[Received]]:
    found: dict[str, list[Received]] = {}
    for item in received:
        found.setdefault(_message_id(item), []).append(item)
    return found


@pytest.mark.timeout(600)
def test_sigkill_ten_times_delivers_each_email_exactly_once(postgres: str, tmp_path: Path) -> None:
    contacts = 2000
    ctx = _prepare(postgres, contacts)
    log = tmp_path / "worker.log"
    chance = random.Random(20261122)
    with SmtpPeer(pipelining=True) as peer:
        env = _environment(postgres, peer.url, log)
        for _ in range(10):
            worker = _start(env, log)
            time.sleep(chance.uniform(0.5, 2.5))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        worker = _start(env, log)
        try:
            _wait_until_finished(ctx, 3 * contacts)
        finally:
            worker.terminate()
            worker.wait(10)
        received = list(peer.messages)
        assert peer.pipelined >= len(received)  # killed mid-pipeline too: the peer offers PIPELINING
    unique = _by_message_id(received)
    assert len(unique) == 6000
    per_contact = Counter(item[0].recipients[0] for item in unique.values())
    assert len(per_contact) == contacts
    assert set(per_contact.values()) == {3}
    for copies in unique.values():
        assert all(copy.data == copies[0].data for copy in copies), "a retransmission differed"
    resent = len(received) - len(unique)
    assert resent <= 10 * 100  # at most a batch per kill, and only ones the server had accepted
    with ctx.db.read() as conn:
        runs = conn.execute(
            sa.select(journey_runs.c.status, sa.func.count()).group_by(journey_runs.c.status)
        ).all()
    assert dict(runs) == {"completed": contacts}
    ctx.close()


@pytest.mark.timeout(300)
def test_two_workers_share_the_load_and_run_every_step_once(postgres: str, tmp_path: Path) -> None:
    contacts = 1200
    ctx = _prepare(postgres, contacts, send=False)
    logs = [tmp_path / "worker-a.log", tmp_path / "worker-b.log"]
    with SmtpPeer() as peer:
        env = {**_environment(postgres, peer.url, logs[0]), "LEADFLOW_JOURNEY_BATCH_SIZE": "50"}
        workers = [_start(env, log) for log in logs]
        try:
            _wait_for_start(logs)
            _sign_up(ctx, contacts)  # the work arrives while both are running
            _wait_until_finished(ctx, 3 * contacts)
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(10)
        received = list(peer.messages)
    assert len(received) == 3 * contacts
    assert len(_by_message_id(received)) == 3 * contacts
    with ctx.db.read() as conn:
        per_run = conn.execute(
            sa.select(journey_steps.c.run_id, journey_steps.c.step_id, sa.func.count()).group_by(
                journey_steps.c.run_id, journey_steps.c.step_id
            )
        ).all()
    assert len(per_run) == 3 * contacts
    assert {count for _, _, count in per_run} == {1}
    for log in logs:
        executed = sum(
            int(line.split("executed ")[1].split()[0])
            for line in log.read_text().splitlines()
            if "journey steps (" in line
        )
        assert executed > 0, f"{log.name} ran no journey step"
    ctx.close()
