"""The CRM at 100k contacts, 100k deals and 1M activities, through a live ``leadflow serve``.

    python -m bench.crm [--contacts 100000] [--deals 100000] [--activities 1000000]
                        [--requests 300] [--rate 100] [--seconds 30] [--parts abcd]

A real ``leadflow serve`` (API + worker, PostgreSQL) on a fresh database, created and dropped here. The
CRM's tables are loaded set-based (``COPY``) beside users, a team and the default pipeline made through
the API. Then, each with the same API stack's ceiling measured in the same run:

(a) ``GET /api/v1/crm/pipeline/stats`` over random 90-day ranges: p50/p95 (target p95 ≤ 100 ms);
(b) ``GET /api/v1/crm/leads`` filtered by status + owner + score range + created range, and by a ``q``
    text search (part of a name or an email, and a whole email): p50/p95 (target p95 ≤ 100 ms);
(c) MQL → owner: ``identify`` calls at ``--rate``/s for ``--seconds`` whose trait meets the MQL
    definition (the pipeline makes each contact an MQL, the CRM routes it round-robin in a team); from
    the event's receipt (``events.received_at``) to its owner set (``crm_lead_sla.assigned_at``): p99
    (target ≤ 5 s);
(d) form post → first email: ``POST /f/{form_id}`` at ``--rate``/s for ``--seconds`` (double opt-in off;
    the form adds to a journey whose first step is ``send_email``); from the HTTP answer to the message's
    arrival at a local SMTP server (postfix's ``smtp-sink``, :mod:`bench.sinks`): p99 (target ≤ 1 s).

The ceiling of (a) and (b) is ``GET /api/v1/crm/pipelines`` (the same stack: auth, a context, one small
query, JSON) and ``/healthz`` (the bare framework), timed alternately with the measured requests.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import random
import statistics
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench import sinks
from bench.common import create_database, drop_database, machine, start_server
from bench.latency import start_worker
from leadflow.crm import stage_counters

NOW = datetime.now(UTC).replace(microsecond=0)
FIRST = ["Ann", "Bob", "Carla", "Dmitri", "Eve", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kemal", "Lena"]
LAST = ["Smith", "Garcia", "Müller", "Kowalski", "Nguyen", "Okafor", "Rossi", "Silva", "Tanaka", "Young"]
STATUSES = ["new", "new", "contacted", "qualified", "unqualified", "customer", "lost"]
KINDS = ["call", "meeting", "note", "task", "email"]
SOURCES = ["ads", "organic", "referral", "webinar", "social"]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def cid(n: int) -> str:
    return f"C{n:025d}"


# ---- data --------------------------------------------------------------------------------------------


def setup(client: httpx.Client) -> dict[str, Any]:
    """Users and a team (routing round-robin), the MQL definition, the pipeline's stages."""
    team = client.post("/api/v1/crm/teams", json={"name": "Sales"}).json()["id"]
    users = [
        client.post(
            "/api/v1/crm/users",
            json={"name": f"Rep {n}", "email": f"rep{n}@example.com", "team_id": team, "capacity": 1 + n % 2},
        ).json()["id"]
        for n in range(10)
    ]
    client.post(
        "/api/v1/crm/routing-rules", json={"name": "everyone to sales", "team_id": team}
    ).raise_for_status()
    client.put(
        "/api/v1/lifecycle/mql", json={"mql": {"field": "traits.bench_mql", "op": "eq", "value": "yes"}}
    ).raise_for_status()
    pipelines = client.get("/api/v1/crm/pipelines").json()
    return {"users": users, "team": team, "pipeline": pipelines[0]}


def _rows(
    count: int, make: Callable[[int, random.Random], tuple[Any, ...]], seed: int
) -> Iterator[tuple[Any, ...]]:
    rng = random.Random(seed)
    for n in range(count):
        yield make(n, rng)


def load(url: str, shape: dict[str, Any], contacts: int, deals: int, activities: int) -> None:
    """``COPY`` the contacts, leads, scores, deals with their stage visits, and activities."""
    users, pipeline = shape["users"], shape["pipeline"]
    stages = sorted(pipeline["stages"], key=lambda s: s["position"])
    engine = sa.create_engine(url)
    raw = engine.raw_connection()
    started = time.perf_counter()

    def contact(n: int, rng: random.Random) -> tuple[Any, ...]:
        at = NOW - timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first.lower()}.{last.lower()}{n}@example.com"
        return (cid(n), email, first, last, "{}", "lead", "subscribed", "{}", at, at, rng.randrange(12))

    def lead(n: int, rng: random.Random) -> tuple[Any, ...]:
        at = NOW - timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        owner = rng.choice(users) if rng.random() < 0.8 else None
        status = rng.choice(STATUSES)
        return (cid(n), status, owner, rng.choice(SOURCES), at, at, at)

    def score(n: int, rng: random.Random) -> tuple[Any, ...]:
        total = round(rng.uniform(0, 150), 1)
        band = "hot" if total >= 100 else "warm" if total >= 50 else "cold"
        return (cid(n), total, total / 2, total / 4, total / 4, total / 3, band, NOW)

    visits: list[tuple[Any, ...]] = []

    def deal(n: int, rng: random.Random) -> tuple[Any, ...]:
        created = NOW - timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        reach = rng.choices(range(len(stages)), weights=[40, 25, 15, 10, 10][: len(stages)])[0]
        at = created
        path = stages[: reach + 1] if stages[reach]["kind"] == "open" else [*stages[:2], stages[reach]]
        for k, stage in enumerate(path):
            left = at + timedelta(hours=rng.randrange(1, 24 * 20)) if k + 1 < len(path) else None
            if left is not None and left > NOW:
                left = NOW
            visits.append((f"D{n:025d}", stage["id"], at, left))
            at = left or at
        final = path[-1]
        status = final["kind"] if final["kind"] != "open" else "open"
        value = f"{rng.randrange(100, 20000)}.00"
        currency = "EUR" if rng.random() < 0.2 else "USD"
        return (
            f"D{n:025d}", pipeline["id"], final["id"], status, f"Deal {n}", value, currency,
            rng.choice(users), cid(rng.randrange(contacts)), created, at,
        )  # fmt: skip

    def activity(n: int, rng: random.Random) -> tuple[Any, ...]:
        at = NOW - timedelta(minutes=rng.randrange(0, 365 * 24 * 60))
        kind = rng.choice(KINDS)
        due = at + timedelta(days=3) if kind == "task" else None
        done = at if kind == "task" and rng.random() < 0.7 else None
        return (
            cid(rng.randrange(contacts)),
            kind,
            f"{kind} {n}",
            due,
            done,
            rng.choice(users),
            "bench",
            at,
            at,
        )

    tables = [
        ("contacts (id, email, first_name, last_name, traits, lifecycle_stage, subscription_status, consent,"
         " created_at, updated_at, sessions)", contacts, contact, 1),
        ("crm_leads (contact_id, status, owner_id, source, status_changed_at, created_at, updated_at)",
         contacts, lead, 2),
        ("contact_scores (contact_id, total, behavioral, demographic, firmographic, engagement, band,"
         " updated_at)", contacts, score, 3),
        ("crm_deals (id, pipeline_id, stage_id, status, title, value, currency, owner_id, contact_id,"
         " created_at, updated_at)", deals, deal, 4),
        ("crm_activities (contact_id, kind, subject, due_at, done_at, owner_id, created_by, occurred_at,"
         " created_at)", activities, activity, 5),
    ]  # fmt: skip
    try:
        cursor = raw.cursor()
        for columns, count, make, seed in tables:
            with cursor.copy(f"COPY {columns} FROM STDIN") as copy:
                for row in _rows(count, make, seed):
                    copy.write_row(row)
        with cursor.copy("COPY crm_deal_stages (deal_id, stage_id, entered_at, left_at) FROM STDIN") as copy:
            for row in visits:
                copy.write_row(row)
        raw.commit()
        counted = time.perf_counter()
        with engine.begin() as conn:  # COPY bypasses the deals' write path: the stats' counters from it
            stage_counters.rebuild(conn)
        print(f"pipeline stats' counters rebuilt in {time.perf_counter() - counted:.1f} s")
        raw.driver_connection.autocommit = True  # type: ignore[union-attr]
        for table in (
            "contacts",
            "crm_leads",
            "contact_scores",
            "crm_deals",
            "crm_deal_stages",
            "crm_activities",
            "crm_stage_days",
            "crm_stage_deal_days",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")
    finally:
        raw.close()
        engine.dispose()
    print(
        f"loaded {contacts:,} contacts/leads/scores, {deals:,} deals ({len(visits):,} stage visits), "
        f"{activities:,} activities in {time.perf_counter() - started:.0f} s"
    )


# ---- (a) and (b): read latency with the ceiling alternated -------------------------------------------


def timed(client: httpx.Client, path: str, params: Any = None) -> float:
    started = time.perf_counter()
    answer = client.get(path, params=params)
    elapsed = time.perf_counter() - started
    if answer.status_code != 200:
        raise RuntimeError(f"{path} answered {answer.status_code}: {answer.text[:300]}")
    return elapsed


def measure(
    client: httpx.Client, label: str, requests: int, params: Callable[[random.Random], Any], path: str
) -> tuple[float, float]:
    rng = random.Random(label)
    for _ in range(5):  # warm the caches and the connection
        timed(client, path, params(rng))
    measured, ceiling, bare = [], [], []
    for _ in range(requests):
        measured.append(timed(client, path, params(rng)))
        ceiling.append(timed(client, "/api/v1/crm/pipelines"))
        bare.append(timed(client, "/healthz"))
    p50, p95 = pct(measured, 0.5) * 1000, pct(measured, 0.95) * 1000
    c95, b95 = pct(ceiling, 0.95) * 1000, pct(bare, 0.95) * 1000
    print(
        f"{label}: p50 {p50:.1f} ms, p95 {p95:.1f} ms (target p95 ≤ 100 ms) | ceiling "
        f"GET /crm/pipelines p50 {pct(ceiling, 0.5) * 1000:.1f} ms, p95 {c95:.1f} ms, /healthz p95 "
        f"{b95:.1f} ms | p95 ratio to the ceiling {p95 / c95:.1f}"
    )
    return p50, p95


def _range(rng: random.Random, days: int) -> tuple[str, str]:
    start = NOW - timedelta(days=rng.randrange(days, 365))
    return start.isoformat(), (start + timedelta(days=days)).isoformat()


def reads(client: httpx.Client, shape: dict[str, Any], requests: int) -> None:
    users = shape["users"]

    def stats(rng: random.Random) -> dict[str, str]:
        start, end = _range(rng, 90)
        return {"from": start, "to": end}

    def filtered(rng: random.Random) -> list[tuple[str, str]]:
        start, end = _range(rng, 90)
        low = rng.randrange(0, 100)
        return [
            ("status", rng.choice(STATUSES)),
            ("owner_id", rng.choice(users)),
            ("score_min", str(low)),
            ("score_max", str(low + 30)),
            ("created_after", start),
            ("created_before", end),
        ]

    def text(rng: random.Random) -> dict[str, str]:
        return {"q": rng.choice([rng.choice(LAST).lower()[:4], f"{rng.randrange(100_000)}@exa", "kowal"])}

    def email(rng: random.Random) -> dict[str, str]:
        n = rng.randrange(100_000)
        return {"q": f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}{n}@example.com"}

    measure(client, "(a) pipeline stats, 90-day range", requests, stats, "/api/v1/crm/pipeline/stats")
    measure(
        client, "(a) pipeline stats, whole history", requests // 3, lambda _: {}, "/api/v1/crm/pipeline/stats"
    )
    measure(client, "(b) leads: status+owner+score+created", requests, filtered, "/api/v1/crm/leads")
    measure(client, "(b) leads: q (part of a name/email)", requests, text, "/api/v1/crm/leads")
    measure(client, "(b) leads: q (a whole email)", requests, email, "/api/v1/crm/leads")


# ---- (c) and (d): paced load ---------------------------------------------------------------------------


def paced(
    url: str, bodies: list[tuple[str, bytes, dict[str, str]]], interval: float, threads: int
) -> dict[int, float]:
    """Send ``bodies`` (path, body, headers) one every ``interval`` s; answers each one's answer time."""
    answered: dict[int, float] = {}
    lock = threading.Lock()
    target = httpx.URL(url)
    start = time.perf_counter()

    def sender(offset: int) -> None:
        client = http.client.HTTPConnection(target.host, target.port, timeout=30)
        try:
            for index in range(offset, len(bodies), threads):
                delay = start + index * interval - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                path, body, headers = bodies[index]
                client.request("POST", path, body=body, headers=headers)
                answer = client.getresponse()
                answer.read()
                if answer.status >= 400:
                    raise RuntimeError(f"{path} answered {answer.status}")
                with lock:
                    answered[index] = time.time()
        finally:
            client.close()

    workers = [threading.Thread(target=sender, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return answered


def mqls(server: Any, url: str, rate: int, seconds: int) -> None:
    per_request = 10
    count = rate * seconds

    token = base64.b64encode(f"{server.write_key}:".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    bodies = [
        (
            "/v1/batch",
            json.dumps(
                {
                    "batch": [
                        {
                            "type": "identify",
                            "messageId": f"mql-{n}",
                            "userId": f"mql{n}",
                            "traits": {"email": f"mql{n}@example.com", "bench_mql": "yes"},
                        }
                        for n in range(start, start + per_request)
                    ]
                }
            ).encode(),
            headers,
        )
        for start in range(0, count, per_request)
    ]
    answered = paced(server.url, bodies, per_request / rate, 2)
    span = max(answered.values()) - min(answered.values())
    print(f"(c) {count:,} identify calls answered in {span:.1f} s: {count / max(span, 1e-9):.0f}/s achieved")
    engine = sa.create_engine(url)
    query = sa.text(
        "SELECT extract(epoch FROM s.assigned_at - e.received_at) FROM crm_lead_sla s"
        " JOIN events e ON e.contact_id = s.contact_id AND e.message_id LIKE 'mql-%'"
        " WHERE s.assigned_at IS NOT NULL"
    )
    lags: list[float] = []
    deadline = time.time() + 120
    while time.time() < deadline:
        with engine.connect() as conn:
            lags = [float(v) for (v,) in conn.execute(query)]
        if len(lags) >= count:
            break
        time.sleep(1)
    engine.dispose()
    if not lags:
        print(f"(c) MQL -> owner: none of {count} MQLs got an owner")
        return
    print(
        f"(c) MQL -> owner assigned: {len(lags):,}/{count:,} assigned, {rate}/s for {seconds} s: "
        f"p50 {pct(lags, 0.5) * 1000:.0f} ms, p95 {pct(lags, 0.95) * 1000:.0f} ms, "
        f"p99 {pct(lags, 0.99) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms (target p99 ≤ 5000 ms)"
    )


def forms(client: httpx.Client, server: Any, sink: sinks.Sink, rate: int, seconds: int) -> None:
    client.post(
        "/api/v1/email/templates",
        json={
            "key": "welcome",
            "name": "welcome",
            "kind": "transactional",
            "subject": "Order {{ contact.first_name }} received",
            "html": "<p>Welcome, thanks for your interest.</p>",
        },
    ).raise_for_status()
    journey = client.post(
        "/api/v1/journeys",
        json={
            "definition": {
                "name": "Form welcome",
                "trigger": {"type": "event", "event": "form.submitted"},
                "entry": {"reentry": "always", "one_at_a_time": False},
                "settings": {"kind": "transactional", "frequency_cap": False},
                "steps": [{"id": "welcome", "type": "send_email", "template": "welcome"}],
            }
        },
    )
    journey.raise_for_status()
    client.post(f"/api/v1/journeys/{journey.json()['id']}/publish").raise_for_status()
    form = client.post(
        "/api/v1/forms",
        json={
            "name": "Bench",
            "fields": [
                {"name": "email", "label": "Email", "type": "email", "required": True},
                {"name": "first_name", "label": "Name"},
            ],
            "double_opt_in": False,
            "journey_id": journey.json()["id"],
        },
    )
    form.raise_for_status()
    path = f"/f/{form.json()['id']}"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    count = rate * seconds
    bodies = [
        (
            path,
            urllib.parse.urlencode({"email": f"form{n}@example.com", "first_name": str(n)}).encode(),
            headers,
        )
        for n in range(count)
    ]
    answered = paced(server.url, bodies, 1 / rate, 8)
    span = max(answered.values()) - min(answered.values())
    print(f"(d) {count:,} posts answered in {span:.1f} s: {count / max(span, 1e-9):.0f} posts/s achieved")
    deadline = time.time() + 120
    while sink.received() < count and time.time() < deadline:
        time.sleep(0.5)
    arrived = sink.arrivals()
    lags = [arrived[n] - answered[n] for n in arrived if n in answered]
    if not lags:
        print(f"(d) form -> email: none of {count} emails arrived")
        return
    print(
        f"(d) form post -> first email: {len(lags):,}/{count:,} arrived, {rate}/s for {seconds} s: "
        f"p50 {pct(lags, 0.5) * 1000:.0f} ms, p95 {pct(lags, 0.95) * 1000:.0f} ms, "
        f"p99 {pct(lags, 0.99) * 1000:.0f} ms, max {max(lags) * 1000:.0f} ms, "
        f"mean {statistics.mean(lags) * 1000:.0f} ms (target p99 ≤ 1000 ms)"
    )


FORM_STAGES = {
    "received -> processed (event processor)": (
        "SELECT extract(epoch FROM processed_at - received_at) FROM events"
        " WHERE event = 'form.submitted' AND processed_at IS NOT NULL"
    ),
    "processed -> run entered (journey trigger)": (
        "SELECT extract(epoch FROM r.entered_at - e.processed_at) FROM journey_runs r"
        " JOIN events e ON e.contact_id = r.contact_id AND e.event = 'form.submitted'"
    ),
    "run entered -> email queued (journey executor)": (
        "SELECT extract(epoch FROM m.created_at - r.entered_at) FROM messages m"
        " JOIN journey_runs r ON r.id = m.run_id"
    ),
    "queued -> sent (deliverer, SMTP answer)": (
        "SELECT extract(epoch FROM sent_at - created_at) FROM messages WHERE sent_at IS NOT NULL"
    ),
}


def form_stages(url: str) -> None:
    """Where the time of (d) went, from the timestamps the database recorded."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        for label, query in FORM_STAGES.items():
            p50, p99 = conn.execute(
                sa.text(
                    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s),"
                    f" percentile_cont(0.99) WITHIN GROUP (ORDER BY s) FROM ({query}) AS t(s)"
                )
            ).one()
            print(f"  {label}: p50 {float(p50 or 0) * 1000:.0f} ms, p99 {float(p99 or 0) * 1000:.0f} ms")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--activities", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--parts", default="abcd", help="which of (a) (b) (c) (d) to run")
    parser.add_argument("--workers", type=int, default=0, help="separate worker processes (0: in the server)")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    parser.add_argument(
        "--smtp",
        default="smtp-sink" if sinks.SMTP_SINK.exists() else "aiosmtpd",
        choices=["smtp-sink", "aiosmtpd"],
        help="the receiving SMTP server (see bench.sinks)",
    )
    args = parser.parse_args()
    print(machine())
    workdir = Path(tempfile.mkdtemp())
    smtp_port, api_port = 2610, 8710
    sink = sinks.start(args.smtp, smtp_port)
    url = create_database("postgresql", workdir)
    env = {
        "LEADFLOW_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "LEADFLOW_FREQUENCY_CAP_PER_DAY": "0",
        "LEADFLOW_FREQUENCY_CAP_PER_WEEK": "0",
        "LEADFLOW_WORKER_POLL_INTERVAL": "0.2",
        "LEADFLOW_FORM_RATE_PER_MINUTE": "0",
    }
    server = start_server(url, api_port, workdir, *(["--no-worker"] if args.workers else []), env=env)
    workers = [start_worker(url, env, workdir, n) for n in range(args.workers)]
    try:
        headers = {"Authorization": f"Bearer {server.admin_key}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            shape = setup(client)
            load(url, shape, args.contacts, args.deals, args.activities)
            if "a" in args.parts or "b" in args.parts:
                reads(client, shape, args.requests)
            if "c" in args.parts:
                mqls(server, url, args.rate, args.seconds)
            if "d" in args.parts:
                forms(client, server, sink, args.rate, args.seconds)
                form_stages(url)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(30)
        server.stop()
        sink.stop()
        if args.keep:
            print(f"kept {url}")
        else:
            drop_database(url)


if __name__ == "__main__":
    main()
