"""The console's Segments pages on both databases: the list with member counts; create, edit and delete
through the editor's form (audited as the user); the builder's live preview counting exactly what the
segments service counts, for a rule of each operator class; bad JSON and bad rules answered 4xx with
the reason; roles (viewer reads and previews, sales sees nothing) and CSRF; members with pagination
and the streamed CSV export."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import TimeLimit, time_limit
from leadflow.segments import service as segments
from leadflow.web import segment_members
from tests.integration.web.conftest import sign_in
from tests.support.events import send

ADMIN = "user:admin@example.com"
PRO = {"field": "traits.plan", "op": "eq", "value": "pro"}


def _people(ctx: AppContext, processor: EventProcessor) -> None:
    """Six contacts with traits, tags-free profiles, events, page views and an order total."""
    people = [
        ("ann", {"plan": "pro", "age": 34, "country": "US", "vip": True, "firstName": "Ann"}),
        ("bob", {"plan": "free", "age": 19, "country": "CA", "firstName": "=HYPERLINK(1)"}),
        ("cat", {"plan": "pro", "age": 52, "country": "FR"}),
        ("dan", {"plan": "enterprise", "age": 41, "country": "US", "vip": False}),
        ("eve", {"age": 27}),
        ("fay", {"plan": "Pro", "country": "DE"}),
    ]
    send(
        ctx,
        *({"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com", **t}} for u, t in people),
    )
    send(
        ctx,
        {"type": "track", "userId": "ann", "event": "Course Previewed", "properties": {"course": "ai-1"}},
        {"type": "track", "userId": "ann", "event": "Course Previewed", "properties": {"course": "ai-2"}},
        {"type": "track", "userId": "bob", "event": "Course Previewed", "properties": {"course": "web"}},
        {"type": "track", "userId": "cat", "event": "Order Completed", "properties": {"revenue": 700}},
        {"type": "track", "userId": "cat", "event": "Order Completed", "properties": {"revenue": 90}},
        {"type": "track", "userId": "dan", "event": "Order Completed", "properties": {"revenue": 120}},
        {"type": "page", "userId": "eve", "name": "Pricing"},
        {"type": "page", "userId": "ann", "name": "Pricing"},
    )
    processor.drain()


def _audit(ctx: AppContext, entity_id: str) -> list[tuple[str, str]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT action, actor FROM audit_log WHERE entity_id = :id ORDER BY id"),
            {"id": entity_id},
        )
        return [(r.action, r.actor) for r in rows]


def _preview(client: TestClient, csrf: str, rules: Any) -> Any:
    return client.post("/app/segments/preview", json={"rules": rules}, headers={"X-CSRF-Token": csrf})


def test_create_edit_delete_through_the_editor_audited(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    csrf = sign_in(client, "admin@example.com")
    assert "No segments yet." in client.get("/app/segments").text
    editor = client.get("/app/segments/new").text
    assert 'id="builder"' in editor
    assert 'name="rules"' in editor
    assert "segment_builder.js" in editor
    assert "lifecycle_stage" in editor
    assert "anniversary_today" in editor

    made = client.post(
        "/app/segments",
        data={"csrf": csrf, "name": "Pro users", "description": "paying", "rules": _j({"all": [PRO]})},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    segment_id = made.headers["location"].split("/")[-1].split("?")[0]
    assert segments.get(ctx, segment_id).rules == {"all": [PRO]}
    listing = client.get("/app/segments").text
    assert f'data-segment="{segment_id}"' in listing
    assert "Pro users" in listing
    assert re.search(rf'data-segment="{segment_id}".*?data-count>0<', listing, re.S)

    page = client.get(f"/app/segments/{segment_id}").text
    assert '"traits.plan"' in html.unescape(page)  # the rule, to rebuild the tree from
    changed = {"any": [PRO, {"not": {"field": "lifecycle_stage", "op": "gte", "value": "lead"}}]}
    saved = client.post(
        f"/app/segments/{segment_id}",
        data={"csrf": csrf, "name": "Pro or early", "description": "", "rules": _j(changed)},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    after = segments.get(ctx, segment_id)
    assert (after.name, after.rules, after.description) == ("Pro or early", changed, None)

    broken = client.post(
        f"/app/segments/{segment_id}", data={"csrf": csrf, "name": "X", "rules": '{"all": ['}
    )
    assert broken.status_code == 422
    assert "the rule is not JSON" in broken.text
    assert segments.get(ctx, segment_id).name == "Pro or early"
    assert '{"all": [' in html.unescape(broken.text)  # what was typed comes back to fix
    assert 'id="seg-name" name="name" required maxlength="200" value="X"' in broken.text
    wrong = client.post(
        "/app/segments",
        data={"csrf": csrf, "name": "Bad", "rules": _j({"all": [{"field": "traits.plan", "op": "like"}]})},
    )
    assert wrong.status_code == 422
    assert "rules.all[0].op" in wrong.text
    assert 'role="alert"' in wrong.text
    nameless = client.post("/app/segments", data={"csrf": csrf, "name": "", "rules": _j(PRO)})
    assert nameless.status_code == 422
    assert "name" in nameless.text
    static = client.post(
        "/app/segments", data={"csrf": csrf, "name": "VIP list", "kind": "static"}, follow_redirects=False
    )
    assert static.status_code == 303
    static_id = static.headers["location"].split("/")[-1].split("?")[0]
    assert segments.get(ctx, static_id).kind == "static"
    user = client.post(
        "/app/segments",
        data={"csrf": csrf, "name": "Uses it", "rules": _j({"segment": segment_id})},
        follow_redirects=False,
    )
    user_id = user.headers["location"].split("/")[-1].split("?")[0]
    in_use = client.post(f"/app/segments/{segment_id}/delete", data={"csrf": csrf})
    assert in_use.status_code == 409
    assert "refer to this one" in in_use.text

    for gone in (user_id, segment_id):
        deleted = client.post(f"/app/segments/{gone}/delete", data={"csrf": csrf}, follow_redirects=False)
        assert deleted.status_code == 303
        assert deleted.headers["location"] == "/app/segments?done=deleted"
    assert client.get(f"/app/segments/{segment_id}").status_code == 404
    assert _audit(ctx, segment_id) == [
        ("segment.created", ADMIN),
        ("segment.updated", ADMIN),
        ("segment.deleted", ADMIN),
    ]


def _j(value: Any) -> str:
    return json.dumps(value)


RULES: list[dict[str, Any]] = [
    PRO,  # text eq (case folded)
    {"field": "traits.plan", "op": "neq", "value": "pro"},
    {"field": "email", "op": "ends_with", "value": "@example.com"},
    {"field": "email", "op": "starts_with", "value": "a"},
    {"field": "first_name", "op": "contains", "value": "nn"},
    {"field": "traits.country", "op": "in", "value": ["US", "CA"]},
    {"field": "traits.country", "op": "not_in", "value": ["US"]},
    {"field": "traits.age", "op": "between", "value": [20, 45]},
    {"field": "traits.age", "op": "gt", "value": 40},
    {"field": "traits.vip", "op": "eq", "value": True},
    {"field": "traits.plan", "op": "is_not_set"},
    {"field": "lifecycle_stage", "op": "gte", "value": "visitor"},
    {"field": "created_at", "op": "within_last", "value": "1d"},
    {"field": "created_at", "op": "before", "value": "2000-01-01"},
    {"field": "score", "op": "gte", "value": 0},
    {"field": "tags", "op": "is_not_set"},
    {"field": "consent.marketing", "op": "is_set"},
    {"event": "Course Previewed", "count": {"gte": 2}, "within": "30d"},
    {"event": "Course Previewed", "where": [{"field": "course", "op": "starts_with", "value": "ai"}]},
    {"event": "Order Completed", "total": {"property": "revenue", "gt": 500}},
    {"event": "Order Completed", "count": {"eq": 0}},
    {"event": "Order Completed", "last": {"op": "within_last", "value": "7d"}},
    {"page": "Pricing"},
    {"email": "opened", "within": "14d", "count": {"eq": 0}},
    {"all": [{"any": [PRO, {"field": "traits.age", "op": "lt", "value": 30}]}, {"not": {"page": "*"}}]},
]


def test_the_live_preview_counts_what_the_service_counts(
    client: TestClient, ctx: AppContext, processor: EventProcessor, user_of: Callable[..., crm.User]
) -> None:
    _people(ctx, processor)
    user_of("marketer")
    csrf = sign_in(client, "marketer@example.com")
    counts = []
    for rule in RULES:
        answer = _preview(client, csrf, rule)
        assert answer.status_code == 200, (rule, answer.text)
        body = answer.json()
        assert body["count"] == segments.preview(ctx, rule).count, rule
        assert len(body["sample"]) == min(body["count"], 10)
        counts.append(body["count"])
    assert counts[:3] == [3, 3, 6]  # ann, cat, fay (Pro); the others incl. eve with no plan; everyone
    assert counts[7:10] == [3, 2, 1]
    assert counts[17:20] == [1, 1, 1]
    assert counts[22] == 2
    sample = _preview(client, csrf, PRO).json()["sample"]
    assert {s["email"] for s in sample} == {"ann@example.com", "cat@example.com", "fay@example.com"}
    saved = segments.create(ctx, segments.SegmentCreate(name="Pro", rules=PRO), actor="test")
    assert _preview(client, csrf, {"segment": saved.id, "member": False}).status_code == 200

    bad = client.post(
        "/app/segments/preview",
        content=b"{not json",
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
    )
    assert (bad.status_code, bad.json()["code"]) == (400, "bad_json")
    assert _preview(client, csrf, "pro").status_code == 400  # not an object
    wrong = _preview(client, csrf, {"all": [{"field": "traits.age", "op": "between", "value": [9, 1]}]})
    assert wrong.status_code == 422
    assert wrong.json()["code"] == "invalid_rule"
    assert wrong.json()["problems"][0]["path"] == "rules.all[0]"
    assert "low <= high" in wrong.json()["message"]
    missing = _preview(client, csrf, {"segment": "nope"})
    assert missing.status_code == 422
    assert "unknown segment" in missing.json()["message"]
    unknown = _preview(client, csrf, {"field": "password", "op": "is_set"})
    assert unknown.status_code == 422
    assert "unknown field" in unknown.json()["message"]
    assert client.post("/app/segments/preview", json={"rules": PRO}).status_code == 403  # no CSRF header


def test_a_slow_preview_is_cut_off_at_its_time_limit(ctx: AppContext) -> None:
    """The bound on both databases: a statement past it is cancelled with a 422-class error."""
    ticks = iter(range(1_000_000))
    slow = (
        "SELECT pg_sleep(2)"
        if ctx.db.dialect == "postgresql"
        else "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000000) "
        "SELECT count(*) FROM n"
    )
    with pytest.raises(TimeLimit), ctx.db.read() as conn, time_limit(conn, 0.05, lambda: next(ticks) / 10):
        conn.execute(sa.text(slow)).all()
    with ctx.db.read() as conn:  # the pooled connection carries no limit afterwards
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1


def test_roles_and_csrf(client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]) -> None:
    for role in ("admin", "viewer", "sales"):
        user_of(role)
    segment = segments.create(ctx, segments.SegmentCreate(name="Pro", rules=PRO), actor="test")
    csrf = sign_in(client, "admin@example.com")
    assert client.post("/app/segments", data={"name": "No token", "rules": _j(PRO)}).status_code == 403
    assert client.post(f"/app/segments/{segment.id}/delete", data={"csrf": "forged"}).status_code == 403
    assert segments.get(ctx, segment.id).name == "Pro"
    assert "Segments" in client.get("/app/").text

    client.cookies.clear()
    csrf = sign_in(client, "viewer@example.com")
    listing = client.get("/app/segments")
    assert listing.status_code == 200
    assert "Pro" in listing.text
    assert "New segment" not in listing.text
    page = client.get(f"/app/segments/{segment.id}").text
    assert "Save segment" not in page
    assert "Delete segment" not in page
    assert "traits.plan" in page
    assert client.post("/app/segments", data={"csrf": csrf, "name": "V", "rules": _j(PRO)}).status_code == 403
    refused = client.post(f"/app/segments/{segment.id}", data={"csrf": csrf, "name": "V", "rules": _j(PRO)})
    assert refused.status_code == 403
    assert client.post(f"/app/segments/{segment.id}/delete", data={"csrf": csrf}).status_code == 403
    assert _preview(client, csrf, PRO).status_code == 200  # previewing saves nothing
    assert [s.name for s in segments.listing(ctx, after=None, limit=10)] == ["Pro"]

    client.cookies.clear()
    csrf = sign_in(client, "sales@example.com")
    for path in ("/app/segments", f"/app/segments/{segment.id}", f"/app/segments/{segment.id}/members.csv"):
        assert client.get(path).status_code == 403, path
    assert _preview(client, csrf, PRO).status_code == 403
    assert "/app/segments" not in client.get("/app/crm/leads").text  # not in the sales menu


def test_members_pages_and_the_csv_export(
    client: TestClient,
    ctx: AppContext,
    processor: EventProcessor,
    user_of: Callable[..., crm.User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _people(ctx, processor)
    user_of("admin")
    sign_in(client, "admin@example.com")
    rule = {"field": "traits.country", "op": "in", "value": ["US", "CA"]}
    segment = segments.create(ctx, segments.SegmentCreate(name="North America", rules=rule), actor="test")
    segments.refresh(ctx, segment.id)
    expected = {"ann@example.com", "bob@example.com", "dan@example.com"}

    monkeypatch.setattr(segment_members, "PAGE_SIZE", 2)
    first = client.get(f"/app/segments/{segment.id}/members")
    assert first.status_code == 200
    assert "3 members" in first.text
    more = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert more
    second = client.get(more.group(1).replace("&amp;", "&")).text
    shown = re.findall(r"<small>([^<]+@example\.com)</small>", first.text + second)
    assert sorted(shown) == sorted(expected)
    assert 'rel="next"' not in second

    monkeypatch.setattr(segment_members, "CSV_CHUNK", 2)  # three chunks: 2, 1, then none
    export = client.get(f"/app/segments/{segment.id}/members.csv")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert 'filename="North-America-members.csv"' in export.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert sorted(r["email"] for r in rows) == sorted(expected)
    assert list(rows[0]) == list(segment_members.CSV_COLUMNS)
    bob = next(r for r in rows if r["email"] == "bob@example.com")
    assert bob["first_name"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert {r["lifecycle_stage"] for r in rows} <= {"visitor", "lead"}
    assert client.get("/app/segments/nope/members.csv").status_code == 404
    listing = client.get("/app/segments").text
    assert re.search(rf'data-segment="{segment.id}".*?data-count>3<', listing, re.S)
