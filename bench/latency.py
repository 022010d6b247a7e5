"""From a ``track`` call's HTTP answer to its email reaching the SMTP server, under load.

    python -m bench.latency [--rate 1000] [--seconds 60] [--backend postgresql|sqlite]

A real ``leadflow serve`` (API + worker) on a fresh database; a journey sends one email on every
``Order Completed``. The load generator posts ``track`` events at ``--rate`` per second (batches of 10 per
``/v1/batch`` request, every 10 ms) for ``--seconds``; an SMTP server in its own process (aiosmtpd,
offering PIPELINING like any production MTA) notes the arrival time of each message, whose subject
carries the event's sequence number. Latency is arrival minus the moment the HTTP answer for that event
was received. Target: p99 ≤ 1 s. ``--workers N`` runs the API alone (``serve --no-worker``) and N
``leadflow worker`` processes beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import create_database, drop_database, machine, start_server

USERS = 500
SUBJECT = re.compile(rb"Subject: Order (\d+) received")


def smtp_server(port: int, arrivals: Any, ready: Any, stop: Any) -> None:
    """aiosmtpd in its own process: records (sequence number, arrival time) for every message."""
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_EHLO(  # noqa: N802 -- offer PIPELINING, as postfix and the big providers do
            self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
        ) -> list[str]:
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            found = SUBJECT.search(envelope.original_content or envelope.content)
            if found:
                arrivals.put((int(found.group(1)), time.time()))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()
    _ = asyncio


def setup(url: str, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        client.post(
            "/api/v1/email/templates",
            json={
                "key": "order",
                "name": "order",
                "kind": "transactional",
                "subject": "Order {{ event.n }} received",
                "html": "<p>Thanks {{ contact.first_name | default: 'there' }}, "
                "order {{ event.n }} is confirmed.</p>",
            },
        ).raise_for_status()
        journey = client.post(
            "/api/v1/journeys",
            json={
                "definition": {
                    "name": "Receipt",
                    "trigger": {"type": "event", "event": "Order Completed"},
                    "entry": {"reentry": "always", "one_at_a_time": False},
                    "settings": {"kind": "transactional", "frequency_cap": False},
                    "steps": [{"id": "receipt", "type": "send_email", "template": "order"}],
                }
            },
        )
        journey.raise_for_status()
        client.post(f"/api/v1/journeys/{journey.json()['id']}/publish").raise_for_status()


def identify(url: str, write_key: str) -> None:
    batch = [
        {
            "type": "identify",
            "userId": f"u{n}",
            "traits": {"email": f"u{n}@example.com", "first_name": f"U{n}"},
        }
        for n in range(USERS)
    ]
    with httpx.Client(base_url=url, auth=(write_key, ""), timeout=30) as client:
        for start in range(0, USERS, 250):
            client.post("/v1/batch", json={"batch": batch[start : start + 250]}).raise_for_status()


def load(url: str, write_key: str, rate: int, seconds: int) -> dict[int, float]:
    """Post ``rate`` events/s; answers each event's HTTP answer time."""
    answered: dict[int, float] = {}
    lock = threading.Lock()
    per_request = 10
    requests = rate * seconds // per_request
    interval = per_request / rate
    start = time.perf_counter()

    def sender(offset: int, step: int) -> None:
        with httpx.Client(base_url=url, auth=(write_key, ""), timeout=30) as client:
            for index in range(offset, requests, step):
                due = start + index * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                first = index * per_request
                batch = [
                    {
                        "type": "track",
                        "userId": f"u{(first + k) % USERS}",
                        "event": "Order Completed",
                        "properties": {"n": first + k},
                    }
                    for k in range(per_request)
                ]
                client.post("/v1/batch", json={"batch": batch}).raise_for_status()
                now = time.time()
                with lock:
                    for k in range(per_request):
                        answered[first + k] = now

    threads = [threading.Thread(target=sender, args=(n, 4)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answered


def start_worker(url: str, env: dict[str, str], workdir: Path, n: int) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "LEADFLOW_DATABASE_URL": url, "LEADFLOW_LOG_LEVEL": "warning", **env}
    with (workdir / f"worker-{n}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "leadflow", "worker"], env=environment, stdout=log, stderr=log
        )


STAGES = {
    "received -> processed (event processor)": (
        "SELECT extract(epoch FROM processed_at - received_at) FROM events"
        " WHERE type = 'track' AND processed_at IS NOT NULL"
    ),
    "processed -> email queued (journey executor)": (
        "SELECT extract(epoch FROM m.created_at - r.entered_at) FROM messages m"
        " JOIN journey_runs r ON r.id = m.run_id"
    ),
    "queued -> sent (deliverer, SMTP answer)": (
        "SELECT extract(epoch FROM sent_at - created_at) FROM messages WHERE sent_at IS NOT NULL"
    ),
}


def stages(url: str) -> None:
    """Where the time went: p50/p99 of each stage, from the timestamps the database recorded."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for label, query in STAGES.items():
            p50, p99 = conn.exec_driver_sql(
                f"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s), "
                f"percentile_cont(0.99) WITHIN GROUP (ORDER BY s) FROM ({query}) AS t(s)"
            ).one()
            print(f"  {label}: p50 {float(p50 or 0) * 1000:.0f} ms, p99 {float(p99 or 0) * 1000:.0f} ms")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--backend", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument("--workers", type=int, default=0, help="separate worker processes (0: in the server)")
    args = parser.parse_args()
    print(machine())
    workdir = Path(tempfile.mkdtemp())
    smtp_port, api_port = 2600, 8700
    arrivals: Any = multiprocessing.Queue()
    ready, stop = multiprocessing.Event(), multiprocessing.Event()
    smtp = multiprocessing.Process(target=smtp_server, args=(smtp_port, arrivals, ready, stop))
    smtp.start()
    ready.wait(10)
    url = create_database(args.backend, workdir)
    env = {
        "LEADFLOW_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "LEADFLOW_FREQUENCY_CAP_PER_DAY": "0",
        "LEADFLOW_FREQUENCY_CAP_PER_WEEK": "0",
        "LEADFLOW_WORKER_POLL_INTERVAL": "0.2",
    }
    server = start_server(url, api_port, workdir, *(["--no-worker"] if args.workers else []), env=env)
    workers = [start_worker(url, env, workdir, n) for n in range(args.workers)]
    try:
        setup(server.url, server.admin_key)
        identify(server.url, server.write_key)
        time.sleep(2)
        answered = load(server.url, server.write_key, args.rate, args.seconds)
        expected = len(answered)
        arrived: dict[int, float] = {}
        deadline = time.time() + 120
        while len(arrived) < expected and time.time() < deadline:
            try:
                number, at = arrivals.get(timeout=1)
            except Exception:
                continue
            arrived.setdefault(number, at)
        latencies = sorted(arrived[n] - answered[n] for n in arrived if n in answered)

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

        where = f"{args.workers} worker process(es)" if args.workers else "worker inside the server"
        print(
            f"{args.backend}, {where}: {expected:,} events at {args.rate}/s for {args.seconds} s; "
            f"{len(arrived):,} emails arrived"
        )
        print(
            f"latency from HTTP answer to SMTP arrival: p50 {pct(0.5) * 1000:.0f} ms, "
            f"p95 {pct(0.95) * 1000:.0f} ms, p99 {pct(0.99) * 1000:.0f} ms, "
            f"max {latencies[-1] * 1000:.0f} ms, "
            f"mean {statistics.mean(latencies) * 1000:.0f} ms"
            f" (target p99 ≤ 1000 ms)"
        )
        if args.backend == "postgresql":
            stages(url)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(30)
        server.stop()
        stop.set()
        smtp.join(10)
        drop_database(url)


if __name__ == "__main__":
    main()
