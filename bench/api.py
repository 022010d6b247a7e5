"""The REST read path under a fixed request rate, against a bare ASGI endpoint running the same SQL.

    python -m bench.api [--contacts 1000000] [--rate 500] [--seconds 10] [--rounds 2] [--processes 2]
                        [--only id,email,search] [--keep-db URL | --seed-only]

A fresh PostgreSQL database with ``--contacts`` contacts seeded set-based (one ``INSERT ... SELECT
generate_series``), a real ``leadflow serve`` started as the README recommends for PostgreSQL
(``--processes``, default the number of cores, HTTP only; the worker is another process and idle here)
with the default API rate limit on, and beside it the *ceiling*: a bare ASGI app (:func:`ceiling`,
uvicorn with as many processes) that runs the same SQL statements and writes the rows as JSON, with no
framework, authentication, rate limit or validation.

Three reads, each at a fixed ``--rate`` requests per second for ``--seconds`` (``--rounds`` times,
leadflow and the ceiling alternating, so both see the same load on a shared machine):

* ``GET /api/v1/contacts/{id}`` — a contact by id;
* ``GET /api/v1/contacts?email=`` — a contact by email;
* ``GET /api/v1/contacts?q=`` — a search page (50 contacts, part of a name, an email or a user id).

The load generator is Debian's ``hey`` (Go): ``--fanout`` processes each asking for a different contact,
email or search text, each with ``-c`` workers paced at ``-q`` requests per second per worker (rate =
processes * c * q). A hey worker waits for its answer before its next tick, so the rate holds open-loop
only while answers are faster than a worker's interval (100 ms here); the rate achieved is printed.
Every request's time comes from ``hey -o csv``, merged over the processes. The CPU the server
processes used (``/proc``, user + system, their PostgreSQL backends not counted) is printed per request:
on a machine shared with other work, latency follows the load but CPU per request does not. Targets
(issue 15 §4): p99 ≤ 50 ms for each read, and ceiling p99 / leadflow p99 ≥ 0.5.

The search reads one stored column, ``contacts.search_text``, through one trigram index (migration 0029;
before it, four columns and the joined name, with the trigram indexes of migrations 0016 and 0022).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import sqlalchemy as sa

from bench.common import create_database, drop_database, machine
from leadflow.contacts import preferences, queries
from leadflow.contacts.models import contacts
from leadflow.kernel import jsonutil
from leadflow.kernel.db import Database
from leadflow.messaging import service as messaging

FIRST = ["ann", "bob", "carla", "dmitri", "eve", "farah", "gus", "hana", "ivo", "jun", "kemal", "lena"]
LAST = ["smith", "garcia", "mueller", "kowalski", "nguyen", "okafor", "rossi", "silva", "tanaka", "young"]
SEARCHES = ["kowal", "ann.sm", "4242", "u77777", "tanaka9999"]

# ---- data --------------------------------------------------------------------------------------------


def _array(words: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{w}'" for w in words) + "]"


SEED = f"""
INSERT INTO contacts (id, user_id, email, first_name, last_name, traits, lifecycle_stage,
                      subscription_status, consent, created_at, updated_at, last_seen_at, sessions)
SELECT 'C' || lpad(n::text, 25, '0'),
       CASE WHEN n % 2 = 0 THEN 'u' || n END,
       f || '.' || l || n || '@example.com',
       initcap(f), initcap(l),
       jsonb_build_object('plan', CASE WHEN n % 3 = 0 THEN 'pro' ELSE 'free' END, 'n', n),
       'lead', 'subscribed', '{{}}',
       now() - make_interval(mins => n % 500000), now() - make_interval(mins => n % 500000), NULL, n % 12
FROM (SELECT n, ({_array(FIRST)})[1 + n % {len(FIRST)}] AS f,
             ({_array(LAST)})[1 + (n / {len(FIRST)}) % {len(LAST)}] AS l
      FROM generate_series(1, :count) AS n) AS s
"""


def cid(n: int) -> str:
    return "C" + str(n).rjust(25, "0")


def email(n: int) -> str:
    return f"{FIRST[n % len(FIRST)]}.{LAST[(n // len(FIRST)) % len(LAST)]}{n}@example.com"


def seed(url: str, count: int) -> None:
    engine = sa.create_engine(url)
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(sa.text(SEED), {"count": count})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE contacts")
    engine.dispose()
    print(f"seeded {count:,} contacts in {time.perf_counter() - started:.0f} s")


# ---- the ceiling: a bare ASGI app running the same SQL -----------------------------------------------

Send = Callable[[dict[str, Any]], Awaitable[None]]


def ceiling() -> Callable[..., Awaitable[None]]:
    """The bare ASGI app (a uvicorn factory): leadflow's own statements, built by its query functions
    (the same SQL — a contact and its topic preferences in one statement —, SQLAlchemy's compiled cache,
    the same pool and the same transactions as the routes), and the rows as JSON. No framework,
    middleware, key, rate limit or validation."""
    db = Database(os.environ["LEADFLOW_DATABASE_URL"])
    preferences.use_preferences(messaging.preferences_column)  # as the composition root wires it

    def page(where: queries.ContactFilter, contact_id: str | None = None) -> list[dict[str, Any]]:
        # the transactions leadflow's routes use: one statement outside a transaction, a search in one
        with db.read() if where.q else db.read_one() as conn:
            if contact_id is not None:
                rows = list(conn.execute(queries.by_id(), {"id": contact_id}))
            elif where.email is not None and not where.q:  # what queries.search runs for an email alone
                rows = list(conn.execute(queries.by_email(), {"email": where.email, "after": ""}))
            else:
                if where.q:
                    rows = queries.text_page(conn, where, None, 51)
                else:
                    statement = queries.filtered(queries.contact_select(), where)
                    rows = list(conn.execute(statement.order_by(contacts.c.id).limit(51)))
        fields = rows[0]._fields if rows else ()
        return [{**dict(zip(fields, row, strict=True)), "preferences": row.preferences or {}} for row in rows]

    async def app(scope: dict[str, Any], receive: Any, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
        if path.startswith("/api/v1/contacts/"):
            body = jsonutil.dumpb(page(queries.ContactFilter(), path.rsplit("/", 1)[1])[0])
        else:
            where = queries.ContactFilter(email=query.get("email"), q=query.get("q"))
            body = jsonutil.dumpb({"data": page(where), "next_cursor": None})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


# ---- load --------------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def hey(urls: list[str], key: str | None, rate: int, seconds: int) -> tuple[list[float], int, float]:
    """Every request's time (s) over ``len(urls)`` hey processes at ``rate``/s in all; errors; rate."""
    per_process = rate / len(urls)
    workers = max(1, round(per_process / 10))  # each worker paced at 10/s: 100 ms between its ticks
    auth = ["-H", f"Authorization: Bearer {key}"] if key else []
    pace = ["-z", f"{seconds}s", "-c", str(workers), "-q", f"{per_process / workers:g}", "-t", "10"]
    runs = [
        subprocess.Popen(
            ["hey", *pace, "-o", "csv", *auth, url], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        for url in urls
    ]
    times: list[float] = []
    errors = 0
    for run in runs:
        out, _ = run.communicate()
        for row in csv.DictReader(io.StringIO(out.decode())):
            if row.get("status-code") != "200":
                errors += 1
            times.append(float(row["response-time"]))
    return times, errors, len(times) / seconds


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (uvicorn's workers), now."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    while pids:
        current = pids.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
        pids.extend(int(child) for child in children)
    return total


def busy_seconds() -> float:
    """CPU time the whole machine has spent busy (``/proc/stat``: all but idle and I/O wait), now: over a
    run on an otherwise quiet machine, the server's, PostgreSQL's and ``hey``'s together. (Summing the
    ``postgres`` processes instead loses the connections a pool closes during the run.)"""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def paths(kind: str, count: int, fanout: int) -> list[str]:
    step = max(1, count // (fanout + 1))
    picks = [step * (k + 1) for k in range(fanout)]
    if kind == "by id":
        return [f"/api/v1/contacts/{cid(n)}" for n in picks]
    if kind == "by email":
        return [f"/api/v1/contacts?email={quote(email(n))}" for n in picks]
    return [f"/api/v1/contacts?q={quote(SEARCHES[k % len(SEARCHES)])}" for k in range(fanout)]


def check(base: str, key: str | None, path: str) -> None:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    answer = httpx.get(base + path, headers=headers, timeout=30)
    if answer.status_code != 200:
        raise RuntimeError(f"{base}{path} answered {answer.status_code}: {answer.text[:300]}")


def read_key(url: str) -> str:
    """A ``read`` key made with the command line (the last line it prints)."""
    env = {**os.environ, "LEADFLOW_DATABASE_URL": url, "LEADFLOW_LOG_LEVEL": "warning"}
    made = subprocess.run(
        [sys.executable, "-m", "leadflow", "keys", "create", "--name", "bench-api", "--scopes", "read"],
        env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return made.stdout.strip().splitlines()[-1]


def serve(url: str, port: int, workdir: Path, serve_args: list[str]) -> subprocess.Popen[bytes]:
    """``leadflow serve`` with the default API rate limit (on: it is part of the read path)."""
    env = {
        **os.environ,
        "LEADFLOW_DATABASE_URL": url,
        "LEADFLOW_PORT": str(port),
        "LEADFLOW_LOG_LEVEL": "warning",
    }
    env.pop("LEADFLOW_API_RATE_LIMIT", None)
    with (workdir / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "leadflow", "serve", *serve_args], env=env, stdout=log,
            stderr=subprocess.STDOUT, cwd=workdir,
        )  # fmt: skip
    _wait(f"http://127.0.0.1:{port}/healthz")
    return process


def _wait(address: str) -> None:
    for _ in range(300):
        try:
            httpx.get(address, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)


def start_ceiling(url: str, port: int, processes: int, workdir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "LEADFLOW_DATABASE_URL": url}
    with (workdir / "ceiling.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.api:ceiling", "--factory", "--port", str(port),
             "--workers", str(processes), "--log-level", "warning", "--no-access-log"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    _wait(f"http://127.0.0.1:{port}/api/v1/contacts/{cid(1)}")
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fanout", type=int, default=5, help="hey processes (different contacts) per run")
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--keep-db", help="reuse this already seeded database URL (not dropped)")
    parser.add_argument("--seed-only", action="store_true", help="seed a database, print its URL, keep it")
    parser.add_argument("--only", default="", help="comma-separated reads: id,email,search")
    args = parser.parse_args()
    kinds = ["by id", "by email", "search"]
    if args.only:
        kinds = [k for k in kinds if k.split()[-1] in args.only.split(",")]
    print(f"machine: {machine()}; load average before: {os.getloadavg()}")
    workdir = Path(tempfile.mkdtemp(prefix="bench-api-"))
    url = args.keep_db or create_database("postgresql", workdir)
    server: subprocess.Popen[bytes] | None = None
    ceiling_process: subprocess.Popen[bytes] | None = None
    try:
        if not args.keep_db:
            seed(url, args.contacts)
        if args.seed_only:
            print(f"seeded database kept: {url}")
            args.keep_db = url
            return
        serve_args = ["--no-worker", "--processes", str(args.processes)]
        key = read_key(url)
        server = serve(url, args.port, workdir, serve_args)
        leadflow_url = f"http://127.0.0.1:{args.port}"
        print(f"leadflow serve {' '.join(serve_args)} (LEADFLOW_API_RATE_LIMIT: the default, 500/s per key)")
        ceiling_process = start_ceiling(url, args.port + 1, args.processes, workdir)
        ceiling_url = f"http://127.0.0.1:{args.port + 1}"
        results: dict[tuple[str, str], list[float]] = {}
        achieved: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], float] = {}
        busy: dict[tuple[str, str], float] = {}
        for kind in kinds:
            targets = paths(kind, args.contacts, args.fanout)
            for path in targets:
                check(leadflow_url, key, path)
                check(ceiling_url, None, path)
            for _ in range(args.rounds):
                for name, base, auth, pid in (
                    ("leadflow", leadflow_url, key, server.pid),
                    ("ceiling", ceiling_url, None, ceiling_process.pid),
                ):
                    used, busy_before = cpu_seconds(pid), busy_seconds()
                    times, errors, rate = hey([base + p for p in targets], auth, args.rate, args.seconds)
                    cpu[(kind, name)] = cpu.get((kind, name), 0.0) + cpu_seconds(pid) - used
                    busy[(kind, name)] = busy.get((kind, name), 0.0) + busy_seconds() - busy_before
                    if errors:
                        print(f"  {kind} {name}: {errors} requests failed")
                    results.setdefault((kind, name), []).extend(times)
                    achieved.setdefault((kind, name), []).append(rate)
        print(f"load average after: {os.getloadavg()}")
        print(f"rate {args.rate}/s, {args.rounds} x {args.seconds} s each, {args.fanout} hey processes")
        for kind in kinds:
            line = []
            for name in ("leadflow", "ceiling"):
                t = results[(kind, name)]
                rate = sum(achieved[(kind, name)]) / len(achieved[(kind, name)])
                line.append(
                    f"{name} p50 {pct(t, 0.5) * 1000:.1f} / p95 {pct(t, 0.95) * 1000:.1f} / "
                    f"p99 {pct(t, 0.99) * 1000:.1f} ms ({rate:.0f}/s achieved, n={len(t)}, "
                    f"{cpu[(kind, name)] / len(t) * 1000:.2f} ms CPU/request, machine "
                    f"{busy[(kind, name)] / len(t) * 1000:.2f})"
                )
            ours, bare = results[(kind, "leadflow")], results[(kind, "ceiling")]
            ratio = pct(bare, 0.99) / pct(ours, 0.99)
            met = "met" if pct(ours, 0.99) <= 0.050 and ratio >= 0.5 else "NOT met"
            print(f"{kind}: {line[0]} | {line[1]} | ratio (ceiling p99 / leadflow p99) {ratio:.2f} → {met}")
    finally:
        for started in (server, ceiling_process):
            if started is not None:
                started.terminate()
                started.wait(30)
        if not args.keep_db:
            drop_database(url)
        shutil.rmtree(workdir, ignore_errors=True)  # the servers' logs: each run left its folder


if __name__ == "__main__":
    main()
