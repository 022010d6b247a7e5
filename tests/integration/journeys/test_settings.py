"""Journey settings and lifecycle on the virtual clock, on both databases: exit criteria, conversion goals,
quiet hours, the frequency cap, entry rules, versions, pause / resume / archive, retries and metrics.

The installation here allows one marketing email per contact per day (the ``settings`` fixture below), so
the frequency cap can be seen with two emails; every other test sends at most one per contact and day.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadflow.journeys import service
from leadflow.journeys.schemas import JourneyPatch
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.messaging import templates
from leadflow.segments import service as segments
from leadflow.segments.schemas import SegmentCreate
from tests.support import journeys as j
from tests.support.contacts import by_user

PRO = {"field": "traits.plan", "op": "eq", "value": "pro"}


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key="test-secret",
        ingest_rate_limit=0,
        api_rate_limit=0,
        frequency_cap_per_day=1,
        brand_address="1 Main St, Springfield",
    )


def _journey(*steps: dict[str, Any], event: str = "Go", **extra: Any) -> dict[str, Any]:
    return {
        "name": f"On {event}",
        "trigger": {"type": "event", "event": event},
        "steps": list(steps),
        **extra,
    }


def _wait(duration: str, then: str) -> dict[str, Any]:
    return {"id": "pause", "type": "wait", "duration": duration, "next": then}


def _mail(template: str, step_id: str = "mail", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "send_email", "template": template, **extra}


def _tag(tag: str, step_id: str = "tag", **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "add_tag", "tags": [tag], **extra}


def _enter(ctx: AppContext, user: str, event: str = "Go", **traits: Any) -> str:
    j.identify(ctx, user, email=f"{user}@example.com", **traits)
    j.track(ctx, user, event)
    j.settle(ctx)
    return str(by_user(ctx, user)["id"])


def _run_of(ctx: AppContext, contact_id: str, journey_id: str | None = None) -> dict[str, Any]:
    (found,) = [
        r for r in j.runs(ctx) if r["contact_id"] == contact_id and journey_id in (None, r["journey_id"])
    ]
    return found


def _mails(ctx: AppContext, contact_id: str | None = None) -> list[tuple[str, str]]:
    """(step, status) of each message, optionally of one contact."""
    return [(m["step_id"], m["status"]) for m in j.sent(ctx) if contact_id in (None, m["contact_id"])]


def test_an_exit_event_ends_the_run_and_cancels_its_steps(ctx: AppContext, clock: VirtualClock) -> None:
    j.template(ctx, "later")
    j.publish(ctx, _journey(_wait("1d", "mail"), _mail("later"), settings={"exit": [{"event": "Quit"}]}))
    quitter, stayer = _enter(ctx, "u1"), _enter(ctx, "u2")
    j.track(ctx, "u1", "Quit")
    j.settle(ctx)
    run = _run_of(ctx, quitter)
    assert (run["status"], run["exit_reason"]) == ("exited", "exit: Quit")
    assert [(s["status"], s["error"]) for s in j.steps(ctx) if s["contact_id"] == quitter] == [
        ("cancelled", "run ended")
    ]
    j.advance(ctx, clock, timedelta(days=1))
    assert (_mails(ctx, quitter), _mails(ctx, stayer)) == ([], [("mail", "queued")])


def test_entering_a_segment_ends_the_run(ctx: AppContext, clock: VirtualClock) -> None:
    segments.create(ctx, SegmentCreate(name="Pro", rules=PRO), actor="test", key="pro")
    j.template(ctx, "later")
    j.publish(ctx, _journey(_wait("1d", "mail"), _mail("later"), settings={"exit": [{"segment": "pro"}]}))
    upgraded, free = _enter(ctx, "u1", plan="free"), _enter(ctx, "u2", plan="free")
    j.identify(ctx, "u1", plan="pro")
    j.settle(ctx)
    assert (_run_of(ctx, upgraded)["status"], _run_of(ctx, upgraded)["exit_reason"]) == (
        "exited",
        "exit: segment pro",
    )
    assert _run_of(ctx, free)["status"] == "active"
    j.advance(ctx, clock, timedelta(days=1))
    assert (_mails(ctx, upgraded), _mails(ctx, free)) == ([], [("mail", "queued")])


def test_the_conversion_goal_counts_only_inside_its_window(ctx: AppContext, clock: VirtualClock) -> None:
    j.template(ctx, "later")
    goal = {"event": "Purchased", "within": "2d"}
    j.publish(ctx, _journey(_wait("5d", "mail"), _mail("later"), settings={"goal": goal}))
    early, late = _enter(ctx, "u1"), _enter(ctx, "u2")
    j.advance(ctx, clock, timedelta(days=1))
    j.track(ctx, "u1", "Purchased")
    j.settle(ctx)
    run = _run_of(ctx, early)
    assert (run["status"], run["exit_reason"], run["converted_at"]) == ("converted", "goal", clock.now())
    j.advance(ctx, clock, timedelta(days=2))
    j.track(ctx, "u2", "Purchased")
    j.settle(ctx)
    run = _run_of(ctx, late)
    assert (run["status"], run["converted_at"]) == ("active", None)
    j.advance(ctx, clock, timedelta(days=2))
    assert (_mails(ctx, early), _mails(ctx, late)) == ([], [("mail", "queued")])
    assert service.metrics(ctx, run["journey_id"]).converted == 1


def test_a_holdout_contact_who_converts_counts_but_stays_exited(ctx: AppContext, clock: VirtualClock) -> None:
    split = {
        "id": "ab",
        "type": "split",
        "paths": [{"name": "a", "weight": 1, "next": "tag"}, {"name": "b", "weight": 1, "next": "tag"}],
        "holdout": 99,
    }
    goal = {"event": "Purchased", "within": "7d"}
    journey_id = j.publish(ctx, _journey(split, _tag("treated"), settings={"goal": goal}))
    users = [f"u{i}" for i in range(3)]
    for user in users:
        _enter(ctx, user)
    held_out = [r for r in j.runs(ctx) if r["variant"] == "holdout"]
    assert held_out  # 99 % each: all three elsewhere would be one in a million
    j.advance(ctx, clock, timedelta(days=1))
    for user in users:
        j.track(ctx, user, "Purchased")
    j.settle(ctx)
    for before in held_out:
        run = _run_of(ctx, before["contact_id"])
        assert (run["status"], run["exit_reason"], run["converted_at"]) == ("exited", "holdout", clock.now())
    assert service.metrics(ctx, journey_id).converted == 3


def _utc(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def test_quiet_hours_hold_a_send_until_they_end_locally(ctx: AppContext, clock: VirtualClock) -> None:
    j.template(ctx, "hello")
    quiet = {"start": "22:00", "end": "08:00"}
    j.publish(ctx, _journey(_mail("hello"), settings={"quiet_hours": quiet}))
    # Monday 09:00 UTC is 04:00 in New York (ends 08:00 EST, 13:00 UTC) and 22:00 in Auckland (quiet
    # until Tuesday 08:00 NZDT, Monday 19:00 UTC); in UTC it is daytime.
    ny = _enter(ctx, "ny", timezone="America/New_York")
    nz = _enter(ctx, "nz", timezone="Pacific/Auckland")
    utc = _enter(ctx, "utc")
    assert _mails(ctx) == [("mail", "queued")]
    assert _mails(ctx, utc) == [("mail", "queued")]
    held = {s["contact_id"]: s for s in j.steps(ctx) if s["status"] == "pending"}
    assert (held[ny]["due_at"], held[nz]["due_at"]) == (_utc(2, 13), _utc(2, 19))
    assert held[ny]["detail"] == {"held": "quiet_hours"}
    j.advance(ctx, clock, timedelta(hours=4))
    assert (_mails(ctx, ny), _mails(ctx, nz)) == ([("mail", "queued")], [])
    j.advance(ctx, clock, timedelta(hours=6))
    assert _mails(ctx, nz) == [("mail", "queued")]


def test_the_frequency_cap_suppresses_marketing_but_not_transactional(
    ctx: AppContext, clock: VirtualClock
) -> None:
    j.template(ctx, "news")
    j.template(ctx, "receipt", kind="transactional")
    j.publish(ctx, _journey(_mail("news", "first")))
    j.publish(ctx, _journey(_mail("news", "twin")))  # the same event, the same moment
    again = j.publish(ctx, _journey(_mail("news", "second"), event="Go2", entry={"reentry": "always"}))
    j.publish(ctx, _journey(_mail("receipt", "receipt"), event="Paid", settings={"kind": "transactional"}))
    contact_id = _enter(ctx, "u1")
    j.advance(ctx, clock, timedelta(hours=1))
    j.track(ctx, "u1", "Go2")
    j.track(ctx, "u1", "Paid")
    j.settle(ctx)
    by_step = {m["step_id"]: m for m in j.sent(ctx)}
    assert sorted(by_step[s]["status"] for s in ("first", "twin")) == ["queued", "suppressed"]
    assert by_step["receipt"]["status"] == "queued"
    assert (by_step["second"]["status"], by_step["second"]["error"]) == ("suppressed", "frequency_capped")
    assert _run_of(ctx, contact_id, again)["status"] == "completed"
    j.advance(ctx, clock, timedelta(days=1))  # a day after the first email the cap allows one more
    j.track(ctx, "u1", "Go2")
    j.settle(ctx)
    assert [m["status"] for m in j.sent(ctx) if m["step_id"] == "second"] == ["suppressed", "queued"]


def test_reentry_never_after_and_always(ctx: AppContext, clock: VirtualClock) -> None:
    never = j.publish(ctx, _journey(_tag("n")))
    after = j.publish(ctx, _journey(_tag("a"), entry={"reentry": "after", "after": "2d"}))
    always = j.publish(ctx, _journey(_tag("x"), entry={"reentry": "always"}))
    for _ in range(3):  # at 0, 1d and 2d
        _enter(ctx, "u1")
        j.advance(ctx, clock, timedelta(days=1), step=timedelta(days=1))
    entered = {
        journey: [r["entered_at"] for r in j.runs(ctx) if r["journey_id"] == journey]
        for journey in (never, after, always)
    }
    start = _utc(2, 9)
    assert entered[never] == [start]
    assert sorted(entered[after]) == [start, start + timedelta(days=2)]
    assert len(entered[always]) == 3


def test_one_active_run_at_a_time_by_default(ctx: AppContext, clock: VirtualClock) -> None:
    single = j.publish(ctx, _journey(_wait("1d", "tag"), _tag("t"), entry={"reentry": "always"}))
    many = j.publish(
        ctx, _journey(_wait("1d", "tag"), _tag("t"), entry={"reentry": "always", "one_at_a_time": False})
    )
    _enter(ctx, "u1")
    j.advance(ctx, clock, timedelta(hours=1))
    _enter(ctx, "u1")

    def statuses(journey: str) -> list[str]:
        return [r["status"] for r in j.runs(ctx) if r["journey_id"] == journey]

    assert (statuses(single), statuses(many)) == (["active"], ["active", "active"])
    j.advance(ctx, clock, timedelta(days=1))
    _enter(ctx, "u1")
    assert statuses(single) == ["completed", "active"]


def test_editing_an_active_journey_publishes_a_version_runs_keep_theirs(
    ctx: AppContext, clock: VirtualClock
) -> None:
    j.template(ctx, "one")
    j.template(ctx, "two")
    journey_id = j.publish(ctx, _journey(_wait("1d", "mail"), _mail("one")))
    old = _enter(ctx, "u1")
    edited = service.update(
        ctx,
        journey_id,
        JourneyPatch(definition=_journey(_wait("1d", "mail2"), _mail("two", "mail2"))),
        actor="test",
    )
    assert (edited.status, edited.version) == ("active", 2)
    new = _enter(ctx, "u2")
    assert (_run_of(ctx, old)["version"], _run_of(ctx, new)["version"]) == (1, 2)
    j.advance(ctx, clock, timedelta(days=1))
    assert (_mails(ctx, old), _mails(ctx, new)) == ([("mail", "queued")], [("mail2", "queued")])


def test_pause_holds_every_pending_step_and_resume_releases_them(
    ctx: AppContext, clock: VirtualClock
) -> None:
    j.template(ctx, "later")
    journey_id = j.publish(ctx, _journey(_wait("1h", "mail"), _mail("later")))
    contact_id = _enter(ctx, "u1")
    assert service.pause(ctx, journey_id, actor="test").status == "paused"
    j.advance(ctx, clock, timedelta(hours=3))
    _enter(ctx, "u2")  # no one enters a paused journey
    assert [(s["step_id"], s["status"]) for s in j.steps(ctx)] == [("pause", "held")]
    assert (_mails(ctx), len(j.runs(ctx))) == ([], 1)
    service.resume(ctx, journey_id, actor="test")
    j.settle(ctx)
    assert _mails(ctx, contact_id) == [("mail", "queued")]
    assert _run_of(ctx, contact_id)["status"] == "completed"


def test_an_event_awaited_while_paused_takes_its_branch_on_resume(
    ctx: AppContext, clock: VirtualClock
) -> None:
    waiting = {"id": "wait", "type": "wait_until", "event": "Paid", "timeout": "2d", "on_event": "paid"}
    journey_id = j.publish(ctx, _journey(waiting, _tag("paid", "paid")))
    contact_id = _enter(ctx, "u1")
    service.pause(ctx, journey_id, actor="test")
    j.track(ctx, "u1", "Paid")
    j.advance(ctx, clock, timedelta(hours=2))
    assert [s["status"] for s in j.steps(ctx)] == ["held"]
    service.resume(ctx, journey_id, actor="test")
    j.settle(ctx)
    assert [(s["step_id"], s["branch"]) for s in j.steps(ctx)] == [("wait", "event"), ("paid", None)]
    assert _run_of(ctx, contact_id)["status"] == "completed"


def test_archiving_ends_every_run(ctx: AppContext, clock: VirtualClock) -> None:
    j.template(ctx, "later")
    journey_id = j.publish(ctx, _journey(_wait("1h", "mail"), _mail("later")))
    contact_id = _enter(ctx, "u1")
    service.archive(ctx, journey_id, actor="test")
    run = _run_of(ctx, contact_id)
    assert (run["status"], run["exit_reason"]) == ("exited", "journey archived")
    assert [(s["status"], s["error"]) for s in j.steps(ctx)] == [("cancelled", "journey archived")]
    j.advance(ctx, clock, timedelta(hours=2))
    _enter(ctx, "u2")
    assert (_mails(ctx), len(j.runs(ctx))) == ([], 1)


def test_a_failing_step_is_retried_with_backoff_then_fails_the_run(
    ctx: AppContext, clock: VirtualClock
) -> None:
    j.template(ctx, "gone")
    j.template(ctx, "kept")
    branch = {"id": "plan", "type": "branch", "if": PRO, "then": "gone", "else": "kept"}
    journey_id = j.publish(ctx, _journey(branch, _mail("gone", "gone"), _mail("kept", "kept")))
    templates.delete(ctx, "gone", actor="test")
    failing, fine = _enter(ctx, "u1", plan="pro"), _enter(ctx, "u2", plan="free")
    assert _mails(ctx, fine) == [("kept", "queued")]
    assert _run_of(ctx, fine)["status"] == "completed"
    for attempts, delay in enumerate(
        (timedelta(seconds=30), timedelta(minutes=2), timedelta(minutes=10), timedelta(hours=1)), 1
    ):
        (step,) = [s for s in j.steps(ctx) if s["step_id"] == "gone"]
        assert (step["status"], step["attempts"]) == ("pending", attempts)
        assert step["due_at"] == clock.now() + delay
        assert step["error"].startswith("MissingTemplate")
        assert _run_of(ctx, failing)["status"] == "active"
        j.advance(ctx, clock, delay)
    (step,) = [s for s in j.steps(ctx) if s["step_id"] == "gone"]
    assert (step["status"], step["attempts"]) == ("failed", 5)
    run = _run_of(ctx, failing)
    assert (run["status"], run["exit_reason"]) == ("failed", "step failed")
    assert run["error"] == "step gone: MissingTemplate: email template gone does not exist"
    metrics = service.metrics(ctx, journey_id)
    assert (metrics.failed, metrics.completed) == (1, 1)
    assert {s.step_id: s.failed for s in metrics.steps} == {"plan": 0, "gone": 1, "kept": 0}


def test_metrics_count_each_step(ctx: AppContext, clock: VirtualClock) -> None:
    j.template(ctx, "later")
    goal = {"event": "Purchased", "within": "7d"}
    journey_id = j.publish(
        ctx, _journey(_tag("t", next="pause"), _wait("1d", "mail"), _mail("later"), settings={"goal": goal})
    )
    for user in ("u1", "u2", "u3"):
        _enter(ctx, user)
    j.track(ctx, "u1", "Purchased")
    j.settle(ctx)

    def steps() -> dict[str, tuple[int, int, int, int]]:
        found = service.metrics(ctx, journey_id).steps
        return {s.step_id: (s.entered, s.completed, s.waiting, s.converted) for s in found}

    assert steps() == {"tag": (3, 3, 0, 1), "pause": (3, 0, 2, 1)}
    j.advance(ctx, clock, timedelta(days=1))
    assert steps() == {"tag": (3, 3, 0, 1), "pause": (3, 2, 0, 1), "mail": (2, 2, 0, 0)}
    totals = service.metrics(ctx, journey_id)
    assert (totals.entered, totals.active, totals.completed, totals.converted) == (3, 0, 2, 1)
