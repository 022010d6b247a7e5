"""The deal steps of journeys (``create_deal``, ``move_deal``) on the virtual clock, on both databases:
the deals and events they make, that a step run again after a crash opens or moves nothing twice, the
errors a journey naming a missing pipeline or stage is refused with at publish, and the simulator."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.crm import deals
from leadflow.crm import service as crm
from leadflow.crm.models import crm_deals, crm_stages
from leadflow.events.models import events
from leadflow.journeys import executor, runs, service, simulator, steps
from leadflow.journeys.outcomes import Outcome
from leadflow.journeys.schemas import JourneyCreate
from leadflow.journeys.simulator import SimulationRequest
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from tests.support import journeys as j
from tests.support.contacts import by_user

STAGE_CHANGED = "deal.stage_changed"


class Crash(Exception):
    """The worker dies before its transaction commits."""


def _journey(*chain: dict[str, Any]) -> dict[str, Any]:
    """Entered on ``Go``: wait an hour (a claimed row, as a worker finds it), then the chain."""
    wait = {"id": "pause", "type": "wait", "duration": "1h", "next": chain[0]["id"]}
    linked = [{**s, "next": n["id"]} for s, n in itertools.pairwise(chain)] + [chain[-1]]
    return {"name": "Deals", "trigger": {"type": "event", "event": "Go"}, "steps": [wait, *linked]}


def _enter(ctx: AppContext, user: str, **properties: Any) -> str:
    j.identify(ctx, user, email=f"{user}@example.com", first_name=user.title())
    j.track(ctx, user, "Go", **properties)
    j.settle(ctx)
    return str(by_user(ctx, user)["id"])


def _deals(ctx: AppContext) -> list[dict[str, Any]]:
    query = (
        sa.select(crm_deals, crm_stages.c.name.label("stage"))
        .join(crm_stages, crm_stages.c.id == crm_deals.c.stage_id)
        .order_by(crm_deals.c.created_at, crm_deals.c.id)
    )
    with ctx.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def _events(ctx: AppContext, name: str) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        query = sa.select(events).where(events.c.event == name).order_by(events.c.id)
        return [dict(r._mapping) for r in conn.execute(query)]


def _deal_at(ctx: AppContext, user: str, stage: str) -> None:
    """A person opened a deal for this contact by hand."""
    j.identify(ctx, user, email=f"{user}@example.com")
    j.settle(ctx)
    data = deals.DealCreate(
        title="By hand", value=Decimal(100), currency="EUR", email=f"{user}@example.com", stage=stage
    )
    deals.create(ctx, data, actor="test")


def _crash_then_retry(ctx: AppContext, clock: VirtualClock) -> list[runs.Item]:
    """Let the wait pass; a worker runs the due steps but dies before committing; then they run for
    real. Answers the dead worker's items, to run their steps once more with the same keys."""
    clock.advance(timedelta(hours=1))
    claimed: list[runs.Item] = []

    def dies() -> None:
        with ctx.db.write() as conn:
            claimed.extend(runs.claim(conn, ctx, clock.now(), 100))
            assert executor.execute(conn, ctx, claimed, clock.now())
            raise Crash

    with pytest.raises(Crash):
        dies()
    j.settle(ctx)
    return claimed


def _again(ctx: AppContext, clock: VirtualClock, item: runs.Item, step_id: str, depth: int) -> Outcome:
    follow = runs.Item(**{**item.__dict__, "step_id": step_id, "depth": item.depth + depth})
    with ctx.db.write() as conn:
        (outcome,) = steps.HANDLERS[follow.step.type](conn, ctx, [follow], clock.now())
    return outcome


def _branches(ctx: AppContext, step_id: str) -> dict[str, str | None]:
    return {s["contact_id"]: s["branch"] for s in j.steps(ctx) if s["step_id"] == step_id}


def test_create_deal_opens_once_and_move_deal_moves_it_after_a_crash(
    ctx: AppContext, clock: VirtualClock
) -> None:
    crm.ensure_default_pipeline(ctx)
    create = {
        "id": "open",
        "type": "create_deal",
        "stage": "interest",
        "title": "{{ event.course }} for {{ contact.first_name }}",
        "value": "{{ event.total }}",
        "currency": "{{ event.currency }}",
        "expected_close": "30d",
    }
    move = {"id": "propose", "type": "move_deal", "stage": "proposal"}
    j.publish(ctx, _journey(create, move))
    ann = _enter(ctx, "ann", course="Python 101", total=49.5, currency="usd")
    _deal_at(ctx, "bob", "consultation booked")  # bob has an open deal already
    bob = _enter(ctx, "bob", course="Python 101", total=10, currency="EUR")
    claimed = _crash_then_retry(ctx, clock)

    found = {d["contact_id"]: d for d in _deals(ctx)}
    assert len(_deals(ctx)) == 2  # bob kept his deal: no second one
    assert (found[ann]["title"], found[ann]["value"], found[ann]["currency"]) == (
        "Python 101 for Ann",
        Decimal("49.5"),
        "USD",
    )
    assert found[ann]["expected_close"] == (clock.now() + timedelta(days=30)).date()
    assert (found[ann]["stage"], found[bob]["stage"], found[bob]["title"]) == (
        "proposal",
        "proposal",
        "By hand",
    )
    assert _branches(ctx, "open") == {ann: None, bob: "exists"}
    (created_by_step,) = [e for e in _events(ctx, "deal.created") if e["contact_id"] == ann]
    assert created_by_step["properties"]["stage"] == "interest"
    moved = sorted(
        (e["properties"]["from"], e["properties"]["to"]) for e in _events(ctx, "deal.stage_changed")
    )
    assert moved == [("consultation booked", "proposal"), ("interest", "proposal")]

    for item in claimed:  # the dead worker's keys: nothing is opened or moved twice
        assert _again(ctx, clock, item, "open", 1).branch in (None, "exists")
        assert _again(ctx, clock, item, "propose", 2).branch == "unchanged"
    assert len(_deals(ctx)) == 2
    assert len(_events(ctx, "deal.created")) == 2
    assert len(_events(ctx, "deal.stage_changed")) == 2


def test_move_deal_goes_forward_only_never_opens_one_and_a_win_keeps_its_reason(
    ctx: AppContext, clock: VirtualClock
) -> None:
    crm.ensure_default_pipeline(ctx)
    back = {"id": "back", "type": "move_deal", "pipeline": "Course sales", "stage": "interest"}
    win = {"id": "win", "type": "move_deal", "stage": "won", "reason": "paid"}
    j.publish(ctx, _journey(back, win))
    _deal_at(ctx, "cat", "proposal")
    cat, dan = _enter(ctx, "cat"), _enter(ctx, "dan")
    j.advance(ctx, clock, timedelta(hours=1))
    assert _branches(ctx, "back") == {cat: "unchanged", dan: "no_deal"}
    assert _branches(ctx, "win") == {cat: None, dan: "no_deal"}
    (deal,) = _deals(ctx)
    assert (deal["contact_id"], deal["stage"], deal["status"], deal["reason"]) == (cat, "won", "won", "paid")
    (event,) = _events(ctx, "deal.stage_changed")
    assert (event["properties"]["from"], event["properties"]["reason"]) == ("proposal", "paid")


def test_a_value_that_is_not_a_number_fails_that_contacts_step(ctx: AppContext, clock: VirtualClock) -> None:
    crm.ensure_default_pipeline(ctx)
    j.publish(ctx, _journey({"id": "open", "type": "create_deal", "value": "{{ event.total }}"}))
    eve = _enter(ctx, "eve", total="a lot")
    j.advance(ctx, clock, timedelta(hours=1))
    (step,) = [s for s in j.steps(ctx) if s["step_id"] == "open"]
    assert (step["contact_id"], step["status"]) == (eve, "pending")  # retried on the engine's schedule
    assert "the deal value 'a lot' is not a number" in step["error"]
    assert _deals(ctx) == []


PUBLISH_ERRORS: list[tuple[dict[str, Any], str, str]] = [
    ({"type": "create_deal", "pipeline": "Nope"}, "unknown_pipeline", "no pipeline 'Nope'"),
    ({"type": "move_deal", "stage": "signed"}, "unknown_stage", "no stage 'signed'"),
    ({"type": "create_deal", "stage": "lost"}, "reason_required", "needs a reason"),
]
SAVE_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"type": "create_deal", "value": "lots"}, "not a number"),
    ({"type": "create_deal", "currency": "EURO"}, "ISO 4217"),
    ({"type": "create_deal", "title": "{{ contact.first_name "}, "title"),
    ({"type": "create_deal", "expected_close": "soon"}, "expected_close"),
    ({"type": "move_deal"}, "stage"),
]


def _bad(step: dict[str, Any]) -> dict[str, Any]:
    return {"name": "Bad", "trigger": {"type": "event", "event": "Go"}, "steps": [{"id": "s", **step}]}


def test_a_deal_step_naming_what_is_not_there_is_refused(ctx: AppContext) -> None:
    crm.ensure_default_pipeline(ctx)
    for step, code, words in PUBLISH_ERRORS:
        definition = {
            "name": "Bad",
            "trigger": {"type": "event", "event": "Go"},
            "steps": [{"id": "s", **step}],
        }
        journey = service.create(ctx, JourneyCreate(definition=definition), actor="test")
        with pytest.raises(Invalid) as refused:
            service.publish(ctx, journey.id, actor="test")
        assert refused.value.code == code
        assert "step 's'" in refused.value.message
        assert words in refused.value.message
    for step, words in SAVE_ERRORS:
        definition = {
            "name": "Bad",
            "trigger": {"type": "event", "event": "Go"},
            "steps": [{"id": "s", **step}],
        }
        with pytest.raises(Invalid) as invalid:
            service.validate(definition)
        assert invalid.value.code == "invalid_journey"
        assert words in invalid.value.message, (step, invalid.value.message)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the scratch engine: tested elsewhere
def test_the_simulator_shows_the_deal_steps_and_writes_no_deal(ctx: AppContext) -> None:
    crm.ensure_default_pipeline(ctx)
    definition = {
        "name": "Sim",
        "trigger": {"type": "event", "event": "Go"},
        "settings": {"kind": "transactional"},
        "steps": [
            {"id": "open", "type": "create_deal", "title": "{{ event.course }}", "value": 20, "next": "move"},
            {"id": "move", "type": "move_deal", "stage": "proposal", "next": "again"},
            {"id": "again", "type": "create_deal"},
        ],
    }
    request = SimulationRequest.model_validate(
        {"events": [{"event": "Go", "properties": {"course": "SQL"}}], "horizon": "1h"}
    )
    result = simulator.simulate(ctx, definition, request)
    assert [(m.step, m.status, m.branch, m.error) for m in result.timeline] == [
        ("open", "done", None, None),
        ("move", "done", None, None),
        ("again", "done", "exists", None),
    ]
    assert _deals(ctx) == []  # nothing touched the real database
