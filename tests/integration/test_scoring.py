"""Lead scoring end to end: rules, incremental counters, explanations, bands, windows, decay, merges."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.scoring import service
from leadflow.scoring.definitions import ScoringRule, ScoringRuleCreate
from leadflow.scoring.engine import BAND_CHANGED
from leadflow.scoring.models import contact_scores, score_counters, score_points
from tests.support.contacts import by_user
from tests.support.events import send
from tests.support.http import bearer

EVENTS = "Content Downloaded,Course Previewed,Consultation Requested,Product Viewed,Form Submitted,Other"
EVENTS += ",leadflow.email_opened,leadflow.email_clicked"


def _process(ctx: AppContext, processor: EventProcessor, *messages: dict[str, Any]) -> None:
    send(ctx, *messages)
    processor.drain()


def _track(user: str, event: str, **properties: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, "properties": properties}


def _page(user: str, name: str, url: str | None = None) -> dict[str, Any]:
    return {"type": "page", "userId": user, "name": name, "properties": {"url": url} if url else None}


def _group(user: str, group: str, employees: int) -> dict[str, Any]:
    return {"type": "group", "userId": user, "groupId": group, "traits": {"employees": employees}}


def _rule(ctx: AppContext, **fields: Any) -> ScoringRule:
    return service.create_rule(ctx, ScoringRuleCreate(**fields), actor="test")


def _rules(ctx: AppContext, user: str) -> dict[str, tuple[int, float]]:
    """What each rule gives the contact: name → (occurrences, points)."""
    return {r.name: (r.occurrences, r.points) for r in service.explain(ctx, by_user(ctx, user)["id"]).rules}


def _score(ctx: AppContext, user: str) -> float:
    return service.explain(ctx, by_user(ctx, user)["id"]).score


def _scores(ctx: AppContext) -> dict[str, tuple[Any, ...]]:
    """contact → (total, behavioral, demographic, firmographic, engagement, band)"""
    with ctx.db.read() as conn:
        return {r[0]: tuple(r[1:7]) for r in conn.execute(sa.select(contact_scores))}


def _points(ctx: AppContext) -> set[tuple[Any, ...]]:
    with ctx.db.read() as conn:
        return {tuple(r) for r in conn.execute(sa.select(score_points))}


def _recompute_changes_nothing(ctx: AppContext) -> None:
    before, points_before = _scores(ctx), _points(ctx)
    assert service.recompute(ctx).band_changes == 0
    assert (_scores(ctx), _points(ctx)) == (before, points_before)


def _crossings(ctx: AppContext) -> list[dict[str, Any]]:
    internal = sa.and_(events.c.event == BAND_CHANGED, events.c.source == "internal")
    query = sa.select(events.c.properties).where(internal).order_by(events.c.id)
    with ctx.db.read() as conn:
        return [r[0] for r in conn.execute(query)]


def test_course_defaults_explain_36_points_and_each_band_crossing_is_one_event(
    ctx: AppContext, processor: EventProcessor, client: TestClient, admin_key: str
) -> None:
    service.install_defaults(ctx, "course", actor="test")
    for message in (
        _page("u1", "Python", "https://x.test/course/python"),
        _page("u1", "Blog", "https://x.test/blog/intro"),
        _track("u1", "Content Downloaded"),
        _track("u1", "Course Previewed"),
        _track("u1", "Consultation Requested"),
    ):
        _process(ctx, processor, message)
    contact_id = by_user(ctx, "u1")["id"]

    answer = client.get(f"/api/v1/contacts/{contact_id}/score", headers=bearer(admin_key))
    assert answer.status_code == 200
    body = answer.json()
    assert (body["score"], body["band"]) == (36, "course_content")
    assert body["breakdown"] == {"behavioral": 36, "demographic": 0, "firmographic": 0, "engagement": 0}
    assert sorted((r["name"], r["kind"], r["occurrences"], r["points"]) for r in body["rules"]) == [
        ("Consultation request", "behavioral", 1, 20),
        ("Content download", "behavioral", 1, 5),
        ("Course page view", "behavioral", 1, 1),
        ("Course preview", "behavioral", 1, 10),
    ]
    assert _crossings(ctx) == [{"from": "general", "to": "course_content", "score": 36}]

    # 56 → sales_outreach, 66 stays there, 86 → high_intent, 96 stays there.
    for event in ("Consultation Requested", "Course Previewed", "Consultation Requested", "Course Previewed"):
        _process(ctx, processor, _track("u1", event))
    assert _score(ctx, "u1") == 96
    assert [(c["from"], c["to"], c["score"]) for c in _crossings(ctx)] == [
        ("general", "course_content", 36),
        ("course_content", "sales_outreach", 56),
        ("sales_outreach", "high_intent", 86),
    ]
    _recompute_changes_nothing(ctx)
    processor.drain()
    assert len(_crossings(ctx)) == 3


def test_max_occurrences_caps_points(ctx: AppContext, processor: EventProcessor) -> None:
    service.install_defaults(ctx, "b2b", actor="test")
    yesterday = [_page("u1", f"P{i}") | {"timestamp": "2026-03-01T10:00:00Z"} for i in range(30)]
    today = [_page("u1", f"Q{i}") for i in range(30)]
    for chunk in (yesterday[:20], yesterday[20:] + today[:10], today[10:]):
        _process(ctx, processor, *chunk)
    assert _rules(ctx, "u1") == {"Page view": (50, 50)}
    explained = service.explain(ctx, by_user(ctx, "u1")["id"])
    assert (explained.score, explained.band) == (50, "warm")
    _recompute_changes_nothing(ctx)


def test_demographic_firmographic_and_negative_points(ctx: AppContext, processor: EventProcessor) -> None:
    service.install_defaults(ctx, "b2b", actor="test")
    _process(ctx, processor, {"type": "identify", "userId": "u1", "traits": {"title": "Co-founder & CEO"}})
    assert _rules(ctx, "u1") == {"Senior job title": (1, 20)}
    _process(ctx, processor, _group("u1", "acme", 250))
    assert _score(ctx, "u1") == 35
    _process(ctx, processor, {"type": "identify", "userId": "u1", "traits": {"unsubscribed": True}})
    explained = service.explain(ctx, by_user(ctx, "u1")["id"])
    assert explained.score == 25
    assert explained.breakdown == {"behavioral": 0, "demographic": 10, "firmographic": 15, "engagement": 0}
    held = {"Senior job title": (1, 20), "Company size over 100": (1, 15), "Unsubscribed": (1, -10)}
    assert _rules(ctx, "u1") == held
    _process(ctx, processor, {"type": "identify", "userId": "u1", "traits": {"title": "Intern"}})
    assert _score(ctx, "u1") == 5  # a rule that stops holding takes its points back
    _recompute_changes_nothing(ctx)


def test_a_company_change_rescores_all_its_contacts(ctx: AppContext, processor: EventProcessor) -> None:
    service.install_defaults(ctx, "b2b", actor="test")
    _process(ctx, processor, _group("bob", "acme", 20))
    _process(ctx, processor, _group("ann", "acme", 500))
    assert _score(ctx, "ann") == 15
    assert _score(ctx, "bob") == 15  # same company, now over 100 employees


def test_machine_generated_opens_never_score(ctx: AppContext, processor: EventProcessor) -> None:
    service.install_defaults(ctx, "course", actor="test")
    opened = "leadflow.email_opened"
    scanner = [_track(u, opened, machine_generated=True) for u in ("u1", "u1", "u2")]
    human = [_track("u1", opened, machine_generated=False), _track("u1", opened)]
    _process(ctx, processor, *scanner, *human)
    explained = service.explain(ctx, by_user(ctx, "u1")["id"])
    assert explained.score == 4
    assert explained.breakdown == {"behavioral": 4, "demographic": 0, "firmographic": 0, "engagement": 4}
    assert _rules(ctx, "u1") == {"Email open": (2, 4)}
    assert _rules(ctx, "u2") == {}
    assert _score(ctx, "u2") == 0
    _recompute_changes_nothing(ctx)


def test_a_window_stops_counting_old_occurrences_when_time_moves_on(
    ctx: AppContext, processor: EventProcessor, clock: VirtualClock
) -> None:
    _rule(ctx, name="Pricing visit", kind="behavioral", page="Pricing", points=5, window="7d")
    _rule(ctx, name="Signed up", kind="behavioral", event="Signed Up", points=3)
    _process(ctx, processor, _page("u1", "Pricing"), _track("u1", "Signed Up"))
    clock.advance(timedelta(days=4))
    _process(ctx, processor, _page("u1", "Pricing"))
    assert _rules(ctx, "u1") == {"Pricing visit": (2, 10), "Signed up": (1, 3)}
    clock.advance(timedelta(days=5))  # the first visit is 9 days old, the second 5
    service.age(ctx)
    assert _rules(ctx, "u1") == {"Pricing visit": (1, 5), "Signed up": (1, 3)}
    assert _score(ctx, "u1") == 8
    clock.advance(timedelta(days=10))
    service.age(ctx)
    assert _rules(ctx, "u1") == {"Signed up": (1, 3)}
    assert _score(ctx, "u1") == 3
    _recompute_changes_nothing(ctx)


@pytest.mark.parametrize(("mode", "expected"), [("expire", 10), ("halve", 15)])
def test_decay_expires_or_halves_old_points(
    ctx: AppContext,
    processor: EventProcessor,
    clock: VirtualClock,
    client: TestClient,
    admin_key: str,
    mode: str,
    expected: float,
) -> None:
    _rule(ctx, name="Demo", kind="behavioral", event="Demo Requested", points=10)
    decay = {"after": "30d", "mode": mode}
    assert client.put("/api/v1/scoring/decay", json=decay, headers=bearer(admin_key)).status_code == 200
    _process(ctx, processor, _track("u1", "Demo Requested"))
    clock.advance(timedelta(days=10))
    _process(ctx, processor, _track("u1", "Demo Requested"))
    service.age(ctx)
    assert _score(ctx, "u1") == 20  # nothing is older than 30 days yet
    clock.advance(timedelta(days=25))  # the first request is 35 days old, the second 25
    service.age(ctx)
    assert _score(ctx, "u1") == expected
    assert _rules(ctx, "u1") == {"Demo": (2, expected)}
    _recompute_changes_nothing(ctx)


def _random_messages(rng: random.Random, count: int) -> list[dict[str, Any]]:
    users = [f"user{i}" for i in range(12)]
    anons = [f"anon{i}" for i in range(6)]
    stamps = ["2026-02-27T23:30:00-03:00", "2026-02-28T00:10:00+02:00", "2026-03-01T12:00:00Z", None]
    messages: list[dict[str, Any]] = []
    for _ in range(count):
        who: dict[str, Any] = {"userId": rng.choice(users)} if rng.random() < 0.7 else {}
        if not who or rng.random() < 0.2:
            who["anonymousId"] = rng.choice(anons)
        kind = rng.choice(["page", "track", "track", "track", "identify", "group"])
        message: dict[str, Any] = {"type": kind, **who}
        if kind == "page":
            path = rng.choice(["/course/python", "/blog", "/course/sql", "/pricing"])
            message |= {
                "name": rng.choice(["Home", "Course"]),
                "properties": {"url": f"https://x.test{path}"},
            }
        elif kind == "track":
            message["event"] = rng.choice(EVENTS.split(","))
            message["properties"] = {"machine_generated": rng.random() < 0.3}
        elif kind == "identify":
            title = rng.choice(["CEO", "VP Sales", "Engineer", "Director of IT", "Student"])
            message["traits"] = {"title": title, "unsubscribed": rng.random() < 0.2, "country": "US"}
        else:  # one company per sender, so a company only changes through its own contact
            key = who.get("userId") or who["anonymousId"]
            message |= {"groupId": f"co-{key}", "traits": {"employees": rng.choice([10, 150, 5000])}}
        if (stamp := rng.choice(stamps)) is not None:
            message["timestamp"] = stamp
        messages.append(message)
    return messages


def test_incremental_scores_equal_the_set_based_recompute(ctx: AppContext, processor: EventProcessor) -> None:
    service.install_defaults(ctx, "course", actor="test")
    service.install_defaults(ctx, "b2b", actor="test")
    _rule(ctx, name="Recent course views", kind="behavioral", page="Course", points=3, window="2d")
    rng = random.Random(20260302)
    messages = _random_messages(rng, 300)
    while messages:
        size = rng.randint(1, 40)
        _process(ctx, processor, *messages[:size])
        messages = messages[size:]
    assert len({score[-1] for score in _scores(ctx).values()}) >= 2  # people scored, into different bands
    _recompute_changes_nothing(ctx)


def test_rule_api_create_validate_patch_delete(
    ctx: AppContext, processor: EventProcessor, client: TestClient, admin_key: str, clock: VirtualClock
) -> None:
    auth = bearer(admin_key)
    base = {"name": "x", "kind": "behavioral", "event": "E", "points": 1}
    invalid = [
        (base | {"conditions": {"field": "email", "op": "is_set"}}, "validation_error"),
        (base | {"where": [{"field": "plan", "op": "resembles", "value": "pro"}]}, "invalid_rule"),
        ({"name": "x", "kind": "demographic", "points": 1}, "validation_error"),
    ]
    for body, code in invalid:
        answer = client.post("/api/v1/scoring/rules", json=body, headers=auth)
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == code
    assert service.list_rules(ctx) == []

    body = {"name": "Webinar", "kind": "behavioral", "event": "Webinar Attended", "points": 5}
    created = client.post("/api/v1/scoring/rules", json=body | {"max_occurrences": 3}, headers=auth)
    assert created.status_code == 201
    rule = created.json()
    unset: dict[str, Any] = {"page": None, "where": [], "window": None, "conditions": None, "active": True}
    assert rule.keys() == {*body, *unset, "max_occurrences", "id", "created_at", "updated_at"}
    assert {k: rule[k] for k in [*body, *unset, "max_occurrences"]} == body | unset | {"max_occurrences": 3}
    _process(ctx, processor, _track("u1", "Webinar Attended"), _track("u1", "Webinar Attended"))
    assert _score(ctx, "u1") == 10

    clock.advance(timedelta(minutes=1))
    patched = client.patch(f"/api/v1/scoring/rules/{rule['id']}", json={"points": 7}, headers=auth)
    assert (patched.status_code, patched.json()["points"]) == (200, 7)
    service.recompute(ctx)
    assert _rules(ctx, "u1") == {"Webinar": (2, 14)}

    assert client.delete(f"/api/v1/scoring/rules/{rule['id']}", headers=auth).status_code == 204
    assert client.get(f"/api/v1/scoring/rules/{rule['id']}", headers=auth).status_code == 404
    service.recompute(ctx)
    assert _rules(ctx, "u1") == {}
    assert _score(ctx, "u1") == 0
    assert _points(ctx) == set()


def test_patch_changes_a_demographic_rule(ctx: AppContext, client: TestClient, admin_key: str) -> None:
    ceo = {"field": "traits.title", "op": "contains", "value": "CEO"}
    rule = _rule(ctx, name="CEO", kind="demographic", points=20, conditions=ceo)
    patched = client.patch(f"/api/v1/scoring/rules/{rule.id}", json={"points": 25}, headers=bearer(admin_key))
    assert patched.status_code == 200, patched.text
    assert patched.json()["points"] == 25


def test_patch_takes_effect_when_made_in_the_same_instant(
    ctx: AppContext, processor: EventProcessor, client: TestClient, admin_key: str
) -> None:
    rule = _rule(ctx, name="Webinar", kind="behavioral", event="Webinar Attended", points=5)
    _process(ctx, processor, _track("u1", "Webinar Attended"))
    assert _score(ctx, "u1") == 5
    patched = client.patch(f"/api/v1/scoring/rules/{rule.id}", json={"points": 7}, headers=bearer(admin_key))
    assert patched.status_code == 200
    service.recompute(ctx)
    assert _score(ctx, "u1") == 7


def test_a_merge_keeps_every_occurrence_on_the_survivor(ctx: AppContext, processor: EventProcessor) -> None:
    service.install_defaults(ctx, "course", actor="test")
    _process(ctx, processor, _track("u1", "Course Previewed"), _track("u1", "Content Downloaded"))
    anonymous = ("Course Previewed", "Content Downloaded", "Consultation Requested")
    _process(ctx, processor, *({"type": "track", "anonymousId": "a1", "event": e} for e in anonymous))
    survivor = by_user(ctx, "u1")["id"]
    assert _score(ctx, "u1") == 15
    assert len(_scores(ctx)) == 2
    (loser,) = set(_scores(ctx)) - {survivor}

    _process(ctx, processor, {"type": "identify", "userId": "u1", "anonymousId": "a1"})
    assert _score(ctx, "u1") == 50
    merged = {"Course preview": (2, 20), "Content download": (2, 10), "Consultation request": (1, 20)}
    assert _rules(ctx, "u1") == merged
    assert service.explain(ctx, loser).contact_id == survivor
    assert set(_scores(ctx)) == {survivor}
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(score_counters).where(score_counters.c.contact_id == loser)).all() == []
    _recompute_changes_nothing(ctx)


def test_changing_rules_requests_a_recompute_that_the_worker_runs_once(
    ctx: AppContext, processor: EventProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from leadflow.cli import app

    send(ctx, *({"type": "track", "userId": "u1", "event": "Signed Up"} for _ in range(3)))
    processor.drain()
    assert service.recompute_if_requested(ctx) is None  # nothing changed, nothing to do
    service.create_rule(
        ctx, ScoringRuleCreate(name="Signup", kind="behavioral", event="Signed Up", points=4), actor="test"
    )
    result = service.recompute_if_requested(ctx)
    assert result is not None
    assert result.contacts == 1
    assert service.recompute_if_requested(ctx) is None
    assert _score(ctx, "u1") == 12  # history was scored, not only what came after the rule
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", ctx.settings.database_url)
    run = CliRunner().invoke(app, ["scoring", "recompute"], terminal_width=200)
    assert run.exit_code == 0, run.output
    assert "1 rule(s), 1 contact(s) scored, 0 band change(s)" in run.stdout
