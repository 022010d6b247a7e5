"""Analytics at 1M contacts, 10M events and 100k conversions (issue 15 §5), on PostgreSQL.

    python -m bench.analytics [--scale 1.0] [--requests 40] [--raw 3] [--seconds 60] [--rate 1000]
                              [--every 10]

A fresh database (created and dropped here) is loaded set-based (:mod:`bench.analytics_data`), the rollups
caught up once (``analytics.maintain``), then, through the application in process (FastAPI's test
client: the time is the server's, no network):

(a) every dashboard page (``/app/``) and analytics endpoint it reads — KPIs, funnel, sources, email by
    template/journey/step/broadcast and by link, journey funnel, health, A/B readouts, attribution —
    ``--requests`` times each: p50/p95 (target p95 ≤ 300 ms). For the numbers read from the rollups the
    same numbers are computed from the raw event log by the SQL of :mod:`bench.analytics_data` in the same
    run (``--raw`` times, median), compared with the API's answer (**any difference fails the run**), and
    the ratio raw / p50 reported (target ≥ 20 times); the A/B readouts and the journey funnel, read from
    the journeys' per-day counters, are compared the same way with their former queries over the raw
    runs and steps (the counters are rebuilt after loading, as migrations 0024 and 0025 do);
(b) attribution, all five models over the conversions of 30 days (``order.completed``): the time of each
    of 3 requests (target ≤ 5 s);
(c) rollup upkeep: events arrive at ``--rate``/s for ``--seconds`` (a thread inserting every 0.1 s) while
    ``maintain`` runs every ``--every`` s; its CPU is the worker thread's (``time.thread_time``) plus its
    PostgreSQL backends' (``/proc/<pid>/stat``, the connections of a context named ``rollup``), over the
    wall time: target < 10 % of a core, with every event rolled up at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from bench import analytics_data as data
from bench.common import create_database, drop_database, machine
from leadflow.analytics import rollups, store
from leadflow.analytics import service as analytics
from leadflow.api.app import create_app
from leadflow.auth import service as keys
from leadflow.contacts import service as profiles
from leadflow.crm import service as crm
from leadflow.journeys import service as journeys
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context
from leadflow.web import service as web

PASSWORD = "bench horse battery staple"
TARGET_P95, TARGET_RATIO, TARGET_ATTRIBUTION, TARGET_CPU = 0.300, 20.0, 5.0, 0.10


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


class Mismatch(AssertionError):
    pass


def same(what: str, api: Any, raw: Any) -> None:
    if api != raw:
        raise Mismatch(f"{what}: the rollups say {api!r}, the raw events {raw!r}")


# ---- load -----------------------------------------------------------------------------------------------


def seed(ctx: AppContext, sizes: data.Sizes) -> None:
    with ctx.db.engine.connect() as conn:
        raw = conn.connection.driver_connection  # psycopg: no parameters, so '%' is the operator
        assert raw is not None
        for what, statement in data.seed_statements(sizes):
            started = time.perf_counter()
            count = raw.execute(statement).rowcount
            raw.commit()
            print(f"  {what}: {count:,} rows in {time.perf_counter() - started:.1f} s", flush=True)
        raw.execute("ANALYZE")
        raw.commit()


# ---- raw references, each checked against the API's answer ---------------------------------------------


def _bounds(start: date, end: date) -> dict[str, datetime]:
    days = (end - start).days + 1
    cs = datetime.combine(start, dtime(), tzinfo=UTC)
    return {"cs": cs, "ce": cs + timedelta(days=days), "ps": cs - timedelta(days=days), "pe": cs}


def _raw(ctx: AppContext, sql: str | sa.Select[Any], bounds: dict[str, datetime]) -> list[Any]:
    with ctx.db.engine.connect() as conn:
        if isinstance(sql, str):
            return list(conn.execute(sa.text(sql), bounds).all())
        for setting in store.READOUT_SETTINGS:  # as the readout read them before the counters
            conn.execute(setting)
        return list(conn.execute(sql).all())


FIGURES = {"visitor": "visitors", "lead": "leads", "mql": "mql", "sql": "sql", "customer": "customers"}
FIGURES |= {"advocate": "advocates"}


def check_kpis(ctx: AppContext, answer: dict[str, Any], b: dict[str, datetime]) -> None:
    stages = {row[0]: (row[1], row[2]) for row in _raw(ctx, data.RAW_STAGES, b)}
    for stage, name in FIGURES.items():
        f = answer["figures"][name]
        same(
            f"kpis {name}", (f["current"], f["previous"]), tuple(float(x) for x in stages.get(stage, (0, 0)))
        )
    email = {row[1]: (row[2], row[3]) for row in _raw(ctx, data.raw_email(""), b)}
    for status in ("sent", "bounced", "opened", "clicked", "unsubscribed", "complained"):
        f = answer["figures"][f"emails_{status}"]
        same(f"kpis emails_{status}", (f["current"], f["previous"]), tuple(float(x) for x in email[status]))


def check_funnel(ctx: AppContext, answer: dict[str, Any], b: dict[str, datetime]) -> None:
    stages = {row[0]: (row[1], row[2]) for row in _raw(ctx, data.RAW_STAGES, b)}
    medians = {row[0]: (row[1] or 0.0, row[2] or 0.0) for row in _raw(ctx, data.RAW_MEDIANS, b)}
    for step in answer["stages"]:
        entered = (step["entered"]["current"], step["entered"]["previous"])
        same(f"funnel {step['stage']}", entered, tuple(float(x) for x in stages.get(step["stage"], (0, 0))))
        if step["median_seconds"] is not None:
            got = (step["median_seconds"]["current"], step["median_seconds"]["previous"])
            want = medians.get(step["stage"], (0.0, 0.0))
            # approximate medians (±0.5 %) unless the answer says exact (``exact=true``)
            bound = 1e-9 if answer.get("exact_medians") else 0.005
            if any(abs(g - float(w)) > bound * abs(float(w)) + 1e-3 for g, w in zip(got, want, strict=True)):
                raise Mismatch(f"funnel median {step['stage']}: rollups {got}, raw events {want}")


def check_sources(ctx: AppContext, answer: dict[str, Any], b: dict[str, datetime]) -> None:
    raw = {(r[0], r[1], r[2]): (float(r[3]), float(r[4])) for r in _raw(ctx, data.RAW_SOURCES, b)}
    api = {(r["source"], r["medium"], r["campaign"]): (r["leads"]["current"], r["leads"]["previous"])
           for r in answer["rows"]}  # fmt: skip
    same("sources", api, raw)


EMAIL_FIELDS = {"sent": "sent", "opened": "opened", "clicked": "clicked", "bounced": "bounced",
                "unsubscribed": "unsubscribed", "complained": "complained",
                "opened.machine": "machine_opened", "clicked.machine": "machine_clicked"}  # fmt: skip


def check_email(ctx: AppContext, dimension: str, answer: dict[str, Any], b: dict[str, datetime]) -> None:
    raw: dict[str, dict[str, int]] = {}
    for key, metric, current, _ in _raw(ctx, data.raw_email(dimension), b):
        if metric in EMAIL_FIELDS and current:
            raw.setdefault(key, {})[EMAIL_FIELDS[metric]] = int(current)
    api = {r["key"]: {f: r[f] for f in EMAIL_FIELDS.values() if r[f]} for r in answer["rows"]}
    api = {k: v for k, v in api.items() if v}
    same(f"email by {dimension}", api, raw)


def check_experiments(ctx: AppContext, answer: dict[str, Any], b: dict[str, datetime]) -> None:
    """The readouts (from the journeys' split counters) against the same numbers from the raw runs, steps
    and events (``analytics.store.splits_from_runs``: the readout's query before the counters)."""
    raw: dict[tuple[str, str, str], tuple[int, int]] = {}
    kinds = {(e["journey_id"], e["step_id"]): e["conversion"] for e in answer["experiments"]}
    for r in _raw(ctx, store.splits_from_runs(), b):
        kind = kinds.get((r.journey_id, r.step_id), "goal")
        raw[(r.journey_id, r.step_id, r.branch)] = (
            int(r.exposures),
            int(r.goals if kind == "goal" else r.clicks),
        )
    api = {}
    for e in answer["experiments"]:
        for v in e["variants"]:
            api[(e["journey_id"], e["step_id"], v["name"])] = (v["exposures"], v["conversions"])
        if e["holdout"]:
            h = e["holdout"]
            api[(e["journey_id"], e["step_id"], "holdout")] = (
                h["holdout_exposures"],
                h["holdout_conversions"],
            )
    same("A/B readouts", api, raw)


def _journey_funnel_reference(b: dict[str, datetime]) -> list[Any]:
    """The journey funnel's former query over the raw runs and steps (``analytics.store``'s
    ``journey_*_from_runs``), for the period of the bounds."""
    return [
        store.journey_entered_from_runs(data.JOURNEY, b["cs"], b["ce"]),
        store.journey_reached_from_runs(data.JOURNEY, b["cs"], b["ce"]),
    ]


def check_journey_funnel(ctx: AppContext, answer: dict[str, Any], b: dict[str, datetime]) -> None:
    """The journey funnel (from the journey's per-day funnel counters) against the same numbers from the
    raw runs and steps: entered, converted, and each step's runs in the same order."""
    head, steps = (_raw(ctx, sql, b) for sql in _journey_funnel_reference(b))
    raw = (int(head[0].entered), int(head[0].converted), [(r.step_id, int(r.reached)) for r in steps])
    api = (answer["entered"], answer["converted"], [(s["step_id"], s["reached"]) for s in answer["steps"]])
    same("journey funnel", api, raw)


def check_links(ctx: AppContext, answer: list[dict[str, Any]], b: dict[str, datetime]) -> None:
    raw: dict[str, dict[str, int]] = {}
    for url, metric, n in _raw(ctx, data.RAW_LINKS, b):
        raw.setdefault(url, {})["machine_clicked" if metric.endswith(".machine") else "clicked"] = int(n)
    api = {r["url"]: {k: r[k] for k in ("clicked", "machine_clicked") if r[k]} for r in answer}
    same("email links of t1", api, raw)


# ---- (a) and (b): the pages -----------------------------------------------------------------------------


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = call()
    return time.perf_counter() - started, answer


def pages(ctx: AppContext, requests: int, raw_repeats: int) -> list[dict[str, Any]]:
    end = ctx.clock.now().date()
    start = end - timedelta(days=29)
    period = {"from": start.isoformat(), "to": end.isoformat()}
    b = _bounds(start, end)
    with ctx.db.write() as conn:
        _, key = keys.create_key(conn, ctx.clock, name="bench", scopes=("admin",), actor="bench")
    user = crm.create_user(
        ctx,
        crm.UserCreate.model_validate({"name": "Bench", "email": "bench@example.com", "role": "admin"}),
        actor="bench",
    )
    web.set_password(ctx, user.id, PASSWORD, actor="bench")
    api = "/api/v1/analytics"
    email_checks = {
        f"email by {d}": (f"{api}/email", {"by": d}, d) for d in ("template", "journey", "step", "broadcast")
    }
    # (name, path, params, raw SQL for its numbers or None, checker)
    plan: list[tuple[str, str, dict[str, str], list[Any] | None, Any]] = [
        ("/app/ (dashboard)", "/app/", {}, [data.RAW_STAGES, data.RAW_MEDIANS, data.RAW_SOURCES,
                                             data.raw_email(""), data.raw_email("template")], None),
        ("kpis", f"{api}/kpis", {}, [data.RAW_STAGES, data.raw_email("")], check_kpis),
        ("funnel", f"{api}/funnel", {}, [data.RAW_STAGES, data.RAW_MEDIANS], check_funnel),
        ("funnel exact=true", f"{api}/funnel", {"exact": "true"}, [data.RAW_STAGES, data.RAW_MEDIANS],
         check_funnel),
        ("sources", f"{api}/sources", {}, [data.RAW_SOURCES], check_sources),
        *[(name, path, params, [data.raw_email(d)], lambda c, a, bb, d=d: check_email(c, d, a, bb))
          for name, (path, params, d) in email_checks.items()],
        ("email links (t1)", f"{api}/email/templates/t1/links", {}, [data.RAW_LINKS], check_links),
        ("journey funnel", f"{api}/journeys/{data.JOURNEY}/funnel", {}, _journey_funnel_reference(b),
         check_journey_funnel),
        ("health (sync, webhooks)", f"{api}/health", {}, None, None),
        ("A/B readouts", f"{api}/experiments", {}, [store.splits_from_runs()], check_experiments),
    ]  # fmt: skip
    found = []
    with TestClient(create_app(ctx, run_worker=False)) as client:
        token = web_sign_in(client)
        del token
        headers = {"Authorization": f"Bearer {key}"}
        for name, path, params, raw_sql, check in plan:
            query = {**period, **params}
            client.get(path, params=query, headers=headers)  # warm
            times = []
            answer: Any = None
            for _ in range(requests):
                took, response = timed(functools.partial(client.get, path, params=query, headers=headers))
                assert response.status_code == 200, (path, response.status_code, response.text[:300])
                times.append(took)
                answer = response
            row: dict[str, Any] = {"page": name, "p50": pct(times, 0.5), "p95": pct(times, 0.95)}
            if raw_sql is not None:
                raw_times = []
                for _ in range(raw_repeats):
                    started = time.perf_counter()
                    for sql in raw_sql:
                        _raw(ctx, sql, b)
                    raw_times.append(time.perf_counter() - started)
                row["raw"] = statistics.median(raw_times)
                row["ratio"] = row["raw"] / row["p50"]
                if check is not None:
                    check(ctx, answer.json(), b)
                    row["checked"] = True
            found.append(row)
            print(f"  {_line(row)}", flush=True)
        attribution = []
        for _ in range(3):
            took, response = timed(
                lambda: client.get(
                    f"{api}/attribution", params={**period, "conversion": "order.completed"}, headers=headers
                )
            )
            assert response.status_code == 200, response.text[:300]
            body = response.json()
            attribution.append(took)
        conversions = int(body["conversions"])
        found.append({"page": "attribution (5 models)", "p50": statistics.median(attribution),
                      "p95": max(attribution), "conversions": conversions,
                      "models": len(body.get("models", []))})  # fmt: skip
        print(f"  {_line(found[-1])}", flush=True)
    return found


def web_sign_in(client: TestClient) -> str:
    form = client.get("/app/login").text
    csrf = form.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    answer = client.post(
        "/app/login",
        data={"email": "bench@example.com", "password": PASSWORD, "csrf": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text[:300]
    return csrf


def _line(row: dict[str, Any]) -> str:
    text = f"{row['page']:<26} p50 {row['p50'] * 1000:8.1f} ms  p95 {row['p95'] * 1000:8.1f} ms"
    if "raw" in row:
        text += f"  raw {row['raw'] * 1000:9.1f} ms  x{row['ratio']:.0f}"
        text += "  (numbers equal)" if row.get("checked") else ""
    if "conversions" in row:
        text += f"  {row['models']} models, {row['conversions']:,} conversions"
    return text


# ---- (c): rollup upkeep while events arrive -------------------------------------------------------------


def _backend_cpu(ctx: AppContext) -> float:
    """CPU seconds used so far by the PostgreSQL backends of the connections named ``rollup``."""
    with ctx.db.engine.connect() as conn:
        pids = (
            conn.exec_driver_sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'rollup'")
            .scalars()
            .all()
        )
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _props(n: int) -> str:
    return f'{{"template_id": "t{n % 20}", "machine_generated": {str(n % 7 == 0).lower()}}}'


def upkeep(ctx: AppContext, worker: AppContext, rate: int, seconds: float, every: float) -> dict[str, Any]:
    stop = threading.Event()
    inserted = [0]
    contacts = ["C" + str(1 + n).rjust(25, "0") for n in range(1000)]

    def arrive() -> None:
        tick, n = rate // 10, 0
        with ctx.db.engine.connect() as conn:
            following = time.monotonic()
            while not stop.is_set():
                now = datetime.now(UTC)
                rows = []
                for _ in range(tick):
                    n += 1
                    email = n % 3 == 0
                    rows.append({
                        "type": "track" if email else "page",
                        "event": "leadflow.email_opened" if email else None,
                        "contact_id": contacts[n % len(contacts)],
                        "properties": _props(n) if email else '{"url": "https://site.example/"}',
                        "at": now,
                        "source": "internal" if email else "api",
                        "mid": f"live-{n}",
                    })  # fmt: skip
                conn.execute(sa.text(
                    "INSERT INTO events (type, event, contact_id, properties, context, timestamp, "
                    "received_at, processed_at, source, message_id) VALUES (:type, :event, :contact_id, "
                    "CAST(:properties AS jsonb), '{}', :at, :at, :at, :source, :mid)"), rows)  # fmt: skip
                conn.commit()
                inserted[0] += len(rows)
                following += 0.1
                stop.wait(max(0.0, following - time.monotonic()))

    analytics.maintain(worker, max_batches=1 << 30)  # the connections exist before the measure
    producer = threading.Thread(target=arrive, daemon=True)
    cpu0, db0, wall0 = time.thread_time(), _backend_cpu(ctx), time.monotonic()
    producer.start()
    runs = 0
    while time.monotonic() - wall0 < seconds:
        stop.wait(every)
        analytics.maintain(worker)
        runs += 1
    stop.set()
    producer.join()
    wall = time.monotonic() - wall0
    cpu, db = time.thread_time() - cpu0, _backend_cpu(ctx) - db0
    time.sleep(float(rollups.SETTLE.total_seconds()) + 1)
    analytics.maintain(worker, max_batches=1 << 30)
    with ctx.db.engine.connect() as conn:
        last = conn.exec_driver_sql("SELECT max(id) FROM events").scalar()
        mark = rollups.current_mark(conn)
        live = conn.exec_driver_sql("SELECT count(*) FROM events WHERE message_id LIKE 'live-%%'").scalar()
    return {"events": inserted[0], "rate": inserted[0] / wall, "wall": wall, "runs": runs,
            "worker_cpu": cpu, "db_cpu": db, "share": (cpu + db) / wall,
            "caught_up": mark == last, "live": live}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="1 = 1M contacts, 10M events, 100k conversions"
    )
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--raw", type=int, default=3, help="runs of each raw-event reference (median)")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between rollup runs in (c)")
    parser.add_argument("--parts", default="abc")
    parser.add_argument("--runs", type=int, default=None, help="journey runs (default: 100k times the scale)")
    args = parser.parse_args()
    sizes = data.Sizes.of(args.scale)
    if args.runs is not None:
        sizes = dataclasses.replace(sizes, runs=args.runs)
    print(f"machine: {machine()}; load average {os.getloadavg()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"sizes: {sizes}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = create_database("postgresql", Path(tmp))
        settings = Settings(
            database_url=url, secret_key="bench-secret", api_rate_limit=0, ingest_rate_limit=0
        )
        ctx = build_context(settings)
        worker = build_context(settings.model_copy(update={"database_url": url + "?application_name=rollup"}))
        try:
            started = time.perf_counter()
            seed(ctx, sizes)
            print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
            took, counters = timed(lambda: journeys.rebuild_split_counters(ctx))  # as migration 0024 does
            print(
                f"split counters rebuilt from {sizes.runs:,} runs in {took:.1f} s ({counters} rows)",
                flush=True,
            )
            took, counters = timed(lambda: journeys.rebuild_funnel_counters(ctx))  # as migration 0025 does
            print(
                f"journey funnel counters rebuilt from {sizes.runs:,} runs in {took:.1f} s ({counters} rows)",
                flush=True,
            )
            took, counted = timed(lambda: profiles.recount_contacts(ctx))  # loaded around the engine
            print(f"contacts recounted: {counted:,} in {took:.1f} s", flush=True)
            with ctx.db.engine.connect() as conn:
                total = int(conn.exec_driver_sql("SELECT count(*) FROM events").scalar() or 0)
            took, progress = timed(lambda: analytics.maintain(ctx, max_batches=1 << 30))
            print(f"rollup catch-up: {total:,} events in {took:.0f} s ({total / took:,.0f} events/s, "
                  f"{progress.batches} batches)", flush=True)  # fmt: skip
            failed = []
            if "a" in args.parts or "b" in args.parts:
                rows = pages(ctx, args.requests, args.raw)
                for row in rows:
                    if "exact=true" in row["page"]:  # the opt-in exact medians: measured, not a page
                        continue
                    if row["p95"] > (TARGET_ATTRIBUTION if "conversions" in row else TARGET_P95):
                        failed.append(f"{row['page']} p95")
                    if row.get("ratio", TARGET_RATIO) < TARGET_RATIO:
                        failed.append(f"{row['page']} ratio")
            if "c" in args.parts:
                print(f"load average {os.getloadavg()}", flush=True)
                up = upkeep(ctx, worker, args.rate, args.seconds, args.every)
                print(f"  upkeep: {up['events']:,} events at {up['rate']:.0f}/s over {up['wall']:.0f} s, "
                      f"{up['runs']} runs; worker {up['worker_cpu']:.2f} s + PostgreSQL {up['db_cpu']:.2f} s "
                      f"CPU = {up['share'] * 100:.1f} % of a core; caught up: {up['caught_up']}")  # fmt: skip
                if up["share"] >= TARGET_CPU or not up["caught_up"]:
                    failed.append("upkeep")
            print(f"load average {os.getloadavg()}")
            print("targets missed: " + (", ".join(failed) if failed else "none"))
        finally:
            worker.close()
            ctx.close()
            drop_database(url)


if __name__ == "__main__":
    main()
