"""Attribution and A/B readouts through the real pipeline (ingestion, processor, journeys) and the API,
on both databases: hand-computed credits, the lookback, stage conversions, CSV, a split's readout
against a reference computed from the raw runs, and bad parameters."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadflow.analytics import abtest
from leadflow.events import service as events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support import journeys as j
from tests.support.contacts import by_user
from tests.support.events import send
from tests.support.http import bearer

DAY = "2026-03-16"  # the conversions' day: the clock starts on 2026-03-02 09:00
URL = "https://site.example/?utm_source={}&utm_medium={}&utm_campaign={}"


@pytest.fixture
def api(client: TestClient, make_key: Any) -> TestClient:
    client.headers.update(bearer(make_key("read", "write")))
    return client


def _page(user: str, source: str, medium: str, campaign: str) -> dict[str, Any]:
    return {"type": "page", "userId": user, "properties": {"url": URL.format(source, medium, campaign)}}


@pytest.fixture
def conversions(api: TestClient, ctx: AppContext, clock: VirtualClock) -> None:
    """u1: google (14 days before), newsletter (7 days), partner (1 day), then orders 100.00;
    u2 clicks an email of journey jX a day before ordering 20; u3: one touchpoint 14 days before an
    order of 50; u4 is captured from a webinar a day before ordering 30; u5 orders 5 untouched."""
    send(ctx, _page("u1", "google", "cpc", "spring"), _page("u3", "old", "cpc", "x"))
    clock.advance(timedelta(days=7))
    send(ctx, _page("u1", "newsletter", "email", "may"))
    clock.advance(timedelta(days=6))
    campaign = {"source": "partner", "medium": "affiliate", "name": "fall"}
    send(
        ctx,
        {"type": "track", "userId": "u1", "event": "Signed up", "context": {"campaign": campaign}},
        {"type": "identify", "userId": "u2", "traits": {"email": "two@example.com"}},
        {
            "type": "track",
            "userId": "u4",
            "event": "lead.captured",
            "properties": {"source": "webinar", "utm": {"utm_medium": "social"}},
        },
    )
    j.settle(ctx)
    with ctx.db.write() as conn:
        clicked = {"message_id": "m1", "journey_id": "jX", "machine_generated": False}
        events.emit(
            conn, by_user(ctx, "u2")["id"], "leadflow.email_clicked", clicked, clock.now(), "click:m1"
        )
        scanner = {"message_id": "m2", "journey_id": "jY", "machine_generated": True}
        events.emit(
            conn, by_user(ctx, "u2")["id"], "leadflow.email_clicked", scanner, clock.now(), "click:m2"
        )
    clock.advance(timedelta(days=1))
    send(
        ctx,
        {"type": "track", "userId": "u1", "event": "order.completed", "properties": {"revenue": "100.00"}},
        {"type": "track", "userId": "u2", "event": "order.completed", "properties": {"value": 20}},
        {"type": "track", "userId": "u3", "event": "order.completed", "properties": {"revenue": 50}},
        {"type": "track", "userId": "u4", "event": "order.completed", "properties": {"revenue": 30}},
        {"type": "track", "userId": "u5", "event": "order.completed", "properties": {"revenue": "5"}},
    )
    j.settle(ctx)
    answer = api.patch(f"/api/v1/contacts/{by_user(ctx, 'u1')['id']}", json={"lifecycle_stage": "customer"})
    assert answer.status_code == 200, answer.text
    j.settle(ctx)


def _credits(report: dict[str, Any]) -> dict[str, dict[str, Decimal]]:
    return {
        block["model"]: {c["key"]: Decimal(str(c["value"])) for c in block["credits"]}
        for block in report["models"]
    }


def test_attribution_by_hand(api: TestClient, conversions: None) -> None:
    params = {"conversion": "order.completed", "from": DAY, "to": DAY}
    report = api.get("/api/v1/analytics/attribution", params=params).json()
    assert (report["conversions"], Decimal(str(report["value"]))) == (5, Decimal("205.00"))
    credits = _credits(report)
    direct = {
        "email": Decimal("20.00"),
        "old": Decimal("50.00"),
        "webinar": Decimal("30.00"),
        "(direct)": Decimal("5.00"),
    }
    assert credits["first_touch"] == {"google": Decimal("100.00"), **direct}
    assert credits["last_touch"] == {"partner": Decimal("100.00"), **direct}
    assert credits["linear"] == {
        "google": Decimal("33.34"),
        "newsletter": Decimal("33.33"),
        "partner": Decimal("33.33"),
        **direct,
    }
    assert credits["position_based"] == {
        "google": Decimal("40.00"),
        "newsletter": Decimal("20.00"),
        "partner": Decimal("40.00"),
        **direct,
    }
    weights = [2**-2, 2**-1, 2 ** (-1 / 7)]  # 14, 7 and 1 day old, half-life 7 days
    decay = credits["time_decay"]
    expected = [100 * w / sum(weights) for w in weights]
    assert [float(decay[k]) for k in ("google", "newsletter", "partner")] == pytest.approx(expected, abs=0.01)
    for model in credits.values():
        assert sum(model.values()) == Decimal("205.00")

    # A 10-day lookback drops google for u1 and u3's only touchpoint.
    short = api.get(
        "/api/v1/analytics/attribution", params={**params, "lookback_days": 10, "model": "first_touch"}
    )
    assert [b["model"] for b in short.json()["models"]] == ["first_touch"]
    assert _credits(short.json())["first_touch"] == {
        "newsletter": Decimal("100.00"),
        "email": Decimal("20.00"),
        "webinar": Decimal("30.00"),
        "(direct)": Decimal("55.00"),
    }

    by_campaign = api.get(
        "/api/v1/analytics/attribution", params={**params, "by": "campaign", "model": "linear"}
    )
    assert _credits(by_campaign.json())["linear"] == {
        "spring": Decimal("33.34"),
        "may": Decimal("33.33"),
        "fall": Decimal("33.33"),
        "jX": Decimal("20.00"),
        "x": Decimal("50.00"),
        "(none)": Decimal("30.00"),
        "(direct)": Decimal("5.00"),
    }
    by_journey = api.get(
        "/api/v1/analytics/attribution", params={**params, "by": "journey", "model": "linear"}
    )
    assert _credits(by_journey.json())["linear"] == {
        "(none)": Decimal("180.00"),
        "jX": Decimal("20.00"),
        "(direct)": Decimal("5.00"),
    }
    by_medium = api.get(
        "/api/v1/analytics/attribution", params={**params, "by": "medium", "model": "last_touch"}
    )
    assert _credits(by_medium.json())["last_touch"] == {
        "affiliate": Decimal("100.00"),
        "cpc": Decimal("50.00"),
        "social": Decimal("30.00"),
        "email": Decimal("20.00"),
        "(direct)": Decimal("5.00"),
    }

    stage = api.get(
        "/api/v1/analytics/attribution",
        params={"conversion": "stage:customer", "from": DAY, "to": DAY, "value": "10", "model": "last_touch"},
    )
    assert _credits(stage.json())["last_touch"] == {"partner": Decimal("10.00")}

    exported = api.get("/api/v1/analytics/attribution", params={**params, "model": "linear", "format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(exported.text)))
    assert {line["source"]: line["value"] for line in lines}["google"] == "33.34"
    assert sum(Decimal(line["value"]) for line in lines) == Decimal("205.00")


def test_a_form_post_recorded_twice_is_one_touch(
    api: TestClient, ctx: AppContext, clock: VirtualClock
) -> None:
    """A form post sends a page view and ``form.submitted`` with the same campaign: one touch."""
    send(ctx, _page("u9", "blog", "organic", "posts"))
    clock.advance(timedelta(days=2))
    who = {"userId": "u9", "context": {"campaign": {"source": "ads", "medium": "cpc", "name": "fall"}}}
    send(
        ctx,
        {"type": "page", "properties": {"url": "https://site.example/form"}, **who},
        {"type": "track", "event": "form.submitted", "properties": {"form_id": "f1"}, **who},
    )
    clock.advance(timedelta(days=1))
    send(ctx, {"type": "track", "userId": "u9", "event": "order.completed", "properties": {"revenue": 9}})
    j.settle(ctx)
    params = {
        "conversion": "order.completed",
        "from": "2026-03-05",
        "to": "2026-03-05",
        "model": "position_based",
    }
    report = api.get("/api/v1/analytics/attribution", params=params).json()
    assert _credits(report)["position_based"] == {"blog": Decimal("4.50"), "ads": Decimal("4.50")}


SPLIT = {
    "name": "AB",
    "trigger": {"type": "event", "event": "Go"},
    "settings": {"goal": {"event": "Buy", "within": "30d"}},
    "steps": [
        {
            "id": "ab",
            "type": "split",
            "paths": [{"name": "a", "weight": 50, "next": "ta"}, {"name": "b", "weight": 50, "next": "tb"}],
            "holdout": 10,
        },
        {"id": "ta", "type": "add_tag", "tags": ["a"]},
        {"id": "tb", "type": "add_tag", "tags": ["b"]},
    ],
}


def test_split_readout_against_the_raw_runs(api: TestClient, ctx: AppContext) -> None:
    journey_id = j.publish(ctx, SPLIT)
    send(ctx, *({"type": "track", "userId": f"u{i}", "event": "Go"} for i in range(200)))
    j.settle(ctx)

    collecting = api.get(f"/api/v1/analytics/experiments/{journey_id}/ab").json()
    assert (collecting["status"], collecting["conversion"]) == ("collecting", "goal")
    assert {n["variant"]: n["conversions"] for n in collecting["needed"]} == {"a": 5, "b": 5}
    assert all(v["probability_to_beat_control"] is None for v in collecting["variants"])

    send(ctx, *({"type": "track", "userId": f"u{i}", "event": "Buy"} for i in range(0, 200, 3)))
    j.settle(ctx)
    runs = j.runs(ctx)
    exposed = Counter(r["variant"] for r in runs)
    converted = Counter(r["variant"] for r in runs if r["converted_at"] is not None)
    assert sum(converted.values()) == 67

    listing = api.get("/api/v1/analytics/experiments").json()["experiments"]
    (readout,) = [e for e in listing if e["journey_id"] == journey_id]
    assert readout == api.get(f"/api/v1/analytics/experiments/{journey_id}/ab").json()
    assert (readout["status"], readout["journey"]) == ("ready", "AB")
    # Only the holdout (random size, about 20) may still be short of what its lift needs.
    short = abtest.missing(exposed["holdout"], converted["holdout"])
    assert readout["needed"] == (
        [{"variant": "holdout", "exposures": 0, "conversions": 0, **short}] if short else []
    )
    assert (readout["holdout"]["lift"] is None) == bool(short)
    variants = {v["name"]: v for v in readout["variants"]}
    assert {k: (v["exposures"], v["conversions"]) for k, v in variants.items()} == {
        k: (exposed[k], converted[k]) for k in ("a", "b")
    }
    assert (variants["a"]["control"], variants["b"]["control"]) == (True, False)
    control, variant = (converted["a"], exposed["a"]), (converted["b"], exposed["b"])
    rate_a, rate_b = control[0] / control[1], variant[0] / variant[1]
    assert variants["b"]["lift"] == pytest.approx(rate_b - rate_a)
    se = (rate_a * (1 - rate_a) / control[1] + rate_b * (1 - rate_b) / variant[1]) ** 0.5
    assert variants["b"]["interval"] == pytest.approx(
        [rate_b - rate_a - 1.96 * se, rate_b - rate_a + 1.96 * se], abs=1e-4
    )
    assert variants["b"]["probability_to_beat_control"] == pytest.approx(
        abtest.probability_to_beat(control, variant)
    )
    holdout = readout["holdout"]
    assert (holdout["holdout_exposures"], holdout["holdout_conversions"]) == (
        exposed["holdout"],
        converted["holdout"],
    )
    assert holdout["treated_exposures"] == exposed["a"] + exposed["b"]

    exported = api.get("/api/v1/analytics/experiments", params={"format": "csv"})
    assert sorted(line["name"] for line in csv.DictReader(io.StringIO(exported.text))) == ["a", "b"]


def test_a_journey_without_a_goal_converts_on_email_clicks_after_the_split(
    api: TestClient, ctx: AppContext, clock: VirtualClock
) -> None:
    journey_id = j.publish(ctx, {**SPLIT, "settings": {}})
    users = [f"u{i}" for i in range(12)]
    send(ctx, *({"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com"}} for u in users))
    j.settle(ctx)
    ids = {u: by_user(ctx, u)["id"] for u in users}

    def click(user: str, key: str, *, machine: bool = False) -> None:
        with ctx.db.write() as conn:
            props = {"message_id": key, "journey_id": journey_id, "machine_generated": machine}
            events.emit(conn, ids[user], "leadflow.email_clicked", props, clock.now(), key)

    click("u1", "before")  # before the split: not a conversion
    clock.advance(timedelta(minutes=1))
    send(ctx, *({"type": "track", "userId": u, "event": "Go"} for u in users))
    j.settle(ctx)
    clock.advance(timedelta(minutes=1))
    for u in users[::2]:
        click(u, f"after-{u}")
    click("u3", "scanner", machine=True)  # a scanner's click: not a conversion
    j.settle(ctx)

    variant_of = {r["contact_id"]: r["variant"] for r in j.runs(ctx)}
    exposed = Counter(variant_of.values())
    converted = Counter(variant_of[ids[u]] for u in users[::2])
    readout = api.get(f"/api/v1/analytics/experiments/{journey_id}/ab").json()
    assert (readout["conversion"], readout["status"]) == ("click", "collecting")
    assert {v["name"]: (v["exposures"], v["conversions"]) for v in readout["variants"]} == {
        k: (exposed[k], converted[k]) for k in ("a", "b")
    }
    if "holdout" in exposed:
        assert readout["holdout"]["holdout_conversions"] == converted["holdout"]


BAD = [
    ({"conversion": "order.completed", "model": "u_shaped"}, "invalid_model"),
    ({"conversion": "order.completed", "by": "colour"}, "invalid_dimension"),
    ({"conversion": "order.completed", "lookback_days": 0}, "invalid_lookback"),
    ({"conversion": "stage:"}, "invalid_conversion"),
    ({"conversion": "x", "from": "2026-03-05", "to": "2026-03-01"}, "invalid_period"),
    ({}, None),
    ({"conversion": "x", "value": "lots"}, None),
    ({"conversion": "x", "format": "xlsx"}, None),
]


def test_bad_parameters_are_refused(api: TestClient) -> None:
    for params, code in BAD:
        answer = api.get("/api/v1/analytics/attribution", params=params)
        assert answer.status_code == 422, (params, answer.text)
        error = answer.json()["error"]
        assert error["code"] == code if code else error["code"]


def test_reading_needs_a_key_and_the_routes_are_documented(
    client: TestClient, make_key: Any, api: TestClient
) -> None:
    assert api.get("/api/v1/analytics/experiments/nope/ab").json()["error"]["code"] == "experiment_not_found"
    client.headers.pop("Authorization", None)
    assert client.get("/api/v1/analytics/experiments").status_code == 401
    assert (
        client.get(
            "/api/v1/analytics/attribution?conversion=x", headers=bearer(make_key("ingest"))
        ).status_code
        == 403
    )
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("attribution", "experiments", "experiments/{journey_id}/{step_id}"):
        ok = paths[f"/api/v1/analytics/{path}"]["get"]["responses"]["200"]["content"]
        assert "$ref" in ok["application/json"]["schema"]
        assert "text/csv" in ok
