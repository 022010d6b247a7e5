"""Attribution alone (issue 15 §5 (b): all five models over 100k conversions ≤ 5 s), on the data of
``bench.analytics`` without its rollup catch-up and dashboard pages:

    python -m bench.attribution [--scale 1.0] [--repeats 3] [--by source,medium,campaign,journey]

A fresh PostgreSQL database (created and dropped here) loaded by ``bench.analytics_data`` (at scale 1:
1M contacts, 10M events, 100k ``order.completed`` conversions in the last 30 days); then
``GET /api/v1/analytics/attribution`` for the last 30 days, all five models, per dimension, in process
(FastAPI test client: server time, no network): one warm-up, then ``--repeats`` timed requests. Also the
time of the two reads alone (conversions, touchpoints), so the SQL and the Python parts are apart, and of
the touches read from the raw events as before they were recorded at ingest (the same rows, checked).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

from fastapi.testclient import TestClient

from bench import analytics_data as data
from bench.analytics import seed
from bench.common import create_database, drop_database, machine
from leadflow.analytics import store
from leadflow.api.app import create_app
from leadflow.auth import service as keys
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context

TARGET = 5.0


def reads(ctx: AppContext) -> tuple[float, float, float, int, int]:
    """Seconds to read the conversions, the touchpoints (all rows fetched) and the same touches from the
    raw events as before they were recorded at ingest (``store.touches_from_events``), and the counts."""
    end = ctx.clock.now().date()
    begin = datetime.combine(end - timedelta(days=29), dtime(), UTC)
    params = {"start": begin, "end": datetime.combine(end + timedelta(days=1), dtime(), UTC)}
    params["since"] = begin - timedelta(days=90)
    with ctx.db.read() as conn:
        started = time.perf_counter()
        conversions = len(conn.execute(store.conversions("order.completed", None), params).all())
        middle = time.perf_counter()
        touches = len(conn.execute(store.touches("order.completed", None), params).all())
        after = time.perf_counter()
        raw = len(conn.execute(store.touches_from_events("order.completed", None), params).all())
        assert raw == touches, (raw, touches)
        return middle - started, after - middle, time.perf_counter() - after, conversions, touches


def run(ctx: AppContext, repeats: int, dimensions: list[str]) -> list[str]:
    end = ctx.clock.now().date()
    period = {"from": (end - timedelta(days=29)).isoformat(), "to": end.isoformat()}
    with ctx.db.write() as conn:
        _, key = keys.create_key(conn, ctx.clock, name="bench", scopes=("admin",), actor="bench")
    headers = {"Authorization": f"Bearer {key}"}
    failed = []
    with TestClient(create_app(ctx, run_worker=False)) as client:
        for by in dimensions:
            params = {**period, "conversion": "order.completed", "by": by}
            times = []
            for attempt in range(repeats + 1):
                started = time.perf_counter()
                answer = client.get("/api/v1/analytics/attribution", params=params, headers=headers)
                took = time.perf_counter() - started
                assert answer.status_code == 200, answer.text[:300]
                if attempt:
                    times.append(took)
            body = answer.json()
            conversions = int(body["conversions"])
            p50 = statistics.median(times)
            print(f"  by {by}: {conversions:,} conversions, {len(body['models'])} models: p50 {p50:.2f} s, "
                  f"max {max(times):.2f} s ({conversions / p50:,.0f} conversions/s); "
                  f"load average {os.getloadavg()}", flush=True)  # fmt: skip
            if max(times) > TARGET:
                failed.append(f"by {by}")
    return failed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="1 = 100k conversions, 10M events")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--by", default="source,medium,campaign,journey")
    args = parser.parse_args()
    sizes = data.Sizes.of(args.scale)
    print(f"machine: {machine()}; load average {os.getloadavg()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"sizes: {sizes}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = create_database("postgresql", Path(tmp))
        ctx = build_context(
            Settings(database_url=url, secret_key="bench-secret", api_rate_limit=0, ingest_rate_limit=0)
        )
        try:
            started = time.perf_counter()
            seed(ctx, sizes)
            print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
            for _ in range(2):
                conv, touch, raw, n_conv, n_touch = reads(ctx)
                print(f"  reads alone: {n_conv:,} conversions in {conv:.2f} s, {n_touch:,} touchpoints in "
                      f"{touch:.2f} s (from the raw events: {raw:.2f} s, {raw / touch:.1f}x)",
                      flush=True)  # fmt: skip
            failed = run(ctx, args.repeats, args.by.split(","))
            print(f"load average {os.getloadavg()}")
            print("target (≤ 5 s) missed: " + (", ".join(failed) if failed else "none"))
        finally:
            ctx.close()
            drop_database(url)


if __name__ == "__main__":
    main()
