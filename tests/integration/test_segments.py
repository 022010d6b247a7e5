"""Segments over HTTP and in the pipeline: CRUD, refresh, real-time entry and exit, lists, the library."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.contacts.processor import EventProcessor
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.segments import service as segments
from leadflow.segments.models import segments as segments_table
from tests.support.contacts import all_contacts, by_user
from tests.support.events import send
from tests.support.http import bearer

PRO = {"field": "traits.plan", "op": "eq", "value": "pro"}


@pytest.fixture
def api(client: TestClient, admin_key: str) -> TestClient:
    client.headers.update(bearer(admin_key))
    return client


def _internal(ctx: AppContext, name: str, contact_id: str | None = None) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        query = sa.select(events).where(events.c.event == name)
        if contact_id:
            query = query.where(events.c.contact_id == contact_id)
        return [dict(r._mapping) for r in conn.execute(query.order_by(events.c.id))]


def _create(api: TestClient, rules: dict[str, Any], name: str = "Pro users") -> dict[str, Any]:
    response = api.post("/api/v1/segments", json={"name": name, "rules": rules})
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_create_refresh_and_list_members(api: TestClient, ctx: AppContext, processor: EventProcessor) -> None:
    send(
        ctx,
        *(
            {"type": "identify", "userId": f"u{i}", "traits": {"plan": "pro" if i % 2 else "free"}}
            for i in range(7)
        ),
    )
    processor.drain()
    segment = _create(api, PRO)
    assert (segment["kind"], segment["member_count"], segment["time_relative"]) == ("dynamic", 0, False)
    refreshed = api.post(f"/api/v1/segments/{segment['id']}/refresh").json()
    assert refreshed == {"segment_id": segment["id"], "entered": 3, "exited": 0, "members": 3}
    page = api.get(f"/api/v1/segments/{segment['id']}/members", params={"limit": 2}).json()
    rest = api.get(f"/api/v1/segments/{segment['id']}/members", params={"cursor": page["next_cursor"]}).json()
    members = {m["contact"]["user_id"] for m in page["data"] + rest["data"]}
    assert members == {"u1", "u3", "u5"}
    assert len(_internal(ctx, "leadflow.segment_entered")) == 3
    again = api.post(f"/api/v1/segments/{segment['id']}/refresh").json()
    assert (again["entered"], again["exited"]) == (0, 0)
    listed = api.get(f"/api/v1/contacts/{by_user(ctx, 'u1')['id']}/segments").json()["data"]
    assert [s["name"] for s in listed] == ["Pro users"]
    assert api.get(f"/api/v1/segments/{segment['id']}").json()["member_count"] == 3


def test_one_track_call_that_qualifies_produces_exactly_one_entry(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    segment = _create(api, {"event": "Course Previewed", "count": {"gte": 2}, "within": "30d"}, "Previewers")
    send(ctx, {"type": "track", "userId": "u1", "event": "Course Previewed"})
    processor.drain()
    api.post(f"/api/v1/segments/{segment['id']}/refresh")
    assert _internal(ctx, "leadflow.segment_entered") == []
    send(ctx, {"type": "track", "userId": "u1", "event": "Course Previewed"})
    processor.drain()
    entered = _internal(ctx, "leadflow.segment_entered")
    assert len(entered) == 1
    assert entered[0]["properties"] == {"segment_id": segment["id"], "segment_name": "Previewers"}
    assert entered[0]["processed_at"] is not None  # it flowed through the pipeline itself
    send(ctx, {"type": "track", "userId": "u1", "event": "Course Previewed"})
    processor.drain()
    assert len(_internal(ctx, "leadflow.segment_entered")) == 1
    assert api.get(f"/api/v1/segments/{segment['id']}").json()["member_count"] == 1


def test_a_profile_change_makes_a_contact_leave_in_real_time(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    segment = _create(api, PRO)
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}})
    processor.drain()
    assert len(_internal(ctx, "leadflow.segment_entered")) == 1
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"plan": None}})
    processor.drain()
    assert len(_internal(ctx, "leadflow.segment_exited")) == 1
    assert api.get(f"/api/v1/segments/{segment['id']}/members").json()["data"] == []


def test_api_profile_changes_are_qualified_too(api: TestClient, ctx: AppContext) -> None:
    _create(api, PRO)
    contact = api.post("/api/v1/contacts", json={"email": "a@example.com", "traits": {"plan": "pro"}}).json()
    assert [s["name"] for s in api.get(f"/api/v1/contacts/{contact['id']}/segments").json()["data"]] == [
        "Pro users"
    ]


def test_only_segments_the_change_can_affect_are_evaluated(
    api: TestClient, ctx: AppContext, processor: EventProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadflow.segments import membership

    on_plan = _create(api, PRO, "On plan")
    buyers = _create(api, {"event": "Order Completed"}, "Buyers")
    evaluated: list[str] = []
    real = membership.lock_all

    def spy(conn: Any, segment_ids: list[str]) -> None:
        evaluated.extend(segment_ids)
        real(conn, segment_ids)

    monkeypatch.setattr(membership, "lock_all", spy)
    send(ctx, {"type": "track", "userId": "u1", "event": "Order Completed"})
    processor.drain()
    assert buyers["id"] in evaluated
    evaluated.clear()
    send(ctx, {"type": "track", "userId": "u1", "event": "Something Else"})
    processor.drain()
    assert evaluated == []
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}})
    processor.drain()
    assert on_plan["id"] in evaluated
    assert buyers["id"] not in evaluated


def test_membership_of_another_segment_cascades(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    pro = _create(api, PRO)
    vip = _create(
        api,
        {"all": [{"segment": pro["id"]}, {"field": "tags", "op": "contains", "value": "vip"}]},
        "Pro VIPs",
    )
    contact = api.post("/api/v1/contacts", json={"email": "v@example.com", "traits": {"plan": "pro"}}).json()
    api.post(f"/api/v1/contacts/{contact['id']}/tags", json={"add": ["VIP "]})
    processor.drain()
    names = {s["name"] for s in api.get(f"/api/v1/contacts/{contact['id']}/segments").json()["data"]}
    assert names == {"Pro users", "Pro VIPs"}
    api.patch(f"/api/v1/contacts/{contact['id']}", json={"traits": {"plan": "free"}})
    processor.drain()
    assert api.get(f"/api/v1/contacts/{contact['id']}/segments").json()["data"] == []
    assert api.get(f"/api/v1/segments/{vip['id']}").json()["member_count"] == 0


@pytest.mark.parametrize(
    ("rules", "path"),
    [
        ({"field": "traits.plan", "op": "equals", "value": "pro"}, "rules.op"),
        ({"all": [PRO, {"field": "nope", "op": "eq", "value": 1}]}, "rules.all[1]"),
        ({"field": "traits.plan'; DROP TABLE contacts; --", "op": "eq", "value": "x"}, "rules"),
        ({"field": "email", "op": "gt", "value": 3}, "rules"),
        ({"field": "sessions", "op": "eq", "value": "five"}, "rules"),
        ({"any": [{"event": "X", "count": {"gte": -1}}]}, "rules.any[0].count.gte"),
        ({"not": {"field": "created_at", "op": "within_last", "value": "7 days"}}, "rules.not"),
        ({"field": "traits.plan", "op": "in", "value": "pro"}, "rules"),
        ({"segment": "does-not-exist"}, None),
    ],
)
def test_bad_rules_and_injection_attempts_are_422_and_nothing_is_stored(
    api: TestClient, ctx: AppContext, rules: dict[str, Any], path: str | None
) -> None:
    response = api.post("/api/v1/segments", json={"name": "Bad", "rules": rules})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_rule"
    if path is not None:
        assert any(problem["path"] == path for problem in error["details"]), error
    preview = api.post("/api/v1/segments/preview", json={"rules": rules})
    assert preview.status_code == 422
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(segments_table)).scalar_one() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM contacts")).scalar_one() == 0


def test_values_that_look_like_sql_are_just_values(api: TestClient, ctx: AppContext) -> None:
    evil = "x' OR '1'='1"
    api.post("/api/v1/contacts", json={"email": "a@example.com", "traits": {"plan": "pro"}})
    preview = api.post(
        "/api/v1/segments/preview", json={"rules": {"field": "traits.plan", "op": "eq", "value": evil}}
    )
    assert preview.json() == {"count": 0, "contacts": []}


def test_cycles_are_refused(api: TestClient) -> None:
    first = _create(api, PRO, "A")
    second = _create(api, {"segment": first["id"]}, "B")
    response = api.patch(f"/api/v1/segments/{first['id']}", json={"rules": {"segment": second["id"]}})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "segment_cycle"
    itself = api.patch(f"/api/v1/segments/{first['id']}", json={"rules": {"segment": first["id"]}})
    assert itself.json()["error"]["code"] == "segment_cycle"
    assert api.delete(f"/api/v1/segments/{first['id']}").json()["error"]["code"] == "segment_in_use"
    assert api.delete(f"/api/v1/segments/{second['id']}").status_code == 204
    assert api.delete(f"/api/v1/segments/{first['id']}").status_code == 204
    assert api.get(f"/api/v1/segments/{first['id']}").status_code == 404


def test_preview_counts_and_samples_without_saving(api: TestClient, ctx: AppContext) -> None:
    for i in range(25):
        api.post("/api/v1/contacts", json={"email": f"p{i}@example.com", "traits": {"plan": "pro"}})
    preview = api.post("/api/v1/segments/preview", json={"rules": PRO}).json()
    assert preview["count"] == 25
    assert len(preview["contacts"]) == 20
    assert api.get("/api/v1/segments").json()["data"] == []


def test_static_lists_by_api_and_csv(
    api: TestClient, ctx: AppContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = api.post("/api/v1/segments", json={"name": "Webinar", "kind": "static"})
    assert created.status_code == 201
    listed = created.json()
    a = api.post("/api/v1/contacts", json={"email": "a@example.com"}).json()
    added = api.post(f"/api/v1/segments/{listed['id']}/members", json={"contact_ids": [a["id"]]}).json()
    assert (added["entered"], added["members"]) == (1, 1)
    assert (
        api.post(f"/api/v1/segments/{listed['id']}/members", json={"contact_ids": ["nope"]}).status_code
        == 404
    )
    assert api.post(f"/api/v1/segments/{listed['id']}/refresh").json()["error"]["code"] == "static_segment"
    path = tmp_path / "list.csv"
    path.write_text("email,first_name\nb@example.com,B\na@example.com,A\nbad,Bad\n")
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", ctx.settings.database_url)
    result = CliRunner().invoke(app, ["import", "list", listed["id"], str(path)], terminal_width=200)
    assert result.exit_code == 1, result.output  # one row was rejected
    assert "1 contact(s) added to the list" in result.stdout
    members = api.get(f"/api/v1/segments/{listed['id']}/members").json()["data"]
    assert sorted(m["contact"]["email"] for m in members) == ["a@example.com", "b@example.com"]
    removed = api.delete(f"/api/v1/segments/{listed['id']}/members/{a['id']}").json()
    assert (removed["exited"], removed["members"]) == (1, 1)
    assert len(_internal(ctx, "leadflow.segment_exited")) == 1


def test_time_relative_segments_are_refreshed_on_schedule(
    api: TestClient, ctx: AppContext, clock: VirtualClock, processor: EventProcessor
) -> None:
    segment = _create(api, {"field": "last_seen_at", "op": "within_last", "value": "1h"}, "Active this hour")
    assert segment["time_relative"] is True
    send(ctx, {"type": "track", "userId": "u1", "event": "Visit"})
    processor.drain()
    assert [c.segment_id for c in segments.refresh_due(ctx)] == [segment["id"]]
    assert api.get(f"/api/v1/segments/{segment['id']}").json()["member_count"] == 1
    assert segments.refresh_due(ctx) == []  # not due again for 5 minutes
    clock.advance(timedelta(minutes=61))
    [change] = segments.refresh_due(ctx)
    assert (change.entered, change.exited, change.members) == (0, 1, 0)


def test_merges_and_erasures_keep_memberships_consistent(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    segment = _create(api, {"event": "Visit"}, "Visitors")
    send(ctx, {"type": "track", "anonymousId": "a1", "event": "Visit"})
    send(ctx, {"type": "identify", "userId": "u1", "traits": {"email": "u1@example.com"}})
    processor.drain()
    send(ctx, {"type": "track", "userId": "u1", "event": "Visit"})
    processor.drain()
    assert api.get(f"/api/v1/segments/{segment['id']}").json()["member_count"] == 2
    send(ctx, {"type": "identify", "userId": "u1", "anonymousId": "a1"})
    processor.drain()
    [contact] = all_contacts(ctx)
    assert api.get(f"/api/v1/segments/{segment['id']}").json()["member_count"] == 1
    api.delete(f"/api/v1/contacts/{contact['id']}")
    assert api.get(f"/api/v1/segments/{segment['id']}").json()["member_count"] == 0


def test_library_installs_the_standard_set_once(ctx: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", ctx.settings.database_url)
    runner = CliRunner()
    first = runner.invoke(app, ["segments", "install-library"])
    assert first.exit_code == 0, first.output
    assert "7 segment(s) created" in first.stdout
    assert "0 segment(s) created" in runner.invoke(app, ["segments", "install-library"]).stdout
    with ctx.db.read() as conn:
        names = set(conn.execute(sa.select(segments_table.c.name)).scalars())
    assert {
        "Active users (30 days)",
        "Churned (no activity 90 days)",
        "High-value customers (spent > 500)",
        "New users (7 days)",
        "Trial users",
        "Paid subscribers",
        "Cart abandoners",
    } <= names
