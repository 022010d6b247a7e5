"""The engine on the virtual clock, on both databases."""

from __future__ import annotations

from datetime import timedelta

from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.support import journeys as j

WELCOME = {
    "name": "Welcome",
    "trigger": {"type": "event", "event": "Signed Up"},
    "steps": [
        {"id": "hello", "type": "send_email", "template": "hello", "next": "pause"},
        {"id": "pause", "type": "wait", "duration": "1d", "next": "again"},
        {"id": "again", "type": "send_email", "template": "again"},
    ],
}


def test_an_event_enrols_and_steps_run_on_the_clock(ctx: AppContext, clock: VirtualClock) -> None:
    j.template(ctx, "hello")
    j.template(ctx, "again")
    j.publish(ctx, WELCOME)
    j.identify(ctx, "u1", email="ann@example.com", first_name="Ann")
    j.track(ctx, "u1", "Signed Up")
    j.settle(ctx)
    assert [m["step_id"] for m in j.sent(ctx)] == ["hello"]
    j.advance(ctx, clock, timedelta(hours=23))
    assert len(j.sent(ctx)) == 1
    j.advance(ctx, clock, timedelta(hours=1))
    assert [m["step_id"] for m in j.sent(ctx)] == ["hello", "again"]
    (run,) = j.runs(ctx)
    assert run["status"] == "completed"
    assert [s["status"] for s in j.steps(ctx)] == ["done", "done", "done"]


def test_queued_email_is_delivered_to_a_real_smtp_server(ctx: AppContext, clock: VirtualClock) -> None:
    from email import message_from_bytes
    from email.policy import default

    from leadflow.messaging.delivery.deliverer import Deliverer
    from leadflow.messaging.delivery.transport.smtp import SmtpTransport
    from tests.peers.smtp import SmtpPeer

    j.template(
        ctx, "hello", html="<p>Hi {{ contact.first_name }}, <a href='https://example.com/c'>see</a></p>"
    )
    j.template(ctx, "again")
    j.publish(ctx, WELCOME)
    j.identify(ctx, "u1", email="ann@example.com", first_name="Ann")
    j.track(ctx, "u1", "Signed Up")
    j.settle(ctx)
    with SmtpPeer() as peer:
        deliverer = Deliverer(ctx, SmtpTransport.from_url(peer.url, pool_size=1))
        assert deliverer.deliver_due() == 1
        deliverer.close()
        (received,) = peer.wait_for(1)
    parsed = message_from_bytes(received.data, policy=default)
    assert parsed["To"] == "ann@example.com"
    assert parsed["Subject"] == "hello for Ann"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    (message, *_) = j.sent(ctx)
    assert message["status"] == "sent"
