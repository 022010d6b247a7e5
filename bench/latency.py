"""From a ``track`` call's HTTP answer to its email reaching the SMTP server, under load.

    python -m bench.latency [--rate 1000] [--seconds 60] [--workers 2] [--smtp smtp-sink|aiosmtpd]

A real ``leadflow serve`` (API + worker) on a fresh database; a journey sends one email on every
``Order Completed``. The load generator posts ``track`` events at ``--rate`` per second (batches of 10 per
``/v1/batch`` request, every 10 ms) for ``--seconds``; a real SMTP server (postfix's ``smtp-sink`` by
default, or aiosmtpd; see :mod:`bench.sinks`) notes the arrival time of each message, whose subject
carries the event's sequence number. Latency is arrival minus the moment the HTTP answer for that event
was received. Target: p99 ≤ 1 s. ``--workers N`` runs the API alone (``serve --no-worker``) and N
``leadflow worker`` processes beside it.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench import sinks
from bench.common import create_database, drop_database, machine, start_server

USERS = 500


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
    """Post ``rate`` events/s; answers each event's HTTP answer time.

    Bodies are serialised before the clock starts and sent over ``http.client`` keep-alive
    connections: the load generator shares the cores with what it measures, so it does as little as
    it can per request.
    """
    answered: dict[int, float] = {}
    lock = threading.Lock()
    per_request = 10
    requests = rate * seconds // per_request
    interval = per_request / rate
    target = httpx.URL(url)
    token = base64.b64encode(f"{write_key}:".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    bodies = [
        json.dumps(
            {
                "batch": [
                    {
                        "type": "track",
                        "userId": f"u{(index * per_request + k) % USERS}",
                        "event": "Order Completed",
                        "properties": {"n": index * per_request + k},
                    }
                    for k in range(per_request)
                ]
            }
        ).encode()
        for index in range(requests)
    ]
    start = time.perf_counter()

    def sender(offset: int, step: int) -> None:
        client = http.client.HTTPConnection(target.host, target.port, timeout=30)
        try:
            for index in range(offset, requests, step):
                delay = start + index * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                client.request("POST", "/v1/batch", body=bodies[index], headers=headers)
                answer = client.getresponse()
                answer.read()
                now = time.time()
                if answer.status != 200:
                    raise RuntimeError(f"/v1/batch answered {answer.status}")
                with lock:
                    for k in range(per_request):
                        answered[index * per_request + k] = now
        finally:
            client.close()

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

WINDOWS = {
    "event processor": (
        "SELECT floor(extract(epoch FROM received_at - min(received_at) OVER ()) / 5),"
        " extract(epoch FROM processed_at - received_at) FROM events"
        " WHERE type = 'track' AND processed_at IS NOT NULL"
    ),
    "deliverer": (
        "SELECT floor(extract(epoch FROM created_at - min(created_at) OVER ()) / 5),"
        " extract(epoch FROM sent_at - created_at) FROM messages WHERE sent_at IS NOT NULL"
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
        for label, query in WINDOWS.items():
            windows: dict[int, list[float]] = {}
            for window, lag in conn.exec_driver_sql(query):
                windows.setdefault(int(window), []).append(float(lag))
            print(
                f"  {label}, max/median per 5 s (s): "
                + " ".join(f"{max(v):.1f}/{sorted(v)[len(v) // 2]:.1f}" for _, v in sorted(windows.items()))
            )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--backend", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument("--workers", type=int, default=0, help="separate worker processes (0: in the server)")
    parser.add_argument(
        "--smtp",
        default="smtp-sink",
        choices=["smtp-sink", "aiosmtpd"],
        help="the receiving SMTP server: postfix's smtp-sink (C) or aiosmtpd (Python, same cores)",
    )
    args = parser.parse_args()
    print(machine())
    workdir = Path(tempfile.mkdtemp())
    smtp_port, api_port = 2600, 8700
    sink = sinks.start(args.smtp, smtp_port)
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
        deadline = time.time() + 120
        while sink.received() < expected and time.time() < deadline:
            time.sleep(0.5)
        arrived = sink.arrivals()
        latencies = sorted(arrived[n] - answered[n] for n in arrived if n in answered)

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))]

        where = f"{args.workers} worker process(es)" if args.workers else "worker inside the server"
        print(
            f"{args.backend}, {where}: {expected:,} events at {args.rate}/s for {args.seconds} s; "
            f"{len(arrived):,} emails arrived at {args.smtp}"
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
        sink.stop()
        drop_database(url)


if __name__ == "__main__":
    main()
