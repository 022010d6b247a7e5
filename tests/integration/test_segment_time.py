"""Relative dates, anniversaries and time zones, on the virtual clock; the library segments' meaning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.segments import library
from leadflow.segments import service as segments
from tests.support.events import send
from tests.support.http import bearer


@pytest.fixture
def api(client: TestClient, admin_key: str) -> TestClient:
    client.headers.update(bearer(admin_key))
    return client


def _matching(api: TestClient, rules: dict[str, Any]) -> set[str]:
    found = api.post("/api/v1/segments/preview", json={"rules": rules}).json()["contacts"]
    return {c["email"] for c in found}


def test_birthdays_follow_each_contacts_time_zone(api: TestClient, clock: VirtualClock) -> None:
    # 2026-05-16 11:30 UTC: already 17 May on Kiritimati (UTC+14), still 16 May in Los Angeles.
    clock.set(datetime(2026, 5, 16, 11, 30, tzinfo=UTC))
    people = {
        "kiri@example.com": "Pacific/Kiritimati",
        "la@example.com": "America/Los_Angeles",
        "utc@example.com": None,
    }
    for email, zone in people.items():
        body: dict[str, Any] = {"email": email, "traits": {"birthday": "1990-05-17"}}
        if zone:
            body["timezone"] = zone
        api.post("/api/v1/contacts", json=body)
    birthday = {"field": "traits.birthday", "op": "anniversary_today"}
    assert _matching(api, birthday) == {"kiri@example.com"}
    clock.set(datetime(2026, 5, 17, 9, 0, tzinfo=UTC))
    assert _matching(api, birthday) == {"la@example.com", "utc@example.com", "kiri@example.com"}
    clock.set(datetime(2026, 5, 17, 12, 0, tzinfo=UTC))  # past midnight on Kiritimati: the 18th there
    assert _matching(api, birthday) == {"la@example.com", "utc@example.com"}


def test_leap_day_birthdays_are_celebrated_on_the_28th_in_common_years(
    api: TestClient, clock: VirtualClock
) -> None:
    api.post("/api/v1/contacts", json={"email": "leap@example.com", "traits": {"birthday": "1992-02-29"}})
    birthday = {"field": "traits.birthday", "op": "anniversary_today"}
    clock.set(datetime(2027, 2, 28, 12, 0, tzinfo=UTC))
    assert _matching(api, birthday) == {"leap@example.com"}
    clock.set(datetime(2028, 2, 28, 12, 0, tzinfo=UTC))  # a leap year: wait for the 29th
    assert _matching(api, birthday) == set()
    clock.set(datetime(2028, 2, 29, 12, 0, tzinfo=UTC))
    assert _matching(api, birthday) == {"leap@example.com"}


def test_relative_windows_move_with_the_clock(api: TestClient, clock: VirtualClock) -> None:
    api.post(
        "/api/v1/contacts", json={"email": "t@example.com", "traits": {"trial_ends": "2026-03-05T00:00:00Z"}}
    )
    ends_soon = {"field": "traits.trial_ends", "op": "before", "value": "2026-03-06"}
    assert _matching(api, ends_soon) == {"t@example.com"}
    created_recently = {"field": "created_at", "op": "within_last", "value": "2d"}
    assert _matching(api, created_recently) == {"t@example.com"}
    clock.advance(timedelta(days=3))
    assert _matching(api, created_recently) == set()
    assert _matching(api, {"field": "created_at", "op": "more_than_ago", "value": "2d"}) == {"t@example.com"}
    ended = {"field": "traits.trial_ends", "op": "within_last", "value": "1d"}
    assert _matching(api, ended) == {"t@example.com"}


def test_library_segments_mean_what_they_say(
    api: TestClient, ctx: AppContext, clock: VirtualClock, processor: EventProcessor
) -> None:
    send(
        ctx,
        {"type": "identify", "userId": "big", "traits": {"email": "big@example.com", "plan": "pro"}},
        {"type": "track", "userId": "big", "event": "Order Completed", "properties": {"revenue": 300}},
        {"type": "track", "userId": "big", "event": "Order Completed", "properties": {"revenue": 250.5}},
        {"type": "identify", "userId": "small", "traits": {"email": "small@example.com", "plan": "trial"}},
        {"type": "track", "userId": "small", "event": "Order Completed", "properties": {"revenue": "900"}},
        {"type": "track", "userId": "cart", "event": "Product Added"},
        {"type": "identify", "userId": "cart", "traits": {"email": "cart@example.com", "plan": "free"}},
        {"type": "track", "userId": "bought", "event": "Product Added"},
        {"type": "track", "userId": "bought", "event": "Order Completed", "properties": {"revenue": 10}},
        {"type": "identify", "userId": "bought", "traits": {"email": "bought@example.com"}},
    )
    processor.drain()
    installed = {s.name: s.id for s in library.install(ctx, actor="test")}

    def members(name: str) -> set[str]:
        segments.refresh(ctx, installed[name])
        found = api.get(f"/api/v1/segments/{installed[name]}/members").json()["data"]
        return {m["contact"]["email"] for m in found}

    assert members("High-value customers (spent > 500)") == {"big@example.com"}  # "900" is text, not money
    assert members("Trial users") == {"small@example.com"}
    assert members("Paid subscribers") == {"big@example.com"}
    assert members("Cart abandoners") == {"cart@example.com"}
    everyone = {"big@example.com", "small@example.com", "cart@example.com", "bought@example.com"}
    assert members("New users (7 days)") == everyone
    assert members("Active users (30 days)") == everyone
    clock.advance(timedelta(days=91))
    assert members("Churned (no activity 90 days)") == everyone
    assert members("Active users (30 days)") == set()
    assert members("Cart abandoners") == set()
