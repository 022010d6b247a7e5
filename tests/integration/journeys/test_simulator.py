"""The simulator runs the real engine on a virtual clock with no side effects."""

from __future__ import annotations

from leadflow.journeys import simulator
from leadflow.journeys.simulator import SimulationRequest
from leadflow.kernel.context import AppContext
from tests.support import journeys as j

CART = {
    "name": "Cart",
    "trigger": {"type": "event", "event": "Checkout Started"},
    "settings": {"exit": [{"event": "Order Completed"}]},
    "steps": [
        {"id": "w1", "type": "wait", "duration": "1h", "next": "m1"},
        {"id": "m1", "type": "send_email", "template": "cart", "next": "w2"},
        {"id": "w2", "type": "wait", "duration": "23h", "next": "m2"},
        {"id": "m2", "type": "send_email", "template": "cart"},
    ],
}


def test_a_script_runs_to_its_end_and_leaves_nothing_behind(ctx: AppContext) -> None:
    j.template(ctx, "cart", subject="Your cart, {{ contact.first_name }}", html="<p>{{ event.total }}</p>")
    request = SimulationRequest.model_validate(
        {
            "contact": {"email": "ann@example.com", "first_name": "Ann"},
            "events": [{"after": "0m", "event": "Checkout Started", "properties": {"total": 42}}],
            "horizon": "3d",
        }
    )
    result = simulator.simulate(ctx, CART, request)
    assert [(m.step, m.type) for m in result.timeline] == [
        ("w1", "wait"),
        ("m1", "send_email"),
        ("w2", "wait"),
        ("m2", "send_email"),
    ]
    email = result.timeline[1].email
    assert email is not None
    assert email.subject == "Your cart, Ann"
    assert "42" in email.html
    assert (result.timeline[1].at - result.started_at).total_seconds() == 3600
    assert j.sent(ctx) == []
    assert j.runs(ctx) == []


def test_an_exit_event_ends_the_simulated_run(ctx: AppContext) -> None:
    j.template(ctx, "cart")
    request = SimulationRequest.model_validate(
        {
            "events": [
                {"after": "0m", "event": "Checkout Started"},
                {"after": "2h", "event": "Order Completed"},
            ],
            "horizon": "3d",
        }
    )
    result = simulator.simulate(ctx, CART, request)
    assert [m.step for m in result.timeline if m.status == "done"] == ["w1", "m1"]
    assert result.run_status == "exited"
