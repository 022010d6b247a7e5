"""Routing: rules in order with conditions on source, company and score; the weighted rotation is fair
(1,000 leads over capacities 1:1:2); inactive and out-of-hours users are skipped; MQLs are routed by the
pipeline; two workers never assign one lead twice (PostgreSQL)."""

from __future__ import annotations

import math
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.audit.models import audit_log
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import routing
from leadflow.crm.models import crm_lead_sla, crm_leads, crm_routing_counts
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.scoring.models import contact_scores
from tests.integration.crm.conftest import user
from tests.support.contacts import by_user
from tests.support.events import send

ALWAYS = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
WEEKDAYS = {day: [["09:00", "17:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


def _team(api: TestClient, name: str) -> str:
    answer = api.post("/api/v1/crm/teams", json={"name": name})
    assert answer.status_code == 201, answer.text
    team_id: str = answer.json()["id"]
    return team_id


def _rule(api: TestClient, **fields: Any) -> dict[str, Any]:
    answer = api.post("/api/v1/crm/routing-rules", json=fields)
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _leads(ctx: AppContext, processor: EventProcessor, count: int, **traits: Any) -> list[str]:
    """``count`` leads (contacts at stage lead), their contact ids in id order."""
    send(
        ctx,
        *(
            {"type": "identify", "userId": f"p{i}", "traits": {"email": f"p{i}@example.com", **traits}}
            for i in range(count)
        ),
    )
    processor.drain()
    with ctx.db.read() as conn:
        return list(
            conn.execute(sa.select(crm_leads.c.contact_id).order_by(crm_leads.c.contact_id)).scalars()
        )


def _route(ctx: AppContext, contact_ids: list[str]) -> list[Any]:
    with ctx.db.write() as conn:
        return routing.route(conn, ctx, contact_ids)


def _owners(ctx: AppContext) -> dict[str, str | None]:
    with ctx.db.read() as conn:
        return dict(conn.execute(sa.select(crm_leads.c.contact_id, crm_leads.c.owner_id)).all())


def test_rules_run_in_order_on_score_source_and_company_then_the_fallback(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    hot, ads, edu, rest = (
        user(api, n, f"{n}@corp.example", working_hours=ALWAYS)["id"] for n in ["hot", "ads", "edu", "rest"]
    )
    send(
        ctx,
        {"type": "identify", "userId": "a", "traits": {"email": "a@x.example", "source": "ads"}},
        {"type": "identify", "userId": "b", "traits": {"email": "b@x.example", "source": "ads"}},
        {"type": "identify", "userId": "c", "traits": {"email": "c@x.example"}},
        {"type": "identify", "userId": "d", "traits": {"email": "d@x.example"}},
        {
            "type": "group",
            "userId": "c",
            "groupId": "school",
            "traits": {"name": "School", "industry": "edu"},
        },
    )
    processor.drain()
    ids = {key: by_user(ctx, key)["id"] for key in "abcd"}
    with ctx.db.write() as conn:  # b is hot (scores come from scoring rules; written here directly)
        conn.execute(
            sa.insert(contact_scores),
            {
                "contact_id": ids["b"],
                "total": 80.0,
                "behavioral": 80.0,
                "demographic": 0.0,
                "firmographic": 0.0,
                "engagement": 0.0,
                "band": "hot",
                "updated_at": ctx.clock.now(),
            },
        )
    source = _rule(
        api, name="Ads", condition={"field": "traits.source", "op": "eq", "value": "ads"}, user_id=ads
    )
    _rule(
        api, name="Hot first", position=0, condition={"field": "score", "op": "gte", "value": 50}, user_id=hot
    )
    _rule(
        api, name="Schools", condition={"field": "company.industry", "op": "eq", "value": "edu"}, user_id=edu
    )
    listed = api.get("/api/v1/crm/routing-rules").json()
    assert [r["name"] for r in listed] == ["Hot first", "Ads", "Schools"]
    assert listed[1]["id"] == source["id"]
    assert listed[1]["position"] == 1

    assert api.patch("/api/v1/crm/routing-config", json={"fallback_owner_id": rest}).status_code == 200
    done = {r.contact_id: (r.owner_id, r.rule_id) for r in _route(ctx, list(ids.values()))}
    assert done[ids["b"]][0] == hot  # hot beats its source: the first matching rule wins
    assert done[ids["a"]] == (ads, source["id"])
    assert done[ids["c"]][0] == edu
    assert done[ids["d"]] == (rest, None)  # no rule: the fallback owner
    assert _route(ctx, list(ids.values())) == []  # owned leads are left alone
    answer = api.post("/api/v1/crm/leads/a@x.example/route")
    assert answer.status_code == 200
    assert answer.json()["owner_id"] == ads
    with ctx.db.read() as conn:
        audited = conn.execute(
            sa.select(sa.func.count())
            .select_from(audit_log)
            .where(audit_log.c.action == "lead.owner_assigned")
        ).scalar_one()
    assert audited == 4


def test_bad_rules_are_refused_with_codes(api: TestClient) -> None:
    somebody = user(api, "S", "s@corp.example")["id"]
    team = _team(api, "Sales")
    cases = [
        ({"name": "x", "user_id": somebody, "team_id": team}, "invalid_target"),
        ({"name": "x"}, "invalid_target"),
        ({"name": "x", "user_id": "nobody"}, "user_not_found"),
        ({"name": "x", "team_id": "nothing"}, "team_not_found"),
        ({"name": "x", "user_id": somebody, "condition": {"field": "nope..", "op": "eq"}}, "invalid_rule"),
    ]
    for body, code in cases:
        answer = api.post("/api/v1/crm/routing-rules", json=body)
        assert (answer.status_code, answer.json()["error"]["code"]) == (422, code), (body, answer.text)
    assert api.get("/api/v1/crm/routing-rules/nothing").status_code == 404
    rule = _rule(api, name="Team", team_id=team)
    changed = api.patch(f"/api/v1/crm/routing-rules/{rule['id']}", json={"active": False, "name": "Off"})
    assert changed.json()["active"] is False
    assert changed.json()["team_id"] == team
    assert api.patch(f"/api/v1/crm/routing-rules/{rule['id']}", json={"user_id": somebody}).status_code == 422
    assert api.delete(f"/api/v1/crm/routing-rules/{rule['id']}").status_code == 204
    assert api.get("/api/v1/crm/routing-rules").json() == []
    assert api.patch("/api/v1/crm/routing-config", json={"fallback_owner_id": "nobody"}).status_code == 422


def test_the_rotation_is_weighted_by_capacity_and_fair_over_1000_leads(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    team = _team(api, "Sales")
    weights = {"one": 1, "two": 1, "four": 2}
    ids = {n: user(api, n, f"{n}@corp.example", team_id=team, capacity=c)["id"] for n, c in weights.items()}
    _rule(api, name="Everyone", team_id=team)
    leads = _leads(ctx, processor, 1000)
    for start in range(0, len(leads), 100):
        _route(ctx, leads[start : start + 100])
    got = Counter(_owners(ctx).values())
    total = sum(weights.values())
    for name, capacity in weights.items():
        p = capacity / total
        mean, sd = 1000 * p, math.sqrt(1000 * p * (1 - p))
        assert abs(got[ids[name]] - mean) <= 3.29 * sd, (name, got[ids[name]], mean)  # binomial 99.9 %
    with ctx.db.read() as conn:
        counted = dict(
            conn.execute(sa.select(crm_routing_counts.c.user_id, crm_routing_counts.c.assigned)).all()
        )
    assert counted == {ids[n]: got[ids[n]] for n in weights}


def test_inactive_and_out_of_hours_users_are_skipped(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    team = _team(api, "Sales")
    # Monday 09:00 UTC: 10:00 in Berlin (working), 04:00 in New York (not yet), the same office hours
    on = user(api, "on", "on@corp.example", team_id=team, working_hours=WEEKDAYS, timezone="Europe/Berlin")[
        "id"
    ]
    away = user(
        api, "away", "away@corp.example", team_id=team, working_hours=WEEKDAYS, timezone="America/New_York"
    )
    away = away["id"]
    off = user(api, "off", "off@corp.example", team_id=team, working_hours=ALWAYS)["id"]
    api.patch(f"/api/v1/crm/users/{off}", json={"active": False})
    rule = _rule(api, name="Team in hours", team_id=team, respect_working_hours=True)
    leads = _leads(ctx, processor, 6)
    _route(ctx, leads[:3])
    assert set(_owners(ctx).values()) == {on, None}
    api.patch(f"/api/v1/crm/routing-rules/{rule['id']}", json={"respect_working_hours": False})
    _route(ctx, leads[3:])
    owners = Counter(_owners(ctx).values())
    assert owners[off] == 0
    assert owners[away] >= 1
    assert owners[on] + owners[away] == 6


def test_an_mql_is_routed_by_the_pipeline_and_starts_its_sla_clock(
    api: TestClient,
    ctx: AppContext,
    processor: EventProcessor,
    clock: VirtualClock,
    identify: Callable[..., None],
) -> None:
    owner = user(api, "Owner", "owner@corp.example", working_hours=ALWAYS)["id"]
    _rule(api, name="All", user_id=owner)
    identify({"u1": {"email": "ann@example.com"}})
    assert api.get("/api/v1/crm/leads/ann@example.com").json()["owner_id"] is None  # a lead, not an MQL
    contact_id = by_user(ctx, "u1")["id"]
    assert api.patch(f"/api/v1/contacts/{contact_id}", json={"lifecycle_stage": "mql"}).status_code == 200
    processor.drain()
    assert api.get("/api/v1/crm/leads/ann@example.com").json()["owner_id"] == owner
    with ctx.db.read() as conn:
        clock_row = conn.execute(sa.select(crm_lead_sla)).one()
    assert clock_row.owner_id == owner
    assert clock_row.qualified_at == clock.now()
    assert clock_row.first_response_due_at == clock.now() + timedelta(hours=2)


def test_two_workers_never_assign_one_lead_twice(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    team = _team(api, "Sales")
    ids = [
        user(api, n, f"{n}@corp.example", team_id=team, capacity=c)["id"]
        for n, c in (("a", 1), ("b", 1), ("c", 2))
    ]
    _rule(api, name="Everyone", team_id=team)
    leads = _leads(ctx, processor, 200)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def worker(order: list[str]) -> None:
        try:
            start.wait()
            for at in range(0, len(order), 10):
                _route(ctx, order[at : at + 10])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(o,)) for o in (leads, leads[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    owners = _owners(ctx)
    assert all(owners[lead] in ids for lead in leads)
    with ctx.db.read() as conn:
        audited = Counter(
            conn.execute(
                sa.select(audit_log.c.entity_id).where(audit_log.c.action == "lead.owner_assigned")
            ).scalars()
        )
        counted = dict(
            conn.execute(sa.select(crm_routing_counts.c.user_id, crm_routing_counts.c.assigned)).all()
        )
    assert set(audited) == set(leads)
    assert set(audited.values()) == {1}
    assert counted == dict(Counter(owners.values()))
    assert sorted(counted.values()) == [50, 50, 100]
