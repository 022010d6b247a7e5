"""Journey engine throughput: enrolment, and due steps executed per second by 1 and 2 worker processes.

    python -m bench.journeys [--runs 100000] [--backend postgresql|sqlite]

Each run waits at its first step (``wait 1d``); the benchmark makes those steps due, then worker
processes drain them. Every claimed step leads through ``wait`` → ``branch`` (a segment rule evaluated
for the batch) → ``split`` → ``send_email`` (an outbox row) → end: four steps per claimed row, five
writes. Targets: ≥ 5,000 steps/s per worker; 2 workers at least 1.7 times one. The ceiling is a bare
``UPDATE ... SKIP LOCKED`` claim loop over the same rows with no engine code: the most the database
allows for claiming and marking rows.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from tests.support import journeys as j

from bench.common import create_database, drop_database, machine
from leadflow.journeys import catalog, executor, runs
from leadflow.journeys.models import journey_steps
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.runtime import collector
from leadflow.runtime.context import build_context

JOURNEY = {
    "name": "Bench",
    "trigger": {"type": "event", "event": "Bench"},
    "entry": {"reentry": "always", "one_at_a_time": False},
    "settings": {"frequency_cap": False},
    "steps": [
        {"id": "pause", "type": "wait", "duration": "1d", "next": "check"},
        {
            "id": "check",
            "type": "branch",
            "if": {"field": "traits.plan", "op": "eq", "value": "pro"},
            "then": "ab",
            "else": "ab",
        },
        {
            "id": "ab",
            "type": "split",
            "paths": [
                {"name": "a", "weight": 50, "next": "mail"},
                {"name": "b", "weight": 50, "next": "mail"},
            ],
        },
        {"id": "mail", "type": "send_email", "template": "bench"},
    ],
}
START = VirtualClock().now()


def context(url: str) -> AppContext:
    settings = Settings(
        database_url=url, secret_key="bench", journey_batch_size=1000, brand_address="1 Main St, Springfield"
    )
    return build_context(settings, clock=VirtualClock(START))


def prepare(url: str, count: int) -> tuple[float, str]:
    """Contacts and runs; returns the enrolment rate (runs/s) and the journey id."""
    ctx = context(url)
    j.template(ctx, "bench")
    journey_id = j.publish(ctx, JOURNEY)
    with ctx.db.write() as conn:
        conn.exec_driver_sql(
            "INSERT INTO contacts (id, email, traits, lifecycle_stage, subscription_status, consent,"
            " created_at, updated_at, sessions) " + _contact_rows(url, count)
        )
    with ctx.db.read() as conn:
        journey = next(p for p in catalog.active(conn, ctx) if p.journey_id == journey_id)
        ids = list(conn.execute(sa.text("SELECT id FROM contacts ORDER BY id")).scalars())
    started = time.perf_counter()
    for offset in range(0, len(ids), 5000):
        with ctx.db.write() as conn:
            entries = [
                runs.Entry(journey, cid, f"bench:{cid}", {"event": "Bench", "properties": {}})
                for cid in ids[offset : offset + 5000]
            ]
            runs.enrol(conn, ctx, entries, ctx.clock.now())
    rate = count / (time.perf_counter() - started)
    ctx.close()
    return rate, journey_id


def _contact_rows(url: str, count: int) -> str:
    if url.startswith("postgresql"):
        return (
            "SELECT lpad(n::text, 26, '0'), 'c' || n || '@example.com', "
            "CASE WHEN mod(n, 2) = 0 THEN '{\"plan\": \"pro\"}'::jsonb ELSE '{}'::jsonb END, "
            "'lead', 'subscribed', '{}'::jsonb, now(), now(), 0 "
            f"FROM generate_series(1, {count}) AS n"
        )
    return (
        "SELECT printf('%026d', value), 'c' || value || '@example.com', "
        "CASE WHEN value % 2 = 0 THEN '{\"plan\": \"pro\"}' ELSE '{}' END, "
        "'lead', 'subscribed', '{}', datetime('now'), datetime('now'), 0 "
        f"FROM generate_series(1, {count})"
    )


def make_due(url: str) -> int:
    ctx = context(url)
    with ctx.db.write() as conn:
        conn.execute(
            journey_steps.update()
            .where(journey_steps.c.status == "pending")
            .values(due_at=START - timedelta(seconds=1), status="pending")
        )
        count = conn.execute(
            sa.select(sa.func.count()).where(journey_steps.c.status == "pending")
        ).scalar_one()
    ctx.close()
    return int(count)


def _worker(url: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    ctx = context(url)
    collector.tune()  # as ``leadflow worker`` does once started
    executed = 0
    idle = 0
    started = time.perf_counter()
    while idle < 3:
        done = executor.run_due(ctx)
        executed += done
        idle = 0 if done else idle + 1
    results.put((executed, time.perf_counter() - started))
    ctx.close()


def busy_cores() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    ticks = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def drain(url: str, workers: int) -> tuple[int, float]:
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [multiprocessing.Process(target=_worker, args=(url, results)) for _ in range(workers)]
    started = time.perf_counter()
    busy_before, _ = busy_cores()
    for proc in procs:
        proc.start()
    found = [results.get() for _ in procs]
    elapsed = time.perf_counter() - started
    busy_after, _ = busy_cores()
    busy = (busy_after - busy_before) / elapsed
    print(f"  machine CPU busy while draining: {busy:.2f} of {os.cpu_count()} cores")
    for proc in procs:
        proc.join()
    return sum(executed for executed, _ in found), elapsed


def ceiling(url: str, count: int) -> float:
    """Claim-and-mark with nothing else: rows per second for the bare queue operation."""
    ctx = context(url)
    with ctx.db.write() as conn:
        conn.execute(journey_steps.update().values(status="pending", due_at=START - timedelta(seconds=1)))
    started = time.perf_counter()
    marked = 0
    while True:
        with ctx.db.write() as conn:
            ids = list(
                conn.execute(
                    sa.select(journey_steps.c.id)
                    .where(journey_steps.c.status == "pending", journey_steps.c.due_at <= START)
                    .order_by(journey_steps.c.due_at)
                    .limit(1000)
                    .with_for_update(skip_locked=url.startswith("postgresql"))
                ).scalars()
            )
            if not ids:
                break
            conn.execute(
                journey_steps.update()
                .where(journey_steps.c.id.in_(ids))
                .values(status="done", finished_at=START)
            )
            marked += len(ids)
    ctx.close()
    return marked / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--backend", default="postgresql", choices=["postgresql", "sqlite"])
    args = parser.parse_args()
    print(machine())
    workdir = Path(tempfile.mkdtemp())
    rows = []
    for workers in (1, 2) if args.backend == "postgresql" else (1,):
        url = create_database(args.backend, workdir)
        try:
            enrol_rate, _ = prepare(url, args.runs)
            due = make_due(url)
            executed, elapsed = drain(url, workers)
            rate = executed / elapsed
            print(
                f"{workers} worker(s): enrolled {args.runs:,} at {enrol_rate:,.0f}/s; {due:,} due rows → "
                f"{executed:,} steps in {elapsed:.1f} s = {rate:,.0f} steps/s"
                f" ({rate / workers:,.0f} per worker)"
            )
            rows.append((workers, rate))
            if workers == 1:
                print(f"ceiling (bare claim+mark loop): {ceiling(url, args.runs):,.0f} rows/s")
        finally:
            drop_database(url)
    if len(rows) == 2:
        print(f"scaling, 2 workers / 1: {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
