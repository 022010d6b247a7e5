"""Every trigger type on the virtual clock, on both databases."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from leadflow.contacts import service as contacts
from leadflow.contacts.schemas import ContactPatch
from leadflow.journeys.scheduling import tick_anniversaries, tick_schedules
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.scoring import service as scoring
from leadflow.scoring.definitions import ScoringRuleCreate
from leadflow.segments import service as segments
from leadflow.segments.schemas import SegmentCreate
from tests.support import journeys as j
from tests.support.contacts import all_contacts, by_user

TAG = {"id": "tag", "type": "add_tag", "tags": ["entered"]}
ALWAYS = {"reentry": "always"}


def _journey(trigger: dict[str, Any], name: str = "Triggered", **extra: Any) -> dict[str, Any]:
    return {"name": name, "trigger": trigger, "steps": [TAG], **extra}


def _id(ctx: AppContext, user: str) -> str:
    return str(by_user(ctx, user)["id"])


def _runs(ctx: AppContext, journey_id: str) -> list[dict[str, Any]]:
    return [r for r in j.runs(ctx) if r["journey_id"] == journey_id]


def _entered(ctx: AppContext, journey_id: str) -> Counter[str]:
    """How many runs each contact (by user id) has in the journey."""
    users = {c["id"]: c["user_id"] for c in all_contacts(ctx)}
    return Counter(users[r["contact_id"]] for r in _runs(ctx, journey_id))


def _pro_segment(ctx: AppContext) -> str:
    rules = {"field": "traits.plan", "op": "eq", "value": "pro"}
    return segments.create(ctx, SegmentCreate(name="Pro", rules=rules), actor="test", key="pro").id


def test_an_event_trigger_with_property_conditions(ctx: AppContext) -> None:
    where = [{"field": "total", "op": "gt", "value": 100}]
    journey_id = j.publish(ctx, _journey({"type": "event", "event": "Order Completed", "where": where}))
    j.track(ctx, "u1", "Order Completed", total=50)
    j.track(ctx, "u1", "Order Viewed", total=500)
    j.settle(ctx)
    assert _runs(ctx, journey_id) == []
    j.track(ctx, "u1", "Order Completed", total=150)
    j.settle(ctx)
    (run,) = _runs(ctx, journey_id)
    assert run["contact_id"] == _id(ctx, "u1")
    assert (run["trigger"]["event"], run["trigger"]["properties"]) == ("Order Completed", {"total": 150})


def test_segment_entry_and_exit(ctx: AppContext) -> None:
    pro = _pro_segment(ctx)
    free = {"field": "traits.plan", "op": "eq", "value": "free"}
    segments.create(ctx, SegmentCreate(name="Free", rules=free), actor="test")
    entered = j.publish(ctx, _journey({"type": "segment_entered", "segment": "pro"}))
    left = j.publish(ctx, _journey({"type": "segment_exited", "segment": pro}))
    j.identify(ctx, "u1", plan="pro")
    j.identify(ctx, "u2", plan="free")
    j.settle(ctx)
    assert (_entered(ctx, entered), _entered(ctx, left)) == (Counter({"u1": 1}), Counter())
    assert _runs(ctx, entered)[0]["trigger"]["event"] == "leadflow.segment_entered"
    j.identify(ctx, "u1", plan="free")
    j.settle(ctx)
    assert (_entered(ctx, entered), _entered(ctx, left)) == (Counter({"u1": 1}), Counter({"u1": 1}))
    assert _runs(ctx, left)[0]["trigger"]["event"] == "leadflow.segment_exited"


def test_a_lifecycle_stage_change(ctx: AppContext) -> None:
    to_mql = j.publish(ctx, _journey({"type": "stage_changed", "stage": "mql"}))
    any_stage = j.publish(ctx, _journey({"type": "stage_changed"}, entry=ALWAYS))
    j.identify(ctx, "u1", email="u1@example.com")  # visitor → lead
    j.settle(ctx)
    assert (_entered(ctx, to_mql), _entered(ctx, any_stage)) == (Counter(), Counter({"u1": 1}))
    contacts.patch(ctx, _id(ctx, "u1"), ContactPatch(lifecycle_stage="mql"), actor="test")
    j.settle(ctx)
    assert (_entered(ctx, to_mql), _entered(ctx, any_stage)) == (Counter({"u1": 1}), Counter({"u1": 2}))
    (run,) = _runs(ctx, to_mql)
    assert run["trigger"]["properties"] == {"from": "lead", "to": "mql"}


def test_a_score_band_change_by_band_and_direction(ctx: AppContext) -> None:
    for name, event, points in (("Demo", "Demo Requested", 60), ("Churn risk", "Plan Downgraded", -50)):
        rule = ScoringRuleCreate(name=name, kind="behavioral", event=event, points=points)
        scoring.create_rule(ctx, rule, actor="test")
    warm_up = j.publish(ctx, _journey({"type": "score_band_changed", "band": "warm", "direction": "up"}))
    hot = j.publish(ctx, _journey({"type": "score_band_changed", "band": "hot"}))
    down = j.publish(ctx, _journey({"type": "score_band_changed", "direction": "down"}))
    j.track(ctx, "u1", "Demo Requested")  # 60: cold → warm
    j.settle(ctx)
    assert [_entered(ctx, x) for x in (warm_up, hot, down)] == [Counter({"u1": 1}), Counter(), Counter()]
    j.track(ctx, "u1", "Demo Requested")  # 120: warm → hot
    j.settle(ctx)
    assert [_entered(ctx, x) for x in (warm_up, hot, down)] == [
        Counter({"u1": 1}),
        Counter({"u1": 1}),
        Counter(),
    ]
    j.track(ctx, "u1", "Plan Downgraded")  # 70: hot → warm, down
    j.settle(ctx)
    assert _entered(ctx, down) == Counter({"u1": 1})
    assert _entered(ctx, warm_up) == Counter({"u1": 1})
    assert _runs(ctx, down)[0]["trigger"]["properties"]["from"] == "hot"


def test_a_schedule_enrols_the_segment_once_per_tick(ctx: AppContext, clock: VirtualClock) -> None:
    _pro_segment(ctx)
    schedule = {"type": "schedule", "cron": "0 9 * * *", "timezone": "America/New_York", "segment": "pro"}
    journey_id = j.publish(ctx, _journey(schedule, entry=ALWAYS))
    for user, plan in (("u1", "pro"), ("u2", "pro"), ("u3", "free")):
        j.identify(ctx, user, plan=plan)
    j.settle(ctx)
    assert tick_schedules(ctx) == 0  # Monday 09:00 UTC: the next tick is 09:00 in New York, 14:00 UTC
    clock.advance(timedelta(hours=4, minutes=59))
    assert tick_schedules(ctx) == 0
    clock.advance(timedelta(minutes=1))
    assert tick_schedules(ctx) == 2
    assert tick_schedules(ctx) == 0
    j.settle(ctx)
    assert _entered(ctx, journey_id) == Counter({"u1": 1, "u2": 1})
    assert _runs(ctx, journey_id)[0]["trigger"]["properties"] == {"tick": "2026-03-02T14:00:00+00:00"}
    clock.advance(timedelta(days=1))
    assert tick_schedules(ctx) == 2
    assert tick_schedules(ctx) == 0
    assert _entered(ctx, journey_id) == Counter({"u1": 2, "u2": 2})


def test_an_anniversary_in_the_contacts_zone_once_a_year(ctx: AppContext, clock: VirtualClock) -> None:
    journey_id = j.publish(ctx, _journey({"type": "anniversary", "field": "traits.birthday"}, entry=ALWAYS))
    j.identify(ctx, "u1", birthday="1990-03-02")
    j.identify(ctx, "u2", birthday="1985-03-03", timezone="Pacific/Auckland")
    j.identify(ctx, "u3", birthday="1990-03-03")
    j.settle(ctx)
    assert tick_anniversaries(ctx) == 1  # Monday 2 March 09:00 UTC (22:00 in Auckland)
    assert tick_anniversaries(ctx) == 0
    j.settle(ctx)  # the runs complete: re-entry is only refused by the year
    assert _entered(ctx, journey_id) == Counter({"u1": 1})
    clock.advance(timedelta(hours=2))  # midnight in Auckland: 3 March there, still 2 March in UTC
    assert tick_anniversaries(ctx) == 1
    j.settle(ctx)
    assert _entered(ctx, journey_id) == Counter({"u1": 1, "u2": 1})
    clock.advance(timedelta(days=365))  # 2 March 2027, 11:00 UTC
    assert tick_anniversaries(ctx) == 2
    assert tick_anniversaries(ctx) == 0
    assert _entered(ctx, journey_id) == Counter({"u1": 2, "u2": 2})
