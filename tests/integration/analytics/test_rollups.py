"""Rollups: incremental maintenance equals a recomputation from scratch, whatever the batches, a crash
between them or a rebuild from a day; and the sums equal a reference count over the raw events."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadflow.analytics import rollups
from leadflow.analytics import service as analytics
from leadflow.analytics.models import (
    analytics_daily,
    analytics_hourly,
    analytics_marks,
    analytics_stage_entries,
)
from leadflow.events.models import events
from leadflow.kernel.context import AppContext
from leadflow.runtime import scheduler

START = datetime(2026, 3, 1, tzinfo=UTC)
CONTACTS = ("c1", "c2", "c3", "c4")
STATUSES = ("sent", "bounced", "opened", "clicked", "unsubscribed", "complained")


def _event(number: int, kind: tuple[Any, ...]) -> dict[str, Any]:
    name, contact, hours, extra = kind
    row: dict[str, Any] = {
        "message_id": f"m{number}",
        "type": "track",
        "event": name,
        "contact_id": contact,
        "properties": extra,
        "timestamp": START + timedelta(hours=hours),
        "received_at": START,
        "processed_at": START,
        "source": "internal" if name.startswith("leadflow.") else "api",
    }
    return row


stage_changes = st.tuples(
    st.just("leadflow.stage_changed"),
    st.sampled_from(CONTACTS),
    st.integers(0, 80),
    st.fixed_dictionaries({"to": st.sampled_from(("lead", "mql", "sql", "customer"))}),
)
emails = st.tuples(
    st.sampled_from([f"leadflow.email_{s}" for s in STATUSES]),
    st.sampled_from(CONTACTS),
    st.integers(0, 80),
    st.fixed_dictionaries(
        {
            "template_id": st.sampled_from(("t1", "t2")),
            "journey_id": st.sampled_from(("j1", None)),
            "step_id": st.just("s1"),
            "broadcast_id": st.sampled_from(("b1", None)),
            "machine_generated": st.booleans(),
            "url": st.sampled_from((None, "https://a.example/x", "https://a.example/y?q=1")),
        }
    ),
)
tracks = st.tuples(
    st.sampled_from(("Signed Up", "order.completed")),
    st.sampled_from(CONTACTS),
    st.integers(0, 80),
    st.just({}),
)
streams = st.lists(st.one_of(stage_changes, emails, tracks), min_size=1, max_size=25)


def _reset(ctx: AppContext) -> None:
    with ctx.db.write() as conn:
        for table in (events, analytics_daily, analytics_hourly, analytics_stage_entries, analytics_marks):
            conn.execute(table.delete())


def _append(ctx: AppContext, stream: list[Any], first: int) -> None:
    if not stream:
        return
    with ctx.db.write() as conn:
        conn.execute(events.insert(), [_event(first + i, kind) for i, kind in enumerate(stream)])


def _snapshot(ctx: AppContext) -> dict[str, Any]:
    with ctx.db.read() as conn:
        return rollups.snapshot(conn)


def _reference(stream: list[Any]) -> Counter[tuple[date, str, str, str]]:
    """The daily rows computed in Python straight from the stream (first stage entry by order)."""
    found: Counter[tuple[date, str, str, str]] = Counter()
    seen: set[tuple[str, str]] = set()
    for name, contact, hours, extra in stream:
        day = (START + timedelta(hours=hours)).date()
        if name == "leadflow.stage_changed":
            if (contact, extra["to"]) not in seen:
                seen.add((contact, extra["to"]))
                found[(day, "stage.entered", "stage", extra["to"])] += 1
                if extra["to"] == "lead":
                    found[(day, "leads", "utm", "(direct)|(none)|(none)")] += 1
        elif name.startswith("leadflow.email_"):
            metric = "email." + name.removeprefix("leadflow.email_")
            if extra["machine_generated"]:
                metric += ".machine"
            keys = {"": "", "template": extra["template_id"], "broadcast": extra.get("broadcast_id")}
            if extra.get("journey_id"):
                keys |= {"journey": extra["journey_id"], "step": f"{extra['journey_id']}:{extra['step_id']}"}
            if extra.get("url"):  # clicks by link
                keys["link"] = f"{extra['template_id']}|{extra['url']}"
            for dimension, key in keys.items():
                if key is not None:
                    found[(day, metric, dimension, key)] += 1
        else:
            if (contact, "visitor") not in seen:
                seen.add((contact, "visitor"))
                found[(day, "stage.entered", "stage", "visitor")] += 1
            found[(day, "track", "event", name)] += 1
    return found + _gap_reference(stream)


LIFECYCLE = ("visitor", "lead", "mql", "sql", "customer", "advocate")


def _gap_reference(stream: list[Any]) -> Counter[tuple[date, str, str, str]]:
    """The gap histograms: per consecutive pair of stages a contact entered (first entries, the later
    not before the earlier), one count on the later entry's day in ``floor(log_1.005(ms))``."""
    entered: dict[tuple[str, str], int] = {}
    for name, contact, hours, extra in stream:
        stage = extra["to"] if name == "leadflow.stage_changed" else None
        if name != "leadflow.stage_changed" and not name.startswith("leadflow."):
            stage = "visitor"
        if stage is not None:
            entered.setdefault((contact, stage), hours)
    found: Counter[tuple[date, str, str, str]] = Counter()
    for contact in CONTACTS:
        for earlier, later in itertools.pairwise(LIFECYCLE):
            a, b = entered.get((contact, earlier)), entered.get((contact, later))
            if a is not None and b is not None and b >= a:
                ms = (b - a) * 3_600_000
                bucket = -1 if ms < 1 else math.floor(math.log(ms) / math.log(1.005))
                found[
                    ((START + timedelta(hours=b)).date(), f"gap:{earlier}>{later}", "gap", str(bucket))
                ] += 1
    return found


def _daily(snapshot: dict[str, Any]) -> Counter[tuple[date, str, str, str]]:
    return Counter({(r["day"], r["metric"], r["dimension"], r["key"]): r["count"] for r in snapshot["daily"]})


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(stream=streams, cut=st.integers(1, 25), batch=st.integers(1, 7))
def test_incremental_rollups_equal_a_rebuild_and_the_raw_events(
    ctx: AppContext, stream: list[Any], cut: int, batch: int
) -> None:
    _reset(ctx)
    head, tail = stream[:cut], stream[cut:]
    _append(ctx, head, 0)
    rollups.maintain(ctx, batch=batch, max_batches=100)
    _append(ctx, tail, len(head))  # more events after a first pass
    rollups.maintain(ctx, batch=batch, max_batches=100)
    incremental = _snapshot(ctx)
    assert +_daily(incremental) == +_reference(stream)  # gap histograms included
    hourly = Counter()
    for row in incremental["hourly"]:
        hourly[(row["hour"].date(), row["metric"], row["dimension"], row["key"])] += row["count"]
    daily = Counter({k: n for k, n in _daily(incremental).items() if k[2] != "gap"})  # gaps: daily only
    assert hourly == daily  # the hours of a day add up to the day
    analytics.rebuild(ctx)
    assert _snapshot(ctx) == incremental


def _die_inside_a_batch(ctx: AppContext, expected_mark: int) -> None:
    with ctx.db.write() as conn:
        assert rollups.roll_batch(conn, ctx, batch=2) == expected_mark
        raise RuntimeError("killed")


def test_a_crash_between_batches_counts_nothing_twice(ctx: AppContext) -> None:
    stream = [
        ("leadflow.stage_changed", "c1", 1, {"to": "lead"}),
        ("Signed Up", "c1", 2, {}),
        ("leadflow.email_sent", "c1", 3, {"template_id": "t1", "machine_generated": False}),
        ("leadflow.stage_changed", "c1", 30, {"to": "mql"}),
        ("leadflow.email_opened", "c1", 31, {"template_id": "t1", "machine_generated": False}),
        ("leadflow.stage_changed", "c2", 32, {"to": "lead"}),
    ]
    _append(ctx, stream, 0)
    with ctx.db.read() as conn:
        base = conn.execute(sa.select(sa.func.min(events.c.id))).scalar_one() - 1
    rollups.maintain(ctx, batch=2, max_batches=1)
    with pytest.raises(RuntimeError):  # the worker dies inside the next batch, before its commit
        _die_inside_a_batch(ctx, base + 4)
    with ctx.db.read() as conn:
        assert rollups.current_mark(conn) == base + 2
    progress = rollups.maintain(ctx, batch=2)
    assert progress.mark == base + 6
    assert _daily(_snapshot(ctx)) == _reference(stream)
    incremental = _snapshot(ctx)
    analytics.rebuild(ctx)
    assert _snapshot(ctx) == incremental


def test_rebuild_from_a_day_keeps_the_days_before_and_gives_the_same_numbers(ctx: AppContext) -> None:
    stream = [
        ("leadflow.stage_changed", "c1", 1, {"to": "lead"}),
        ("leadflow.stage_changed", "c2", 26, {"to": "lead"}),
        ("leadflow.stage_changed", "c1", 27, {"to": "mql"}),
        ("Signed Up", "c3", 50, {}),
    ]
    _append(ctx, stream, 0)
    rollups.maintain(ctx)
    before = _snapshot(ctx)
    with ctx.db.write() as conn:  # a day's rows lost or wrong: the rebuild from that day repairs them
        later = analytics_daily.c.day >= date(2026, 3, 2)
        conn.execute(analytics_daily.update().where(later).values(count=99))
    analytics.rebuild(ctx, start=date(2026, 3, 2))
    assert _snapshot(ctx) == before
    assert sorted(_daily(before).items()) == sorted(_reference(stream).items())


def test_the_mark_waits_for_events_the_processor_has_not_handled(ctx: AppContext) -> None:
    _append(ctx, [("Signed Up", "c1", 1, {}), ("Signed Up", "c2", 2, {}), ("Signed Up", "c3", 3, {})], 0)
    with ctx.db.write() as conn:
        second = conn.execute(sa.select(sa.func.min(events.c.id)).where(events.c.message_id == "m1")).scalar()
        conn.execute(events.update().where(events.c.id == second).values(processed_at=None, contact_id=None))
    assert rollups.maintain(ctx).mark == second - 1
    with ctx.db.write() as conn:
        conn.execute(events.update().where(events.c.id == second).values(processed_at=START, contact_id="c2"))
    assert rollups.maintain(ctx).mark == second + 1
    counts = _daily(_snapshot(ctx))
    assert counts[(date(2026, 3, 1), "track", "event", "Signed Up")] == 3
    assert counts[(date(2026, 3, 1), "stage.entered", "stage", "visitor")] == 3


def test_events_received_within_the_settling_time_wait_for_the_next_run(ctx: AppContext, clock: Any) -> None:
    """An id taken by a transaction still open must not be skipped: the newest events wait a little."""
    _append(ctx, [("Signed Up", "c1", 1, {})], 0)
    with ctx.db.write() as conn:
        conn.execute(events.update().values(received_at=clock.now()))
    assert rollups.maintain(ctx).batches == 0
    clock.advance(rollups.SETTLE - timedelta(seconds=1))
    assert rollups.maintain(ctx).batches == 0
    clock.advance(timedelta(seconds=1))
    assert rollups.maintain(ctx).batches == 1
    assert _daily(_snapshot(ctx))[(date(2026, 3, 1), "track", "event", "Signed Up")] == 1


def test_the_worker_schedules_the_rollup(ctx: AppContext) -> None:
    (task,) = [task for task in scheduler.tasks(ctx) if task.name == "analytics.rollup"]
    _append(ctx, [("Signed Up", "c1", 1, {})], 0)
    assert task.run().mark > 0
