"""What each incoming sender's payload means, without a database: the pure half of
:mod:`leadflow.webhooks.sources`."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

import pytest

from leadflow.kernel.errors import BadRequest
from leadflow.webhooks.sources import KINDS, calendly, standard, stripe
from leadflow.webhooks.sources.common import Unprocessable

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STAMP = str(int(NOW.timestamp()))


def _session(currency: str, amount: int) -> dict[str, Any]:
    obj = {"id": "cs_1", "amount_total": amount, "currency": currency, "customer_email": "a@x.test"}
    return {"id": "evt_1", "type": "checkout.session.completed", "data": {"object": obj}}


@pytest.mark.parametrize(("currency", "amount", "total"), [("eur", 1999, 19.99), ("jpy", 1999, 1999.0)])
def test_stripe_totals_respect_zero_decimal_currencies(currency: str, amount: int, total: float) -> None:
    [(name, properties)] = stripe.translate(_session(currency, amount)).events
    assert name == "Order Completed"
    assert (properties["amount"], properties["total"]) == (amount, total)
    assert properties["currency"] == currency.upper()


def test_a_stripe_object_naming_only_its_customer_has_a_subject_and_no_email() -> None:
    event = {"id": "evt_2", "type": "invoice.paid", "data": {"object": {"id": "in_1", "customer": "cus_9"}}}
    found = stripe.translate(event)
    assert (found.email, found.subject) == (None, "cus_9")
    assert found.events[0][0] == "stripe.invoice.paid"


def test_stripe_payloads_without_an_object_are_unprocessable() -> None:
    with pytest.raises(Unprocessable):
        stripe.translate({"id": "evt_3", "type": "charge.refunded", "data": {}})


def test_calendly_signature_window_and_ids() -> None:
    body = b'{"event": "invitee.created"}'
    header = f"t={STAMP},v1={calendly.signature('key', STAMP, body)}"
    calendly.verify(body, {calendly.HEADER: header}, "key", 180, NOW)
    with pytest.raises(BadRequest) as wrong:
        calendly.verify(body + b" ", {calendly.HEADER: header}, "key", 180, NOW)
    assert wrong.value.code == "invalid_signature"
    old = str(int(NOW.timestamp()) - 181)
    stale = f"t={old},v1={hmac.new(b'key', old.encode() + b'.' + body, hashlib.sha256).hexdigest()}"
    with pytest.raises(BadRequest) as late:
        calendly.verify(body, {calendly.HEADER: stale}, "key", 180, NOW)
    assert late.value.code == "stale_webhook"
    envelope = {"event": "invitee.canceled", "created_at": "t", "payload": {"uri": "https://i/1"}}
    same = calendly.sender_id(envelope, {}, b"")
    assert same == calendly.sender_id(dict(envelope), {}, b"x")  # the body's spacing does not matter
    assert same != calendly.sender_id({**envelope, "event": "invitee.created"}, {}, b"")


def test_calendly_events_other_than_invitees_are_unprocessable() -> None:
    with pytest.raises(Unprocessable, match="routing_form"):
        calendly.translate({"event": "routing_form_submission.created", "payload": {}})


def test_standard_webhooks_spec_vector_verifies_at_its_time() -> None:
    body = b'{"test": 2432232314}'
    headers = {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }
    at = datetime.fromtimestamp(1614265330, tz=UTC)
    standard.verify(body, headers, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 300, at)
    with pytest.raises(BadRequest) as stale:
        standard.verify(body, headers, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 300, NOW)
    assert stale.value.code == "stale_webhook"


def test_standard_webhooks_email_may_sit_in_a_nested_customer() -> None:
    found = standard.translate({"type": "order.paid", "data": {"customer": {"email": "c@x.test"}}})
    assert found.email == "c@x.test"
    with pytest.raises(Unprocessable):
        standard.translate({"type": "order.paid", "data": {"total": 3}})


def test_every_kind_has_a_default_tolerance_of_a_few_minutes() -> None:
    assert {name: kind.default_tolerance for name, kind in KINDS.items()} == {
        "stripe": 300,
        "calendly": 180,
        "standard": 300,
    }
