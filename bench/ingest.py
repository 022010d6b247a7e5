"""Ingestion and processing throughput, with the raw-insert ceiling measured in the same run.

    python bench/ingest.py [--events 200000] [--batch 100] [--threads 8] [--backends postgresql,sqlite]

1. Accepted: a live ``leadflow serve --no-worker`` receives ``/v1/batch`` requests of ``--batch``
   events from ``--threads`` client threads; events/s counts events answered 200 (committed).
2. Processed: one worker (an ``EventProcessor`` in this process) drains what was accepted.
3. Ceiling: the same rows inserted straight into a fresh ``events`` table — PostgreSQL ``COPY``,
   SQLite ``executemany`` in one transaction.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import queue
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from bench.common import fresh_database, machine, start_server
from leadflow.contacts.processor import EventProcessor
from leadflow.events import schemas
from leadflow.events.models import events
from leadflow.kernel.clock import SystemClock
from leadflow.kernel.db import Database
from leadflow.kernel.settings import Settings
from leadflow.lifecycle import service as lifecycle
from leadflow.runtime.context import build_context
from leadflow.scoring import service as scoring
from leadflow.segments import library

QUALIFIED = ", with the standard segments, course scoring and the MQL rule"
EVENT_NAMES = ("Page Viewed", "Course Previewed", "Lesson Completed", "Order Completed", "Content Downloaded")


def messages(total: int, users: int) -> list[dict[str, Any]]:
    """A realistic mix: mostly track, some page and identify calls, spread over ``users`` people."""
    out: list[dict[str, Any]] = []
    for n in range(total):
        user = f"user-{n % users}"
        common = {
            "messageId": str(uuid.uuid4()),
            "userId": user,
            "timestamp": "2026-11-21T10:00:00Z",
            "context": {"library": {"name": "bench", "version": "1"}, "ip": "10.1.2.3"},
        }
        if n % 20 == 0:
            out.append(
                {
                    "type": "identify",
                    **common,
                    "traits": {"email": f"{user}@example.com", "plan": "pro", "seats": n % 7},
                }
            )
        elif n % 5 == 0:
            out.append(
                {
                    "type": "page",
                    **common,
                    "name": "Course",
                    "properties": {
                        "url": f"https://school.example/c/{n % 50}?utm_source=news",
                        "title": "AI 101",
                    },
                }
            )
        else:
            out.append(
                {
                    "type": "track",
                    **common,
                    "event": EVENT_NAMES[n % len(EVENT_NAMES)],
                    "properties": {"course": f"c-{n % 30}", "value": n % 100, "currency": "EUR"},
                }
            )
    return out


def post_all(url: str, key: str, bodies: list[bytes], threads: int) -> tuple[float, int]:
    """Send every body; returns (seconds, failures). Keep-alive connections, one per thread."""
    host, port = url.removeprefix("http://").split(":")
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    work: queue.Queue[bytes] = queue.Queue()
    for body in bodies:
        work.put(body)
    failures: list[int] = []

    def run() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        while True:
            try:
                body = work.get_nowait()
            except queue.Empty:
                break
            conn.request(
                "POST", "/v1/batch", body, {"Content-Type": "application/json", "Authorization": auth}
            )
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
        conn.close()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started, len(failures)


def process_all(database_url: str, *, qualify: bool = False) -> tuple[float, int]:
    ctx = build_context(Settings(database_url=database_url, secret_key="bench"), clock=SystemClock())
    if qualify:  # a realistic installation: the standard segments, course scoring, the MQL definition
        library.install(ctx, actor="bench")
        scoring.install_defaults(ctx, "course", actor="bench")
        lifecycle.ensure_defaults(ctx)
        ctx.signals.listen()
    processor = EventProcessor(ctx)
    started = time.perf_counter()
    count = processor.drain()
    elapsed = time.perf_counter() - started
    ctx.close()
    return elapsed, count


def ceiling(kind: str, workdir: Path, batch: list[dict[str, Any]]) -> float:
    """Seconds to insert the same rows directly into a fresh, migrated events table."""
    received = datetime.now(UTC)
    rows = [
        row
        for i in range(0, len(batch), 2500)
        for row in schemas.batch_rows({"batch": batch[i : i + 2500]}, received)
    ]
    with fresh_database(kind, workdir) as url:
        db = Database(url)
        try:
            if kind == "sqlite":
                return _sqlite_ceiling(db, rows)
            return _copy_ceiling(db, rows)
        finally:
            db.dispose()


def _sqlite_ceiling(db: Database, rows: list[dict[str, Any]]) -> float:
    columns = [c.name for c in events.columns if c.name != "id"]
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        sql = f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        values = [tuple(_sqlite_value(row.get(c)) for c in columns) for row in rows]
        started = time.perf_counter()
        cursor.execute("BEGIN")
        cursor.executemany(sql, values)
        cursor.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        raw.close()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if isinstance(value, datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    return value


def _copy_ceiling(db: Database, rows: list[dict[str, Any]]) -> float:
    columns = [c.name for c in events.columns if c.name != "id"]
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        values = [tuple(_pg_value(row.get(c)) for c in columns) for row in rows]
        started = time.perf_counter()
        with cursor.copy(f"COPY events ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for value in values:
                copy.write_row(value)
        raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


def _pg_value(value: Any) -> Any:
    return orjson.dumps(value).decode() if isinstance(value, dict) else value


def count_rows(database_url: str) -> int:
    db = Database(database_url)
    try:
        with db.read() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one())
    finally:
        db.dispose()


def run(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    batch = messages(args.events, args.users)
    bodies = [orjson.dumps({"batch": batch[i : i + args.batch]}) for i in range(0, len(batch), args.batch)]
    with fresh_database(kind, workdir) as url:
        server_args = ["--no-worker", "--processes", str(args.processes if kind == "postgresql" else 1)]
        server = start_server(url, 18000 + (kind == "sqlite"), workdir, *server_args)
        try:
            accept_seconds, failures = post_all(server.url, server.write_key, bodies, args.threads)
        finally:
            server.stop()
        stored = count_rows(url)
        process_seconds, processed = process_all(url, qualify=args.qualify)
    ceiling_seconds = ceiling(kind, workdir, batch)
    return {
        "backend": kind,
        "events": args.events,
        "stored": stored,
        "failures": failures,
        "accepted_per_s": args.events / accept_seconds,
        "processed": processed,
        "processed_per_s": processed / process_seconds,
        "ceiling_per_s": args.events / ceiling_seconds,
        "ratio": ceiling_seconds / accept_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=2, help="server processes on PostgreSQL")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument(
        "--qualify", action="store_true", help="process with segments, scoring and lifecycle on"
    )
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"date: {datetime.now(UTC).isoformat(timespec='seconds')}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.backends.split(","):
            result = run(kind, args, Path(tmp))
            print(
                f"{kind}: accepted {result['accepted_per_s']:,.0f} events/s "
                f"(stored {result['stored']:,}/{result['events']:,}, {result['failures']} failed requests); "
                f"ceiling {result['ceiling_per_s']:,.0f} events/s; ratio {result['ratio']:.2f}; "
                f"processed {result['processed_per_s']:,.0f} events/s "
                f"({result['processed']:,} events, one worker{QUALIFIED if args.qualify else ''})"
            )


if __name__ == "__main__":
    main()
