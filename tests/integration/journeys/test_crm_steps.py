"""The CRM steps of journeys (``log_activity``, ``set_lead_status``, ``assign_owner``, ``notify_owner``
to the lead's real owner) on the virtual clock, on both databases: what they change, that a step run
again after a crash changes nothing twice, and the errors a journey with a bad step is refused with."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.audit.models import audit_log
from leadflow.crm import leads, people, routing
from leadflow.crm.models import crm_activities, crm_leads
from leadflow.crm.routing_schemas import RuleCreate
from leadflow.crm.schemas import OwnerChange, UserCreate, UserFields
from leadflow.events.models import events
from leadflow.journeys import executor, runs, simulator, steps
from leadflow.journeys.simulator import SimulationRequest
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support import journeys as j
from tests.support.contacts import by_user

ADS = "ads"


class Crash(Exception):
    """The worker dies before its transaction commits."""


def _journey(*chain: dict[str, Any]) -> dict[str, Any]:
    """Entered on ``Go``: wait an hour (a claimed row, as a worker finds it), then the chain."""
    wait = {"id": "pause", "type": "wait", "duration": "1h", "next": chain[0]["id"]}
    linked = [{**s, "next": n["id"]} for s, n in itertools.pairwise(chain)] + [chain[-1]]
    return {"name": "CRM", "trigger": {"type": "event", "event": "Go"}, "steps": [wait, *linked]}


def _enter(ctx: AppContext, user: str, **properties: Any) -> str:
    j.identify(ctx, user, email=f"{user}@example.com", first_name=user.title())
    j.track(ctx, user, "Go", **properties)
    j.settle(ctx)
    return str(by_user(ctx, user)["id"])


def _user(ctx: AppContext, name: str) -> str:
    return people.create_user(ctx, UserCreate(name=name, email=f"{name}@school.example"), actor="test").id


def _rows(ctx: AppContext, query: Any) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def _activities(ctx: AppContext) -> list[dict[str, Any]]:
    return _rows(ctx, sa.select(crm_activities).order_by(crm_activities.c.id))


def _lead(ctx: AppContext, contact_id: str) -> dict[str, Any]:
    (row,) = _rows(ctx, sa.select(crm_leads).where(crm_leads.c.contact_id == contact_id))
    return row


def _events(ctx: AppContext, name: str) -> list[dict[str, Any]]:
    return _rows(ctx, sa.select(events).where(events.c.event == name).order_by(events.c.id))


def _crash_then_retry(ctx: AppContext, clock: VirtualClock) -> list[runs.Item]:
    """Let the wait pass; a worker claims and runs the due steps but dies before committing; then the
    steps run for real. Answers the items the dead worker had, to run them once more."""
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


def _again(ctx: AppContext, clock: VirtualClock, item: runs.Item, step_id: str, depth: int = 1) -> None:
    """The step ``step_id`` (``depth`` steps after the claimed one) of the dead worker's chain, run
    again with the same idempotency key."""
    follow = runs.Item(**{**item.__dict__, "step_id": step_id, "depth": item.depth + depth})
    with ctx.db.write() as conn:
        steps.HANDLERS[follow.step.type](conn, ctx, [follow], clock.now())


def test_log_activity_renders_liquid_and_logs_once_after_a_crash(
    ctx: AppContext, clock: VirtualClock
) -> None:
    owner = _user(ctx, "rep")
    log = {
        "id": "log",
        "type": "log_activity",
        "kind": "task",
        "subject": "Call {{ contact.first_name }}",
        "body": "Readiness {{ event.score }} for {{ vars.course | default: 'the course' }}",
        "due": "1d",
    }
    j.publish(ctx, _journey({"id": "own", "type": "assign_owner", "user": owner}, log))
    contact_id = _enter(ctx, "ann", score=72)
    claimed = _crash_then_retry(ctx, clock)
    (activity,) = _activities(ctx)
    assert (activity["contact_id"], activity["kind"], activity["owner_id"]) == (contact_id, "task", owner)
    assert (activity["subject"], activity["body"]) == ("Call Ann", "Readiness 72 for the course")
    assert activity["due_at"] == clock.now() + timedelta(days=1)
    assert activity["created_by"].startswith("journey:")
    _again(ctx, clock, claimed[0], "log", depth=2)  # the dead worker's key: already logged
    assert len(_activities(ctx)) == 1
    assert _lead(ctx, contact_id)["first_response_at"] is None  # an automation is not a response


def test_set_lead_status_changes_and_emits_once(ctx: AppContext, clock: VirtualClock) -> None:
    status = {"id": "lose", "type": "set_lead_status", "status": "lost", "reason": "went elsewhere"}
    j.publish(ctx, _journey(status))
    contact_id = _enter(ctx, "bob")
    claimed = _crash_then_retry(ctx, clock)
    lead = _lead(ctx, contact_id)
    assert (lead["status"], lead["reason"]) == ("lost", "went elsewhere")
    (event,) = _events(ctx, "lead.status_changed")
    assert event["properties"] == {"from": "new", "to": "lost", "reason": "went elsewhere"}
    _again(ctx, clock, claimed[0], "lose")
    assert len(_events(ctx, "lead.status_changed")) == 1
    audited = _rows(ctx, sa.select(audit_log).where(audit_log.c.action == "lead.status_changed"))
    assert len(audited) == 1
    assert audited[0]["actor"].startswith("journey:")


def test_assign_owner_by_email_and_an_unknown_user_fails_with_the_reason(
    ctx: AppContext, clock: VirtualClock
) -> None:
    owner = _user(ctx, "rep")
    j.publish(ctx, _journey({"id": "own", "type": "assign_owner", "user": "REP@school.example"}))
    contact_id = _enter(ctx, "cat")
    claimed = _crash_then_retry(ctx, clock)
    assert _lead(ctx, contact_id)["owner_id"] == owner
    (event,) = _events(ctx, "lead.owner_assigned")
    assert event["properties"] == {"from": None, "to": owner}
    _again(ctx, clock, claimed[0], "own")
    assert len(_events(ctx, "lead.owner_assigned")) == 1

    j.publish(ctx, _journey({"id": "own", "type": "assign_owner", "user": "nobody@school.example"}))
    _enter(ctx, "dan")
    j.advance(ctx, clock, timedelta(hours=1))
    (failed,) = [s for s in j.steps(ctx) if s["step_id"] == "own" and s["status"] == "pending"]
    assert "no user nobody@school.example" in failed["error"]


def test_assign_owner_by_routing_keeps_an_owner_and_routes_the_others(
    ctx: AppContext, clock: VirtualClock
) -> None:
    rep, kept = _user(ctx, "rep"), _user(ctx, "kept")
    routing.create_rule(
        ctx,
        RuleCreate(
            name="ads", condition={"field": "traits.channel", "op": "eq", "value": "ads"}, user_id=rep
        ),
        actor="test",
    )
    j.publish(ctx, _journey({"id": "route", "type": "assign_owner", "route": True}))
    j.identify(ctx, "hal", channel="ads")
    j.identify(ctx, "ida", channel="ads")
    j.identify(ctx, "jon", channel="seo")
    hal, ida, jon = _enter(ctx, "hal"), _enter(ctx, "ida"), _enter(ctx, "jon")
    leads.assign(ctx, "ida@example.com", OwnerChange(owner_id=kept), actor="test")
    claimed = _crash_then_retry(ctx, clock)
    assert {c: _lead(ctx, c)["owner_id"] for c in (hal, ida, jon)} == {hal: rep, ida: kept, jon: None}
    assert {s["contact_id"]: s["branch"] for s in j.steps(ctx) if s["step_id"] == "route"} == {
        hal: None,
        ida: None,
        jon: "unassigned",
    }
    assigned = len(_events(ctx, "lead.owner_assigned"))
    for item in claimed:
        _again(ctx, clock, item, "route")
    assert len(_events(ctx, "lead.owner_assigned")) == assigned


def test_notify_owner_emails_the_leads_crm_owner(ctx: AppContext, clock: VirtualClock) -> None:
    j.template(ctx, "owner-notification", kind="transactional")
    owner = _user(ctx, "rep")
    tell = {"id": "tell", "type": "notify_owner", "fallback": "desk@school.example"}
    j.publish(ctx, _journey({"id": "own", "type": "assign_owner", "user": owner}, tell))
    owned = _enter(ctx, "eve")
    j.advance(ctx, clock, timedelta(hours=1))
    (message,) = j.sent(ctx)
    assert (message["contact_id"], message["kind"], message["to_address"]) == (
        owned,
        "internal",
        "rep@school.example",
    )
    assert message["status"] == "queued"
    assert message["context"]["owner"] == {"email": "rep@school.example", "name": "rep"}
    (step,) = [s for s in j.steps(ctx) if s["step_id"] == "tell"]
    assert step["branch"] is None


def test_notify_owner_without_an_active_owner_falls_back(ctx: AppContext, clock: VirtualClock) -> None:
    """No lead owner, or an inactive one: the step's fallback (branch ``fallback``)."""
    j.template(ctx, "owner-notification", kind="transactional")
    gone = _user(ctx, "gone")
    j.publish(ctx, _journey({"id": "tell", "type": "notify_owner", "fallback": "desk@school.example"}))
    orphan, left = _enter(ctx, "fay"), _enter(ctx, "gus")
    leads.assign(ctx, "gus@example.com", OwnerChange(owner_id=gone), actor="test")
    people.update_user(ctx, gone, UserFields(active=False), actor="test")
    j.advance(ctx, clock, timedelta(hours=1))
    by_contact = {m["contact_id"]: m for m in j.sent(ctx)}
    assert {c: by_contact[c]["to_address"] for c in (orphan, left)} == {
        orphan: "desk@school.example",
        left: "desk@school.example",
    }
    assert {s["branch"] for s in j.steps(ctx) if s["step_id"] == "tell"} == {"fallback"}


BAD_STEPS: list[tuple[dict[str, Any], str]] = [
    ({"type": "set_lead_status", "status": "lost"}, "needs a reason"),
    ({"type": "set_lead_status", "status": "contacted", "reason": "x"}, "take a reason"),
    ({"type": "set_lead_status", "status": "hot"}, "unknown status"),
    ({"type": "log_activity", "kind": "fax", "subject": "s"}, "unknown activity kind"),
    ({"type": "log_activity", "kind": "note", "subject": "s", "due": "1d"}, "only a task"),
    ({"type": "log_activity", "subject": "{{ contact.first_name "}, "subject"),
    ({"type": "log_activity", "kind": "task", "subject": "s", "due": "soon"}, "due"),
    ({"type": "assign_owner"}, "user"),
    ({"type": "assign_owner", "user": "a@b.example", "route": True}, "not both"),
]


def test_a_bad_crm_step_refuses_the_journey(client: TestClient, admin_key: str) -> None:
    for step, words in BAD_STEPS:
        steps = [{"id": "s", **step}]
        definition = {"name": "Bad", "trigger": {"type": "event", "event": "Go"}, "steps": steps}
        answer = client.post(
            "/api/v1/journeys",
            json={"definition": definition},
            headers={"Authorization": f"Bearer {admin_key}"},
        )
        assert answer.status_code == 422, answer.text
        error = answer.json()["error"]
        assert error["code"] == "invalid_journey"
        assert words in error["message"], (step, error["message"])


def test_the_simulator_runs_the_crm_steps_with_the_installations_users(ctx: AppContext) -> None:
    _user(ctx, "rep")
    definition = {
        "name": "Sim",
        "trigger": {"type": "event", "event": "Go"},
        "settings": {"kind": "transactional"},
        "steps": [
            {"id": "own", "type": "assign_owner", "user": "rep@school.example", "next": "status"},
            {"id": "status", "type": "set_lead_status", "status": "contacted", "next": "log"},
            {"id": "log", "type": "log_activity", "subject": "Hi {{ contact.first_name }}", "next": "nobody"},
            {"id": "nobody", "type": "assign_owner", "user": "ghost@school.example"},
        ],
    }
    request = SimulationRequest.model_validate(
        {"contact": {"first_name": "Ann"}, "events": [{"event": "Go"}], "horizon": "1h"}
    )
    result = simulator.simulate(ctx, definition, request)
    moments = {m.step: m for m in result.timeline}
    assert [moments[s].error for s in ("own", "status", "log")] == [None, None, None]
    assert "no user ghost@school.example" in (moments["nobody"].reason or moments["nobody"].error or "")
    assert _activities(ctx) == []  # nothing touched the real database
