"""Attribution reads on both databases: the report (the fast path, :mod:`leadflow.analytics.credits`)
equals the reference model (:func:`leadflow.analytics.attribution.attribute`) fed the same stored rows,
on pseudo-random touch sequences — pages with UTM tags (some twice at one moment), tracked events with a
campaign, email clicks from journeys — and conversions with odd values, for every dimension."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from leadflow.analytics import attribution, insights, store
from leadflow.analytics.attribution import Conversion, Touch
from leadflow.events import service as events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support import journeys as j
from tests.support.contacts import by_user
from tests.support.events import send

USERS = [f"u{i}" for i in range(8)]


def _seed(ctx: AppContext, clock: VirtualClock) -> None:
    rng = random.Random(15)
    for step in range(60):
        user = rng.choice(USERS)
        kind = rng.random()
        if kind < 0.45:
            source, medium, campaign = rng.choice("gfn"), rng.choice(["cpc", "email", ""]), rng.choice("xy")
            url = f"https://site.example/?utm_source={source}&utm_medium={medium}&utm_campaign={campaign}"
            page = {"type": "page", "userId": user, "properties": {"url": url}}
            send(ctx, *([page] * rng.choice([1, 1, 2])))
        elif kind < 0.6:
            context = {"campaign": {"source": rng.choice("pq"), "name": rng.choice(["fall", ""])}}
            send(ctx, {"type": "track", "userId": user, "event": "Signed up", "context": context})
        elif kind < 0.72:
            send(ctx, {"type": "identify", "userId": user, "traits": {"email": f"{user}@example.com"}})
            j.settle(ctx)
            clicked = {
                "message_id": f"m{step}",
                "journey_id": rng.choice(["jX", "jY"]),
                "machine_generated": False,
            }
            with ctx.db.write() as conn:
                events.emit(
                    conn, by_user(ctx, user)["id"], "leadflow.email_clicked", clicked, clock.now(), f"c{step}"
                )
        else:
            revenue = rng.choice(["100.00", "33.335", 7, "0.01", "-12.5", "1e3"])
            send(
                ctx,
                {
                    "type": "track",
                    "userId": user,
                    "event": "order.completed",
                    "properties": {"revenue": revenue},
                },
            )
        clock.advance(timedelta(hours=rng.choice([0, 0, 1, 30, 100])))
    j.settle(ctx)


def _reference(ctx: AppContext, first: datetime, last: datetime, by: Any, lookback: timedelta) -> Any:
    begin = datetime.combine(first.date(), time(), UTC)
    params = {"start": begin, "end": datetime.combine(last.date() + timedelta(days=1), time(), UTC)}
    params["since"] = begin - lookback
    with ctx.db.read() as conn:
        conversions = [
            Conversion(r.contact_id, r.timestamp, insights._value(r.properties, None))
            for r in conn.execute(store.conversions("order.completed", None), params)
        ]
        touches = [
            (r.contact_id, Touch(r.at, r.source, r.medium, r.campaign, r.journey, r.ord))
            for r in conn.execute(store.touches("order.completed", None), params)
        ]
    return attribution.attribute(conversions, touches, by=by, lookback=lookback)


def test_the_report_equals_the_reference_on_random_sequences(ctx: AppContext, clock: VirtualClock) -> None:
    start = clock.now()
    _seed(ctx, clock)
    first = start + timedelta(days=3)  # conversions before it use touches from before the period
    for by in attribution.DIMENSIONS:
        for days in (2, 90):
            report = insights.attribution_report(
                ctx, "order.completed", start=first.date(), end=clock.now().date(), by=by, lookback_days=days
            )
            expected = _reference(ctx, first, clock.now(), by, timedelta(days=days))
            assert report.conversions == expected.conversions > 3
            assert report.value == expected.value
            for block in report.models:
                cells = expected.cells[block.model]
                assert {c.key: (c.value, c.conversions) for c in block.credits} == {
                    key: (cell.value, round(float(cell.conversions), 6)) for key, cell in cells.items()
                }, (by, days, block.model)
                assert sum((c.value for c in block.credits), Decimal(0)) == report.value
            if days == 90:  # several touches shared: linear credits more keys than there are sources alone
                assert len({c.key for c in report.models[2].credits}) >= 3
