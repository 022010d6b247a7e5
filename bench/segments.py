"""Segment evaluation at scale: full refreshes, the hand-written SQL ceiling, a naive per-contact
engine, incremental re-evaluation latency and memory.

    python -m bench.segments [--contacts 1000000] [--events 10000000] [--backend postgresql|sqlite]
                             [--database-url URL]   # reuse generated data

Targets (PostgreSQL, 1M contacts / 10M events): full refresh < 5 s; compiled query at most 1.5 times
the hand-written SQL; at least 100 times faster than evaluating contact by contact in Python;
incremental p99 < 5 ms; memory flat.
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from tests.support.reference import World, evaluate

from bench.common import create_database, drop_database, machine
from bench.segments_data import NOW, contact_id, counts, load
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.db import Database
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context
from leadflow.segments import realtime, rules
from leadflow.segments import service as segments
from leadflow.segments.compiler import Compiler
from leadflow.segments.schemas import SegmentCreate

RULES: dict[str, dict[str, Any]] = {
    "attribute-only": {
        "all": [
            {"field": "traits.plan", "op": "eq", "value": "pro"},
            {"field": "traits.country", "op": "in", "value": ["US", "CA"]},
        ]
    },
    "attribute + event twice in 30d": {
        "all": [
            {"field": "traits.plan", "op": "in", "value": ["pro", "business"]},
            {"event": "Course Previewed", "count": {"gte": 2}, "within": "30d"},
        ]
    },
    "nested OR with email engagement": {
        "any": [
            {
                "all": [
                    {"field": "lifecycle_stage", "op": "eq", "value": "lead"},
                    {"email": "opened", "within": "14d"},
                ]
            },
            {
                "all": [
                    {"field": "traits.seats", "op": "gte", "value": 40},
                    {"email": "clicked", "journey": "nurture", "within": "30d"},
                ]
            },
        ]
    },
}


def hand_written(dialect: str, since14: str, since30: str) -> dict[str, str]:
    """The same rules as a person would write them for this database."""
    if dialect == "postgresql":
        plan, country, seats = (
            "lower(traits->>'plan')",
            "lower(traits->>'country')",
            "(traits->>'seats')::numeric",
        )
        human = "coalesce(properties->>'machine_generated', 'false') <> 'true'"
        journey = "lower(properties->>'journey_id')"
    else:
        plan, country = "lower(json_extract(traits, '$.plan'))", "lower(json_extract(traits, '$.country'))"
        seats = "json_extract(traits, '$.seats')"
        human = "coalesce(json_extract(properties, '$.machine_generated'), 0) <> 1"
        journey = "lower(json_extract(properties, '$.journey_id'))"
    return {
        "attribute-only": f"SELECT id FROM contacts WHERE {plan} = 'pro' AND {country} IN ('us', 'ca')",
        "attribute + event twice in 30d": (
            f"SELECT id FROM contacts WHERE {plan} IN ('pro', 'business') AND id IN ("
            f"SELECT contact_id FROM events WHERE event = 'Course Previewed' AND timestamp >= '{since30}' "
            "GROUP BY contact_id HAVING count(*) >= 2)"
        ),
        "nested OR with email engagement": (
            "SELECT id FROM contacts WHERE (lifecycle_stage = 'lead' AND id IN ("
            "SELECT contact_id FROM events "
            f"WHERE event = 'leadflow.email_opened' AND timestamp >= '{since14}' AND {human})) "
            f"OR ({seats} >= 40 AND id IN (SELECT contact_id FROM events "
            "WHERE event = 'leadflow.email_clicked' "
            f"AND timestamp >= '{since30}' AND {journey} = 'nurture' AND {human}))"
        ),
    }


def best_of(runs: int, work: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), result


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def naive_seconds_per_contact(ctx: Any, rule: Any, sample: int) -> float:
    """A hand-rolled engine: load each contact and its events, evaluate the rule in Python."""
    rng = random.Random(3)
    with ctx.db.read() as conn:
        total = conn.execute(sa.text("SELECT count(*) FROM contacts")).scalar_one()
        ids = [contact_id(rng.randrange(total)) for _ in range(sample)]
        started = time.perf_counter()
        for cid in ids:
            row = conn.execute(sa.text("SELECT * FROM contacts WHERE id = :id"), {"id": cid}).mappings().one()
            found = (
                conn.execute(sa.text("SELECT * FROM events WHERE contact_id = :id"), {"id": cid})
                .mappings()
                .all()
            )
            contact = {**row, "traits": _json(row["traits"]), "consent": {}}
            history = [
                {**e, "properties": _json(e["properties"]), "timestamp": _aware(e["timestamp"])}
                for e in found
            ]
            evaluate(rule, contact, World(now=NOW, contacts=[contact], events=history))
        return (time.perf_counter() - started) / sample


def _json(value: Any) -> Any:
    import orjson

    return orjson.loads(value) if isinstance(value, str | bytes) else value


def _aware(value: Any) -> Any:
    from datetime import UTC, datetime

    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def incremental(ctx: Any, samples: int) -> tuple[float, float]:
    """Re-evaluate the affected segments for one contact after one event (p50, p99 in ms)."""
    rng = random.Random(5)
    timings = []
    with ctx.db.read() as conn:
        total = conn.execute(sa.text("SELECT count(*) FROM contacts")).scalar_one()
    for _ in range(samples):
        cid = contact_id(rng.randrange(total))
        signals = {cid: {"event:Course Previewed", "event:leadflow.email_opened", "traits.plan"}}
        with ctx.db.write() as conn:
            started = time.perf_counter()
            realtime.reevaluate(conn, ctx, signals, NOW, lowest_band="cold")
            timings.append((time.perf_counter() - started) * 1000)
            conn.rollback()
    timings.sort()
    return statistics.median(timings), timings[int(len(timings) * 0.99) - 1]


def measure(ctx: Any, name: str, raw: dict[str, Any], hand: str, sample: int, people: int) -> None:
    rule = rules.parse(raw)
    compiled = Compiler(ctx.db.dialect, NOW).select_ids(rule).subquery()
    with ctx.db.read() as conn:
        ours, matched = best_of(
            3, lambda: conn.execute(sa.select(sa.func.count()).select_from(compiled)).scalar()
        )
        ceiling, theirs = best_of(
            3, lambda: conn.execute(sa.text(f"SELECT count(*) FROM ({hand}) h")).scalar()
        )
    segment = segments.create(ctx, SegmentCreate(name=name, rules=raw), actor="bench")
    first, _ = best_of(1, lambda: segments.refresh(ctx, segment.id))
    steady, _ = best_of(1, lambda: segments.refresh(ctx, segment.id))
    naive = naive_seconds_per_contact(ctx, rule, sample) * people
    print(
        f"  {name}: {matched:,} members (hand-written: {theirs:,}); query {ours:.2f} s, hand-written "
        f"{ceiling:.2f} s, ratio {ours / ceiling:.2f}; full refresh {first:.2f} s (first), {steady:.2f} s "
        f"(again); naive per-contact {naive:,.0f} s extrapolated, {naive / steady:,.0f} times slower; "
        f"peak rss {rss_mb():.0f} MB"
    )
    assert matched == theirs, "the compiled and the hand-written query disagree"


def run(args: argparse.Namespace, url: str) -> None:
    ctx = build_context(Settings(database_url=url, secret_key="bench"), clock=VirtualClock(NOW))
    ctx.signals.listen()  # as a worker does: segment changes arrive as signals, the catalog is cached
    people, found = counts(ctx.db)
    print(f"{ctx.db.dialect}: {people:,} contacts, {found:,} events")
    since = {d: (NOW - timedelta(days=d)).replace(tzinfo=None).isoformat(sep=" ") for d in (14, 30)}
    hand = hand_written(ctx.db.dialect, since[14], since[30])
    print(f"peak rss before: {rss_mb():.0f} MB")
    _forget_segments(ctx)
    for name, raw in RULES.items():
        measure(ctx, name, raw, hand[name], args.sample, people)
    p50, p99 = incremental(ctx, args.incremental)
    print(
        f"  incremental re-evaluation after one event: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
        f"({args.incremental} samples)"
    )
    print(f"peak rss after: {rss_mb():.0f} MB")
    _forget_segments(ctx)
    ctx.close()


def _forget_segments(ctx: Any) -> None:
    """Leave a reused database as it was: no segments, no events they emitted."""
    with ctx.db.write() as conn:
        conn.execute(sa.text("DELETE FROM segment_members"))
        conn.execute(sa.text("DELETE FROM segments"))
        conn.execute(sa.text("DELETE FROM events WHERE source = 'internal'"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="postgresql", choices=["postgresql", "sqlite"])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=None, help="default 10M on PostgreSQL, 5M on SQLite")
    parser.add_argument("--sample", type=int, default=10_000, help="contacts for the naive engine")
    parser.add_argument("--incremental", type=int, default=500)
    parser.add_argument("--database-url", default=None, help="reuse a database loaded by an earlier run")
    parser.add_argument("--keep", action="store_true", help="keep the generated database and print its URL")
    args = parser.parse_args()
    count = args.events or (10_000_000 if args.backend == "postgresql" else 5_000_000)
    print(f"machine: {machine()}")
    url = args.database_url
    workdir = Path(tempfile.mkdtemp(prefix="leadflow-bench-"))
    if url is None:
        url = create_database(args.backend, workdir)
        db = Database(url)
        load(db, args.contacts, count)
        db.dispose()
        if args.keep:
            print(f"data kept at {url}")
    try:
        run(args, url)
    finally:
        if not args.keep and args.database_url is None:
            drop_database(url)
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
