"""Touches recorded when events are applied (``touchpoints`` of kind page, track and click) are what
attribution reads: on both databases they equal the read from the raw events they replaced
(:func:`leadflow.analytics.store.touches_from_events`), and migration 0027's backfill writes the same rows
the ingest path does."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from leadflow.analytics import store
from leadflow.contacts.models import touchpoints
from leadflow.events import service as events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support import journeys as j
from tests.support import migrations
from tests.support.contacts import by_user
from tests.support.events import send

USERS = [f"u{i}" for i in range(6)]
LOOKBACK = timedelta(days=90)


def _stream(ctx: AppContext, clock: VirtualClock, seed: int, steps: int) -> None:
    """Pages with and without UTM, tracked events with and without a campaign, captured leads with a
    source, UTM or neither, people's and machines' email clicks from journeys and broadcasts, orders,
    and anonymous visitors merged into known contacts."""
    rng = random.Random(seed)
    for step in range(steps):
        user = rng.choice(USERS)
        kind = rng.random()
        if kind < 0.2:
            tag = rng.choice(["?utm_source=g&utm_medium=cpc&utm_campaign=x", "?utm_source=f", "", "?a=1"])
            send(ctx, {"type": "page", "userId": user, "properties": {"url": f"https://site.example/{tag}"}})
        elif kind < 0.3:
            anonymous = f"anon{step}"
            url = "https://site.example/?utm_source=n&utm_campaign=spring"
            send(ctx, {"type": "page", "anonymousId": anonymous, "properties": {"url": url}})
            campaign = {"source": "p", "medium": "social", "name": "fall"}
            send(
                ctx,
                {
                    "type": "track",
                    "anonymousId": anonymous,
                    "event": "Viewed",
                    "context": {"campaign": campaign},
                },
            )
            j.settle(ctx)
            send(ctx, {"type": "identify", "userId": user, "anonymousId": anonymous})
        elif kind < 0.45:
            context: dict[str, Any] = rng.choice(
                [
                    {"campaign": {"source": rng.choice("pq"), "name": rng.choice(["fall", ""])}},
                    {},
                    {"campaign": {}},
                ]
            )
            send(ctx, {"type": "track", "userId": user, "event": "Signed up", "context": context})
        elif kind < 0.55:
            properties = rng.choice(
                [
                    {"source": "chat"},
                    {
                        "source": "ads",
                        "utm": {"utm_source": "li", "utm_medium": "paid", "utm_campaign": "q4"},
                    },
                    {},
                    {"source": 7},
                ]
            )
            send(ctx, {"type": "track", "userId": user, "event": "lead.captured", "properties": properties})
        elif kind < 0.75:
            send(ctx, {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"}})
            j.settle(ctx)
            clicked: dict[str, Any] = {"message_id": f"m{step}", "machine_generated": rng.random() < 0.25}
            if rng.random() < 0.6:
                clicked["journey_id"] = rng.choice(["jX", "jY"])
            else:
                clicked["broadcast_id"] = rng.choice(["b1", "b2"])
            with ctx.db.write() as conn:
                events.emit(
                    conn, by_user(ctx, user)["id"], "leadflow.email_clicked", clicked, clock.now(), f"c{step}"
                )
        else:
            send(
                ctx,
                {"type": "track", "userId": user, "event": "order.completed", "properties": {"revenue": 9}},
            )
        clock.advance(timedelta(hours=rng.choice([0, 1, 30])))
    j.settle(ctx)


def _params(ctx: AppContext, start: Any) -> dict[str, Any]:
    return {"start": start, "end": ctx.clock.now() + timedelta(seconds=1), "since": start - LOOKBACK}


def _rows(ctx: AppContext, query: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    with ctx.db.read() as conn:
        return [tuple(row) for row in conn.execute(query, params)]


def test_recorded_touches_equal_the_raw_read(ctx: AppContext, clock: VirtualClock) -> None:
    start = clock.now()
    _stream(ctx, clock, seed=23, steps=70)
    params = _params(ctx, start)
    for event, stage in (("order.completed", None), (None, "lead")):
        recorded = _rows(ctx, store.touches(event, stage), params)
        assert recorded == _rows(ctx, store.touches_from_events(event, stage), params)
        assert recorded  # the comparison is not between two empty reads
    with ctx.db.read() as conn:
        kinds = dict(
            conn.execute(sa.select(touchpoints.c.kind, sa.func.count()).group_by(touchpoints.c.kind)).all()
        )
    assert set(kinds) == {"page", "track", "click"}


def test_touches_by_kind_as_recorded(ctx: AppContext, clock: VirtualClock) -> None:
    """Checked by value: a captured lead's source and UTM, a click from a broadcast, a machine's click
    (no touch), a tracked event without a campaign (no touch)."""
    utm = {"utm_source": " li ", "utm_medium": "paid", "utm_campaign": "q4"}
    send(ctx, {"type": "identify", "userId": "u0", "traits": {"email": "u0@example.com"}})
    send(
        ctx,
        {
            "type": "track",
            "userId": "u0",
            "event": "lead.captured",
            "properties": {"source": "ads", "utm": utm},
        },
    )
    send(ctx, {"type": "track", "userId": "u0", "event": "Signed up", "context": {"campaign": {"name": "x"}}})
    j.settle(ctx)
    contact_id = by_user(ctx, "u0")["id"]
    with ctx.db.write() as conn:
        events.emit(conn, contact_id, "leadflow.email_clicked", {"broadcast_id": "b9"}, clock.now(), "k1")
        events.emit(
            conn,
            contact_id,
            "leadflow.email_clicked",
            {"journey_id": "j1", "machine_generated": True},
            clock.now(),
            "k2",
        )
    j.settle(ctx)
    columns = (
        touchpoints.c.kind,
        touchpoints.c.source,
        touchpoints.c.medium,
        touchpoints.c.campaign,
        touchpoints.c.journey,
    )
    with ctx.db.read() as conn:
        rows = conn.execute(sa.select(*columns).order_by(touchpoints.c.event_id)).all()
    assert [tuple(r) for r in rows] == [
        ("track", "li", "paid", "q4", None),
        ("click", "email", "email", "b9", None),
    ]


def test_migration_0027_backfills_what_ingest_records(ctx: AppContext, clock: VirtualClock) -> None:
    _stream(ctx, clock, seed=5, steps=50)
    t = touchpoints.c
    columns = (t.contact_id, t.event_id, t.occurred_at, t.source, t.medium, t.campaign, t.journey, t.kind)
    query = sa.select(*columns).where(t.kind != "page").order_by(t.event_id)
    with ctx.db.read() as conn:
        recorded = [tuple(r) for r in conn.execute(query)]
    assert {row[-1] for row in recorded} == {"track", "click"}
    migration = migrations.load("0027_touchpoints_from_events.py")
    with ctx.db.write() as conn:
        conn.execute(touchpoints.delete().where(t.kind != "page"))
        conn.exec_driver_sql(migration._sql(conn.dialect.name))
    with ctx.db.read() as conn:
        assert [tuple(r) for r in conn.execute(query)] == recorded
