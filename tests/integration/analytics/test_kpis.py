"""KPIs against hand-computed cases, through the real pipeline (ingestion, processor, journeys) and the
API: the lifecycle funnel with its medians, leads by source, email rates, a journey's funnel, CSV
reports and bad parameters."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadflow.analytics import service as analytics
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support import journeys as j
from tests.support.contacts import by_user
from tests.support.events import send
from tests.support.http import bearer

DAY = "2026-03-02"  # the clock's day
URL = "https://site.example/?utm_source=google&utm_medium=cpc&utm_campaign=spring"


@pytest.fixture
def api(client: TestClient, make_key: Any) -> TestClient:
    client.headers.update(bearer(make_key("read", "write")))
    return client


def _stage(api: TestClient, contact_id: str, stage: str) -> None:
    answer = api.patch(f"/api/v1/contacts/{contact_id}", json={"lifecycle_stage": stage})
    assert answer.status_code == 200, answer.text


@pytest.fixture
def lifecycle_day(api: TestClient, ctx: AppContext, clock: VirtualClock) -> dict[str, str]:
    """Three visitors (one from a Google ad), two leads; one is MQL after 2 h and SQL after 6 h, the
    other MQL after 6 h."""
    send(
        ctx,
        {"type": "page", "anonymousId": "a1", "properties": {"url": URL}},
        {"type": "identify", "anonymousId": "a1", "userId": "u1", "traits": {"email": "one@example.com"}},
        {"type": "identify", "userId": "u2", "traits": {"email": "two@example.com"}},
        {"type": "page", "anonymousId": "a3", "properties": {"url": "https://site.example/"}},
    )
    j.settle(ctx)
    one, two = by_user(ctx, "u1")["id"], by_user(ctx, "u2")["id"]
    clock.advance(timedelta(hours=2))
    _stage(api, one, "mql")
    clock.advance(timedelta(hours=4))
    _stage(api, one, "sql")
    _stage(api, two, "mql")
    j.settle(ctx)
    analytics.maintain(ctx, settle=timedelta(0))  # the virtual clock has not moved since
    return {"one": one, "two": two}


def test_kpis_funnel_and_sources_by_hand(api: TestClient, lifecycle_day: dict[str, str]) -> None:
    kpis = api.get("/api/v1/analytics/kpis", params={"from": DAY, "to": DAY}).json()
    assert kpis["previous"] == {"start": "2026-03-01", "end": "2026-03-01"}
    figures = {name: figure["current"] for name, figure in kpis["figures"].items()}
    assert {k: figures[k] for k in ("visitors", "leads", "mql", "sql", "customers")} == {
        "visitors": 3,
        "leads": 2,
        "mql": 2,
        "sql": 1,
        "customers": 0,
    }
    assert kpis["figures"]["leads"]["previous"] == 0
    assert kpis["figures"]["leads"]["change"] is None

    funnel = {
        s["stage"]: s
        for s in api.get("/api/v1/analytics/funnel", params={"from": DAY, "to": DAY}).json()["stages"]
    }
    assert funnel["lead"]["conversion"]["current"] == pytest.approx(2 / 3)
    assert funnel["mql"]["conversion"]["current"] == 1
    assert funnel["sql"]["conversion"]["current"] == 0.5
    assert funnel["lead"]["median_seconds"]["current"] == 0
    # approximate medians (±0.5 %) from the gap histograms by default, exact ones on request
    assert funnel["mql"]["median_seconds"]["current"] == pytest.approx((2 + 6) / 2 * 3600, rel=0.005)
    assert funnel["mql"]["median_seconds"]["current"] != (2 + 6) / 2 * 3600  # from buckets, not the values
    assert funnel["sql"]["median_seconds"]["current"] == pytest.approx(4 * 3600, rel=0.005)
    exact = api.get("/api/v1/analytics/funnel", params={"from": DAY, "to": DAY, "exact": "true"}).json()
    assert exact["exact_medians"] is True
    medians = {s["stage"]: s["median_seconds"] for s in exact["stages"]}
    assert medians["mql"]["current"] == pytest.approx((2 + 6) / 2 * 3600)  # 2 h and 6 h
    assert medians["sql"]["current"] == pytest.approx(4 * 3600)

    rows = api.get("/api/v1/analytics/sources", params={"from": DAY, "to": DAY}).json()["rows"]
    found = {(r["source"], r["medium"], r["campaign"]): r["leads"]["current"] for r in rows}
    assert found == {("google", "cpc", "spring"): 1, ("(direct)", "(none)", "(none)"): 1}

    sla = ("leads_qualified", "leads_responded", "sla_response_breaches", "sla_met_rate")
    assert [figures[name] for name in sla] == [2, 0, 0, 1.0]  # both MQLs started an SLA clock, none late

    later = api.get("/api/v1/analytics/kpis", params={"from": "2026-03-03", "to": "2026-03-03"})
    assert later.status_code == 200, later.text
    later = later.json()
    assert later["figures"]["leads"] == {"current": 0, "previous": 2, "change": -1.0}


def test_a_csv_report_of_each_answer(api: TestClient, lifecycle_day: dict[str, str]) -> None:
    answer = api.get("/api/v1/analytics/kpis", params={"from": DAY, "to": DAY, "format": "csv"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    lines = {row["figure"]: row for row in csv.DictReader(io.StringIO(answer.text))}
    assert (lines["leads"]["current"], lines["leads"]["previous"]) == ("2.0", "0.0")
    sources = api.get("/api/v1/analytics/sources", params={"from": DAY, "to": DAY, "format": "csv"}).text
    assert next(iter(csv.DictReader(io.StringIO(sources))))["source"] in {"google", "(direct)"}
    funnel = list(
        csv.DictReader(io.StringIO(api.get("/api/v1/analytics/funnel", params={"format": "csv"}).text))
    )
    assert [row["stage"] for row in funnel] == ["visitor", "lead", "mql", "sql", "customer", "advocate"]


def _email_event(number: int, status: str, machine: bool = False) -> dict[str, Any]:
    at = datetime(2026, 3, 2, 10, tzinfo=UTC)
    properties = {"message_id": f"msg{number}", "template_id": "t1", "journey_id": "j1", "step_id": "mail"}
    return {
        "message_id": f"email:msg{number}:{status}{':machine' if machine else ''}",
        "type": "track",
        "event": f"leadflow.email_{status}",
        "contact_id": f"c{number}",
        "properties": {**properties, "machine_generated": machine},
        "timestamp": at,
        "received_at": at - timedelta(hours=2),  # before the virtual clock's now (09:00)
        "processed_at": at,
        "source": "internal",
    }


def test_email_counts_and_rates_by_template_step_and_journey(api: TestClient, ctx: AppContext) -> None:
    """Four sent, one bounced (three delivered), two human opens and a scanner's, one click, one
    complaint, one unsubscribe."""
    rows = [_email_event(n, "sent") for n in range(4)]
    rows += [_email_event(0, "bounced"), _email_event(1, "opened"), _email_event(2, "opened")]
    rows += [_email_event(3, "opened", machine=True), _email_event(1, "clicked")]
    rows += [_email_event(2, "complained"), _email_event(2, "unsubscribed")]
    with ctx.db.write() as conn:
        conn.execute(events.insert(), rows)
    analytics.maintain(ctx, settle=timedelta(0))  # the virtual clock has not moved since
    expected = {
        "sent": 4,
        "delivered": 3,
        "opened": 2,
        "clicked": 1,
        "bounced": 1,
        "complained": 1,
        "unsubscribed": 1,
        "machine_opened": 1,
        "machine_clicked": 0,
        "bounce_rate": 0.25,
    }
    for by, key in (("template", "t1"), ("journey", "j1"), ("step", "j1:mail")):
        (row,) = api.get("/api/v1/analytics/email", params={"by": by, "from": DAY, "to": DAY}).json()["rows"]
        assert row["key"] == key
        assert {name: row[name] for name in expected} == expected
        assert row["open_rate"] == pytest.approx(2 / 3)
        assert row["complaint_rate"] == pytest.approx(1 / 3)
    assert api.get("/api/v1/analytics/email", params={"by": "broadcast", "from": DAY}).json()["rows"] == []
    kpis = api.get("/api/v1/analytics/kpis", params={"from": DAY, "to": DAY}).json()["figures"]
    assert (kpis["emails_sent"]["current"], kpis["emails_delivered"]["current"]) == (4, 3)


def test_a_journeys_funnel(api: TestClient, ctx: AppContext) -> None:
    """Three enter; all are tagged and wait; one converts (the goal) before the wait ends."""
    journey_id = j.publish(
        ctx,
        {
            "name": "Welcome",
            "trigger": {"type": "event", "event": "Go"},
            "settings": {"goal": {"event": "Bought", "within": "7d"}},
            "steps": [
                {"id": "tag", "type": "add_tag", "tags": ["welcomed"], "next": "pause"},
                {"id": "pause", "type": "wait", "duration": "2d", "next": "tag2"},
                {"id": "tag2", "type": "add_tag", "tags": ["followed"]},
            ],
        },
    )
    for user in ("p1", "p2", "p3"):
        j.identify(ctx, user, email=f"{user}@example.com")
        j.track(ctx, user, "Go")
    j.settle(ctx)
    j.track(ctx, "p1", "Bought")
    j.settle(ctx)
    funnel = api.get(
        f"/api/v1/analytics/journeys/{journey_id}/funnel", params={"from": DAY, "to": DAY}
    ).json()
    assert (funnel["entered"], funnel["converted"]) == (3, 1)
    assert [(s["step_id"], s["reached"]) for s in funnel["steps"]] == [("tag", 3), ("pause", 3)]
    assert funnel["conversion_rate"] == pytest.approx(1 / 3)
    report = api.get(f"/api/v1/analytics/journeys/{journey_id}/funnel", params={"format": "csv"}).text
    assert report.splitlines() == ["step,count", "entered,3", "tag,3", "pause,3", "converted,1"]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v1/analytics/kpis", {"from": "2026-03-05", "to": "2026-03-01"}, 422, "invalid_period"),
        ("/api/v1/analytics/funnel", {"from": "2020-01-01", "to": "2026-03-01"}, 422, "invalid_period"),
        ("/api/v1/analytics/sources", {"from": "yesterday"}, 422, None),
        ("/api/v1/analytics/email", {"by": "colour"}, 422, None),
        ("/api/v1/analytics/kpis", {"format": "xlsx"}, 422, None),
        ("/api/v1/analytics/journeys/nope/funnel", {}, 404, "journey_not_found"),
    ],
)
def test_bad_parameters_are_refused(
    api: TestClient, path: str, params: dict[str, str], status: int, code: str | None
) -> None:
    answer = api.get(path, params=params)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code if code else error["code"]


def test_reading_needs_a_key_and_every_route_is_documented(client: TestClient, make_key: Any) -> None:
    assert client.get("/api/v1/analytics/kpis").status_code == 401
    assert client.get("/api/v1/analytics/kpis", headers=bearer(make_key("ingest"))).status_code == 403
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("kpis", "funnel", "sources", "email", "journeys/{journey_id}/funnel"):
        ok = paths[f"/api/v1/analytics/{path}"]["get"]["responses"]["200"]["content"]
        assert "$ref" in ok["application/json"]["schema"]
        assert "text/csv" in ok


def test_health_of_webhooks_and_connectors(api: TestClient) -> None:
    answer = api.get("/api/v1/analytics/health", params={"window_hours": 6})
    assert answer.json() == {"window_hours": 6.0, "connectors": [], "webhooks": []}
    assert api.get("/api/v1/analytics/health", params={"window_hours": 0}).status_code == 422
