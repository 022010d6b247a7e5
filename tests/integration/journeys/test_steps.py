"""Each step type on the virtual clock, on both databases."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.contacts import service as contacts
from leadflow.contacts import tags as contact_tags
from leadflow.contacts.schemas import ContactPatch
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.messaging.delivery import outbox
from leadflow.webhooks import service as webhooks
from tests.support import journeys as j
from tests.support.contacts import by_user
from tests.support.events import send


def _journey(*steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A journey entered on the event ``Go`` with these steps."""
    return {"name": "Steps", "trigger": {"type": "event", "event": "Go"}, "steps": list(steps), **extra}


def _tag(step_id: str, tag: str, **extra: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "add_tag", "tags": [tag], **extra}


def _enter(ctx: AppContext, user: str, **properties: Any) -> str:
    """The contact (with an email) does ``Go``; answers the contact id."""
    j.identify(ctx, user, email=f"{user}@example.com")
    j.track(ctx, user, "Go", **properties)
    j.settle(ctx)
    return str(by_user(ctx, user)["id"])


def _tags(ctx: AppContext, user: str) -> list[str]:
    with ctx.db.read() as conn:
        return contact_tags.of(conn, by_user(ctx, user)["id"])


def _step(ctx: AppContext, step_id: str, contact_id: str | None = None) -> dict[str, Any]:
    (found,) = [s for s in j.steps(ctx) if s["step_id"] == step_id and contact_id in (None, s["contact_id"])]
    return found


def _run_of(ctx: AppContext, contact_id: str) -> dict[str, Any]:
    (found,) = [r for r in j.runs(ctx) if r["contact_id"] == contact_id]
    return found


def _utc(day: int, hour: int) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=UTC)


def test_send_email_queues_the_template_with_event_and_variables(ctx: AppContext) -> None:
    j.template(ctx, "hello")
    journey_id = j.publish(
        ctx,
        _journey(
            {"id": "mail", "type": "send_email", "template": "hello", "variables": {"coupon": "SPRING"}},
            settings={"topic": "news"},
            variables={"course": "Python", "coupon": "NONE"},
        ),
        key="steps",
    )
    contact_id = _enter(ctx, "u1", total=42)
    (message,) = j.sent(ctx)
    with ctx.db.read() as conn:
        template_id = outbox.template_ids(conn, ["hello"])["hello"]
    assert (message["template_id"], message["kind"], message["topic"]) == (template_id, "marketing", "news")
    assert (message["status"], message["contact_id"], message["step_id"]) == ("queued", contact_id, "mail")
    assert message["context"] == {
        "event": {"total": 42},
        "vars": {"course": "Python", "coupon": "SPRING"},
        "journey": {"id": journey_id, "key": "steps", "name": "Steps"},
    }
    assert message["run_id"] == _run_of(ctx, contact_id)["id"]


def test_wait_holds_the_run_for_its_duration(ctx: AppContext, clock: VirtualClock) -> None:
    start = clock.now()
    j.publish(
        ctx, _journey({"id": "pause", "type": "wait", "duration": "2h", "next": "t"}, _tag("t", "done"))
    )
    contact_id = _enter(ctx, "u1")
    assert (_step(ctx, "pause")["status"], _step(ctx, "pause")["due_at"]) == (
        "pending",
        start + timedelta(hours=2),
    )
    j.advance(ctx, clock, timedelta(minutes=119))
    assert _tags(ctx, "u1") == []
    assert _run_of(ctx, contact_id)["step_id"] == "pause"
    j.advance(ctx, clock, timedelta(minutes=1))
    assert _tags(ctx, "u1") == ["done"]
    assert _run_of(ctx, contact_id)["status"] == "completed"


WAIT_FOR_PAYMENT = _journey(
    {
        "id": "paid",
        "type": "wait_until",
        "event": "Paid",
        "where": [{"field": "total", "op": "gt", "value": 100}],
        "timeout": "3d",
        "on_event": "yes",
        "on_timeout": "no",
    },
    _tag("yes", "paid"),
    _tag("no", "unpaid"),
)


def test_wait_until_resumes_on_a_matching_event_only(ctx: AppContext, clock: VirtualClock) -> None:
    j.publish(ctx, WAIT_FOR_PAYMENT)
    _enter(ctx, "u1")
    assert _step(ctx, "paid")["waiting_for"] == "Paid"
    j.track(ctx, "u1", "Paid", total=50)
    j.advance(ctx, clock, timedelta(hours=1))
    assert _step(ctx, "paid")["status"] == "pending"
    assert _tags(ctx, "u1") == []
    j.track(ctx, "u1", "Paid", total=150)
    j.settle(ctx)
    assert (_step(ctx, "paid")["status"], _step(ctx, "paid")["branch"]) == ("done", "event")
    assert _tags(ctx, "u1") == ["paid"]


def test_wait_until_times_out_to_its_own_branch(ctx: AppContext, clock: VirtualClock) -> None:
    j.publish(ctx, WAIT_FOR_PAYMENT)
    _enter(ctx, "u1")
    j.advance(ctx, clock, timedelta(days=3) - timedelta(minutes=1))
    assert _tags(ctx, "u1") == []
    j.advance(ctx, clock, timedelta(minutes=1))
    assert _step(ctx, "paid")["branch"] == "timeout"
    assert _tags(ctx, "u1") == ["unpaid"]


def test_wait_for_time_is_the_next_nine_in_the_contacts_zone(ctx: AppContext, clock: VirtualClock) -> None:
    j.publish(
        ctx,
        _journey({"id": "nine", "type": "wait_for_time", "time": "09:00", "next": "t"}, _tag("t", "at-nine")),
    )
    j.identify(ctx, "ny", timezone="America/New_York")
    j.identify(ctx, "utc")
    ny, utc = _enter(ctx, "ny"), _enter(ctx, "utc")
    # Monday 09:00 UTC is 04:00 in New York (EST): 09:00 there is 14:00 UTC; in UTC it is now.
    assert _step(ctx, "nine", ny)["due_at"] == _utc(2, 14)
    assert _tags(ctx, "utc") == ["at-nine"]
    j.advance(ctx, clock, timedelta(hours=4, minutes=59), step=timedelta(minutes=30))
    assert _tags(ctx, "ny") == []
    j.advance(ctx, clock, timedelta(minutes=1))
    assert _tags(ctx, "ny") == ["at-nine"]
    assert _run_of(ctx, ny)["status"] == _run_of(ctx, utc)["status"] == "completed"


def test_wait_for_time_skips_days_not_allowed(ctx: AppContext, clock: VirtualClock) -> None:
    weekdays = ["mon", "tue", "wed", "thu", "fri"]
    step = {"id": "nine", "type": "wait_for_time", "time": "09:00", "weekdays": weekdays, "next": "t"}
    j.publish(ctx, _journey(step, _tag("t", "at-nine")))
    j.identify(ctx, "ny", timezone="America/New_York")
    clock.advance(timedelta(days=4, hours=6))  # Friday 15:00 UTC, 10:00 in New York: today's 09:00 is gone
    ny = _enter(ctx, "ny")
    # Monday 9 March, 09:00 EDT (daylight saving time began on Sunday 8 March): 13:00 UTC.
    assert _step(ctx, "nine", ny)["due_at"] == _utc(9, 13)


def test_branch_evaluates_the_rule_when_reached(ctx: AppContext, clock: VirtualClock) -> None:
    j.publish(
        ctx,
        _journey(
            {"id": "pause", "type": "wait", "duration": "1h", "next": "plan"},
            {
                "id": "plan",
                "type": "branch",
                "if": {"field": "traits.plan", "op": "eq", "value": "pro"},
                "then": "pro",
                "else": "free",
            },
            _tag("pro", "pro-path"),
            _tag("free", "free-path"),
        ),
    )
    j.identify(ctx, "u1", plan="free")
    j.identify(ctx, "u2", plan="pro")
    u1, u2 = _enter(ctx, "u1"), _enter(ctx, "u2")
    j.identify(ctx, "u1", plan="pro")  # during the wait
    j.identify(ctx, "u2", plan="free")
    j.advance(ctx, clock, timedelta(hours=1))
    assert (_tags(ctx, "u1"), _step(ctx, "plan", u1)["branch"]) == (["pro-path"], "then")
    assert (_tags(ctx, "u2"), _step(ctx, "plan", u2)["branch"]) == (["free-path"], "else")


SPLIT = _journey(
    {
        "id": "ab",
        "type": "split",
        "paths": [{"name": "a", "weight": 70, "next": "ta"}, {"name": "b", "weight": 30, "next": "tb"}],
        "holdout": 10,
    },
    _tag("ta", "a"),
    _tag("tb", "b"),
    entry={"reentry": "always"},
)


def test_split_by_weight_with_a_holdout(ctx: AppContext) -> None:
    j.publish(ctx, SPLIT)
    send(ctx, *({"type": "track", "userId": f"u{i}", "event": "Go"} for i in range(200)))
    j.settle(ctx)
    found = j.runs(ctx)
    variants = Counter(r["variant"] for r in found)
    assert sum(variants.values()) == 200
    assert set(variants) == {"a", "b", "holdout"}
    # Expected 20 / 126 / 54 (contact ids are random): every bound is four standard deviations or more away.
    assert 3 <= variants["holdout"] <= 45
    assert variants["a"] > variants["b"] >= 20
    for run in found:
        if run["variant"] == "holdout":
            assert (run["status"], run["exit_reason"]) == ("exited", "holdout")
        else:
            assert run["status"] == "completed"
    ids = [by_user(ctx, f"u{i}")["id"] for i in range(20)]
    with ctx.db.read() as conn:
        tagged = {contact_id: contact_tags.of(conn, contact_id) for contact_id in ids}
    for run in found:
        if run["contact_id"] in tagged:
            assert tagged[run["contact_id"]] == ([] if run["variant"] == "holdout" else [run["variant"]])


def test_split_sends_a_contact_down_the_same_path_every_time(ctx: AppContext) -> None:
    j.publish(ctx, SPLIT)
    for _ in range(3):
        send(ctx, *({"type": "track", "userId": f"u{i}", "event": "Go"} for i in range(30)))
        j.settle(ctx)
    by_contact: dict[str, list[str]] = {}
    for run in j.runs(ctx):
        by_contact.setdefault(run["contact_id"], []).append(run["variant"])
    assert len(by_contact) == 30
    assert all(len(v) == 3 and len(set(v)) == 1 for v in by_contact.values())
    assert len({v[0] for v in by_contact.values()}) >= 2  # not everyone on one path


def test_add_and_remove_tags(ctx: AppContext) -> None:
    j.publish(
        ctx,
        _journey(
            {"id": "add", "type": "add_tag", "tags": ["VIP", "course-buyer"], "next": "remove"},
            {"id": "remove", "type": "remove_tag", "tags": ["Trial"]},
        ),
    )
    j.identify(ctx, "u1", email="u1@example.com")
    j.settle(ctx)
    contact_tags.update(ctx, by_user(ctx, "u1")["id"], ["trial", "newsletter"], [], actor="test")
    j.track(ctx, "u1", "Go")
    j.settle(ctx)
    assert _tags(ctx, "u1") == ["course-buyer", "newsletter", "vip"]


def test_update_field_sets_a_column_and_a_trait(ctx: AppContext) -> None:
    j.publish(
        ctx,
        _journey(
            {"id": "name", "type": "update_field", "field": "first_name", "value": "Annie", "next": "course"},
            {"id": "course", "type": "update_field", "field": "traits.course", "value": "python"},
        ),
    )
    j.identify(ctx, "u1", first_name="Ann", plan="pro")
    _enter(ctx, "u1")
    contact = by_user(ctx, "u1")
    assert contact["first_name"] == "Annie"
    assert (contact["traits"]["course"], contact["traits"]["plan"]) == ("python", "pro")


def _stage_changes(ctx: AppContext, contact_id: str) -> list[tuple[str, str]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.select(events.c.properties)
            .where(events.c.contact_id == contact_id, events.c.event == "leadflow.stage_changed")
            .order_by(events.c.id)
        )
        return [(row[0]["from"], row[0]["to"]) for row in rows]


def test_set_stage_moves_forward_only_unless_forced(ctx: AppContext) -> None:
    j.publish(
        ctx,
        _journey(
            {"id": "mql", "type": "set_stage", "stage": "mql", "next": "back"},
            {"id": "back", "type": "set_stage", "stage": "lead"},
        ),
    )
    contact_id = _enter(ctx, "u1")
    assert by_user(ctx, "u1")["lifecycle_stage"] == "mql"
    assert _stage_changes(ctx, contact_id) == [("visitor", "lead"), ("lead", "mql")]
    assert _run_of(ctx, contact_id)["status"] == "completed"


def test_set_stage_with_force_moves_back(ctx: AppContext) -> None:
    j.publish(ctx, _journey({"id": "back", "type": "set_stage", "stage": "mql", "force": True}))
    j.identify(ctx, "u1", email="u1@example.com")
    j.settle(ctx)
    contact_id = str(by_user(ctx, "u1")["id"])
    contacts.patch(ctx, contact_id, ContactPatch(lifecycle_stage="customer"), actor="test")
    _enter(ctx, "u1")
    assert by_user(ctx, "u1")["lifecycle_stage"] == "mql"
    assert _stage_changes(ctx, contact_id) == [("visitor", "lead"), ("lead", "customer"), ("customer", "mql")]


def test_webhook_goes_through_the_outbox_with_the_contact(ctx: AppContext) -> None:
    url = "https://hooks.example.com/leads"
    step = {"id": "hook", "type": "webhook", "url": url, "event": "lead.hot", "data": {"source": "journey"}}
    journey_id = j.publish(ctx, _journey(step))
    contact_id = _enter(ctx, "u1")
    (delivery,) = webhooks.listing(ctx, status=None, after=None, limit=10)
    assert (delivery["url"], delivery["event"], delivery["status"]) == (url, "lead.hot", "queued")
    payload = delivery["payload"]
    assert (payload["contact"]["id"], payload["contact"]["email"]) == (contact_id, "u1@example.com")
    assert (payload["data"], payload["step"], payload["journey"]["id"]) == (
        {"source": "journey"},
        "hook",
        journey_id,
    )
    assert (delivery["contact_id"], delivery["run_id"]) == (contact_id, _run_of(ctx, contact_id)["id"])


def test_notify_owner_emails_the_owner_or_the_fallback(ctx: AppContext) -> None:
    j.template(ctx, "owner-notification")
    step = {"id": "tell", "type": "notify_owner", "fallback": "sales@example.com"}
    j.publish(ctx, _journey(step))
    j.identify(ctx, "owned", email="owned@example.com")
    j.settle(ctx)
    contacts.patch(ctx, by_user(ctx, "owned")["id"], ContactPatch(owner_id="rep@example.com"), actor="test")
    owned, orphan = _enter(ctx, "owned"), _enter(ctx, "orphan")
    by_contact = {m["contact_id"]: m for m in j.sent(ctx)}
    assert (by_contact[owned]["kind"], by_contact[owned]["to_address"]) == ("internal", "rep@example.com")
    assert by_contact[orphan]["to_address"] == "sales@example.com"
    assert by_contact[owned]["status"] == by_contact[orphan]["status"] == "queued"


@pytest.mark.parametrize(
    ("values", "inbox"),
    [
        ({"sales_email": "Sales <sales@school.example>"}, "sales@school.example"),
        ({"email_reply_to": "office@school.example"}, "office@school.example"),
        ({"email_from": "Course School <hello@school.example>"}, "hello@school.example"),
    ],
    ids=["sales-email", "reply-to", "sender"],
)
def test_notify_owner_without_owner_or_fallback_goes_to_the_sales_inbox(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, values: dict[str, str], inbox: str
) -> None:
    for name, value in values.items():
        monkeypatch.setattr(ctx.settings, name, value)
    j.template(ctx, "owner-notification")
    j.publish(ctx, _journey({"id": "tell", "type": "notify_owner"}))
    _enter(ctx, "orphan")
    (message,) = j.sent(ctx)
    assert (message["kind"], message["status"], message["to_address"]) == ("internal", "queued", inbox)


def test_notify_owner_without_owner_fallback_or_sender_address_is_recorded_failed(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ctx.settings, "email_from", "leadflow")
    j.template(ctx, "owner-notification")
    j.publish(ctx, _journey({"id": "tell", "type": "notify_owner", "next": "t"}, _tag("t", "after")))
    contact_id = _enter(ctx, "u1")
    (message,) = j.sent(ctx)
    assert (message["kind"], message["status"], message["to_address"]) == ("internal", "failed", None)
    assert "no owner" in message["error"]
    assert _step(ctx, "tell")["branch"] == "no_owner"
    assert _tags(ctx, "u1") == ["after"]
    assert _run_of(ctx, contact_id)["status"] == "completed"


def _goal_journey(within: str | None) -> dict[str, Any]:
    goal = {"id": "bought", "type": "goal", "event": "Purchased", "next": "t"}
    if within:
        goal["within"] = within
    return _journey(
        {"id": "pause", "type": "wait", "duration": "1h", "next": "bought"}, goal, _tag("t", "not-yet")
    )


def test_goal_step_converts_a_contact_who_already_converted(ctx: AppContext, clock: VirtualClock) -> None:
    j.publish(ctx, _goal_journey(None))
    contact_id = _enter(ctx, "u1")
    j.track(ctx, "u1", "Purchased")
    j.advance(ctx, clock, timedelta(hours=1))
    run = _run_of(ctx, contact_id)
    assert (run["status"], run["exit_reason"], run["converted_at"]) == ("converted", "goal", clock.now())
    assert _tags(ctx, "u1") == []


def test_goal_step_waits_within_and_converts_on_the_event(ctx: AppContext, clock: VirtualClock) -> None:
    j.publish(ctx, _goal_journey("2d"))
    contact_id = _enter(ctx, "u1")
    j.advance(ctx, clock, timedelta(hours=5))
    assert (_step(ctx, "bought")["status"], _step(ctx, "bought")["waiting_for"]) == ("pending", "Purchased")
    j.track(ctx, "u1", "Purchased")
    j.settle(ctx)
    run = _run_of(ctx, contact_id)
    assert (run["status"], run["converted_at"]) == ("converted", clock.now())
    assert _step(ctx, "bought")["branch"] == "converted"


def test_goal_step_times_out_to_next(ctx: AppContext, clock: VirtualClock) -> None:
    j.publish(ctx, _goal_journey("2d"))
    j.identify(ctx, "u1", email="u1@example.com")
    j.track(ctx, "u1", "Purchased")  # before entering: does not count
    j.settle(ctx)
    clock.advance(timedelta(minutes=1))
    contact_id = _enter(ctx, "u1")
    j.advance(ctx, clock, timedelta(days=2))
    assert _tags(ctx, "u1") == []
    j.advance(ctx, clock, timedelta(hours=1))
    assert (_step(ctx, "bought")["branch"], _tags(ctx, "u1")) == ("not_converted", ["not-yet"])
    run = _run_of(ctx, contact_id)
    assert (run["status"], run["converted_at"]) == ("completed", None)


def test_exit_step_ends_the_run(ctx: AppContext) -> None:
    j.publish(
        ctx,
        _journey(
            {
                "id": "plan",
                "type": "branch",
                "if": {"field": "traits.plan", "op": "eq", "value": "pro"},
                "then": "out",
                "else": "t",
            },
            {"id": "out", "type": "exit"},
            _tag("t", "free"),
        ),
    )
    j.identify(ctx, "u1", plan="pro")
    contact_id = _enter(ctx, "u1")
    run = _run_of(ctx, contact_id)
    assert (run["status"], run["exit_reason"], run["step_id"]) == ("completed", "exit step", "out")
    assert _tags(ctx, "u1") == []
