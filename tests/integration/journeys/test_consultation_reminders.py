"""The shipped ``consultation-reminders`` journey and the ``wait_until_time`` step it is built on:
reminders 24 hours and 1 hour before a booking's ``start_time``, none after a cancellation, the new
times after a reschedule, and a bad time failing the step with its reason. The simulator runs on
SQLite (the scratch database's engine is tested elsewhere); the executor on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from leadflow.journeys import installer, service, simulator
from leadflow.journeys.simulator import Simulation, SimulationRequest
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support import journeys as j
from tests.support.contacts import by_user

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the clock fixture's start
SCHEDULED, CANCELED = "consultation_scheduled", "consultation_canceled"
ONLY_SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _simulate(ctx: AppContext, events: list[dict[str, Any]]) -> Simulation:
    installed = installer.install(ctx, "consultation-reminders", actor="test")
    definition = service.get(ctx, installed.journey_id).definition
    request = {
        "contact": {"email": "ann@example.com", "first_name": "Ann"},
        "events": events,
        "horizon": "5d",
        "start": START.isoformat(),
    }
    return simulator.simulate(ctx, definition, SimulationRequest.model_validate(request))


def _booked(at: datetime, **extra: Any) -> dict[str, Any]:
    return {"service": "Career consultation", "booking_id": "b1", "start_time": at.isoformat(), **extra}


def _emails(result: Simulation) -> list[tuple[datetime, str]]:
    return [(m.at, m.email.subject) for m in result.timeline if m.email is not None]


@ONLY_SQLITE
def test_the_simulator_shows_both_reminders_at_24_and_1_hour_before(ctx: AppContext) -> None:
    start = START + timedelta(days=3)  # Thursday 5 March, 09:00 UTC, given with a +01:00 offset
    result = _simulate(
        ctx, [{"event": SCHEDULED, "properties": _booked(start.astimezone(timezone(timedelta(hours=1))))}]
    )
    assert _emails(result) == [
        (start - timedelta(hours=24), "Tomorrow: your Career consultation"),
        (start - timedelta(hours=1), "In one hour: your Career consultation"),
    ]
    day_before = next(m.email for m in result.timeline if m.email is not None)
    assert day_before is not None
    assert "Thursday 05 March 2026 at 10:00 (UTC+0100)" in day_before.text  # as the booking gave it
    assert result.run_status == "completed"


@ONLY_SQLITE
def test_the_simulator_skips_a_reminder_whose_moment_has_passed(ctx: AppContext) -> None:
    start = START + timedelta(hours=5)
    result = _simulate(ctx, [{"event": SCHEDULED, "properties": _booked(start)}])
    assert [(m.step, m.branch) for m in result.timeline if m.type == "wait_until_time"] == [
        ("wait-24h", "past"),
        ("wait-1h", None),
    ]
    assert _emails(result) == [(start - timedelta(hours=1), "In one hour: your Career consultation")]


@ONLY_SQLITE
def test_the_simulator_shows_no_reminder_after_a_cancellation(ctx: AppContext) -> None:
    start = START + timedelta(days=3)
    result = _simulate(
        ctx,
        [
            {"event": SCHEDULED, "properties": _booked(start)},
            {"after": "1d", "event": CANCELED, "properties": _booked(start, reason="ill")},
        ],
    )
    assert _emails(result) == []
    assert (result.run_status, result.exit_reason) == ("exited", f"exit: {CANCELED}")


def _book(ctx: AppContext, user: str, start: datetime) -> str:
    j.identify(ctx, user, email=f"{user}@example.com", first_name=user.title())
    j.track(ctx, user, SCHEDULED, **_booked(start))
    j.settle(ctx)
    return str(by_user(ctx, user)["id"])


def test_reminders_run_on_the_virtual_clock(ctx: AppContext, clock: VirtualClock) -> None:
    """Ann: both reminders at their moments. Bob cancels: none. Cat reschedules to a day later: the
    reminders of the new time only. Dan's booking carries no usable time: the step fails with why."""
    installer.install(ctx, "consultation-reminders", actor="test", publish=True)
    start = clock.now() + timedelta(days=2)
    ann = _book(ctx, "ann", start)
    bob = _book(ctx, "bob", start)
    cat = _book(ctx, "cat", start)
    j.identify(ctx, "dan", email="dan@example.com")
    j.track(ctx, "dan", SCHEDULED, start_time="tomorrow at ten")
    j.settle(ctx)
    j.advance(ctx, clock, timedelta(hours=3))
    j.track(ctx, "bob", CANCELED, booking_id="b1", start_time=start.isoformat())
    later = start + timedelta(days=1)
    j.track(ctx, "cat", SCHEDULED, **_booked(later, rescheduled=True))
    j.advance(ctx, clock, timedelta(days=3))
    j.advance(ctx, clock, timedelta(hours=1))  # no reminder is sent late or twice

    sent = sorted((m["contact_id"], m["created_at"], m["step_id"]) for m in j.sent(ctx))
    assert sent == sorted(
        [
            (ann, start - timedelta(hours=24), "remind-24h"),
            (ann, start - timedelta(hours=1), "remind-1h"),
            (cat, later - timedelta(hours=24), "remind-24h"),
            (cat, later - timedelta(hours=1), "remind-1h"),
        ]
    )
    runs = {(r["contact_id"], r["status"], r["exit_reason"]) for r in j.runs(ctx)}
    assert (bob, "exited", f"exit: {CANCELED}") in runs
    assert (cat, "exited", f"exit: {SCHEDULED}") in runs  # the first booking's run
    assert (cat, "completed", None) in runs  # the rescheduled one
    dan = str(by_user(ctx, "dan")["id"])
    (failing,) = [s for s in j.steps(ctx) if s["contact_id"] == dan]
    assert failing["status"] == "failed"  # retried on the engine's schedule, then given up
    assert "'tomorrow at ten' is not an ISO-8601 time" in failing["error"]


def test_wait_until_time_goes_on_at_once_when_the_moment_has_passed(
    ctx: AppContext, clock: VirtualClock
) -> None:
    """Without ``skip_if_past`` a past moment goes on to ``next`` at once (branch ``past``); a missing
    value fails the step naming the variable."""
    definition = {
        "name": "Relative",
        "trigger": {"type": "event", "event": "Go"},
        "steps": [
            {
                "id": "until",
                "type": "wait_until_time",
                "at": "{{ event.at }}",
                "offset": "+1h",
                "next": "tag",
            },
            {"id": "tag", "type": "add_tag", "tags": ["reached"]},
        ],
    }
    j.publish(ctx, definition)
    j.identify(ctx, "eve", email="eve@example.com")
    j.track(ctx, "eve", "Go", at=(clock.now() - timedelta(hours=2)).isoformat())
    j.identify(ctx, "fay", email="fay@example.com")
    j.track(ctx, "fay", "Go", other=1)
    j.settle(ctx)
    eve, fay = str(by_user(ctx, "eve")["id"]), str(by_user(ctx, "fay")["id"])
    by_step = {(s["contact_id"], s["step_id"]): s for s in j.steps(ctx)}
    assert (by_step[(eve, "until")]["branch"], by_step[(eve, "tag")]["status"]) == ("past", "done")
    assert by_step[(eve, "tag")]["finished_at"] == clock.now()  # at once
    assert by_step[(fay, "until")]["status"] == "pending"
    assert "event.at" in by_step[(fay, "until")]["error"]
