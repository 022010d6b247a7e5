"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>``, the HMAC-SHA256 of ``"{t}.{raw body}"`` keyed with
the whole ``whsec_…`` secret, checked by the ``stripe`` library itself
(:meth:`stripe.WebhookSignature.verify_header`). The timestamp is checked here against the injected
clock, not by the library's ``time.time()``: one time source for the whole application (and the
virtual clock in tests). Default tolerance 300 s, Stripe's own.

What an event means (Stripe delivers duplicates and out of order; its ``event.id`` de-duplicates):

* ``checkout.session.completed`` → ``Order Completed`` (order id, amount in minor units, total in major
  units, currency, payment status), the customer's email and name;
* ``charge.refunded`` → ``Order Refunded`` (the payment intent as order id, amount refunded);
* any other type → ``stripe.<type>`` with the object's id and kind.

The person is the object's email (customer details, customer email, receipt or billing email); an
object naming only its customer (a subscription, an invoice without email) takes the email of the last
processed delivery of that customer. Stripe delivers out of order: a subscription's event before the
checkout that made the customer is kept ``failed`` and replayed once the checkout is in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import stripe as stripe_library

from leadflow.webhooks.sources.common import (
    Kind,
    Translation,
    Unprocessable,
    check_fresh,
    digest_id,
    first_email,
    parse_pairs,
    refuse,
    text,
    unix_time,
)

HEADER = "stripe-signature"
# Currencies Stripe counts in whole units (no cents): https://docs.stripe.com/currencies#zero-decimal
ZERO_DECIMAL = frozenset(
    [
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    ]
)


def verify(body: bytes, headers: Mapping[str, str], secret: str, tolerance: int, now: datetime) -> None:
    header = headers.get(HEADER)
    stamp, _ = parse_pairs(header, "Stripe")
    try:
        stripe_library.WebhookSignature.verify_header(body, header, secret, tolerance=None)
    except (stripe_library.SignatureVerificationError, UnicodeDecodeError):
        raise refuse("the Stripe signature does not match the payload") from None
    check_fresh(stamp, now, tolerance, "Stripe")


def sender_id(payload: Any, headers: Mapping[str, str], body: bytes) -> str:
    event_id = text(payload.get("id")) if isinstance(payload, dict) else None
    return event_id[:255] if event_id else digest_id("stripe", body.decode("utf-8", "replace"))


def event_type(payload: Any, headers: Mapping[str, str]) -> str | None:
    return text(payload.get("type")) if isinstance(payload, dict) else None


def _object(payload: Any) -> dict[str, Any]:
    data = payload.get("data") if isinstance(payload, dict) else None
    found = data.get("object") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        raise Unprocessable("a Stripe event carries its object in data.object")
    return found


def _sub(value: dict[str, Any], key: str) -> dict[str, Any]:
    found = value.get(key)
    return found if isinstance(found, dict) else {}


def _major(amount: Any, currency: str | None) -> float | None:
    if not isinstance(amount, int) or isinstance(amount, bool):
        return None
    return float(amount) if (currency or "").lower() in ZERO_DECIMAL else amount / 100


def _money(amount: Any, currency: Any) -> dict[str, Any]:
    code = text(currency)
    return {"amount": amount, "total": _major(amount, code), "currency": code.upper() if code else None}


def translate(payload: Any) -> Translation:
    kind = event_type(payload, {})
    if kind is None:
        raise Unprocessable("a Stripe event needs its type")
    obj = _object(payload)
    customer, billing = _sub(obj, "customer_details"), _sub(obj, "billing_details")
    email = first_email(
        customer.get("email"),
        obj.get("customer_email"),
        obj.get("receipt_email"),
        billing.get("email"),
        obj.get("email"),
    )
    name = text(customer.get("name")) or text(billing.get("name"))
    traits = {"name": name} if name else {}
    base = {"stripe_event_id": payload.get("id"), "email": email}
    if kind == "checkout.session.completed":
        properties = {
            **base,
            "order_id": obj.get("id"),
            **_money(obj.get("amount_total"), obj.get("currency")),
            "payment_status": obj.get("payment_status"),
            "client_reference_id": obj.get("client_reference_id"),
        }
        events = [("Order Completed", properties)]
    elif kind == "charge.refunded":
        properties = {
            **base,
            "order_id": obj.get("payment_intent") or obj.get("id"),
            "charge_id": obj.get("id"),
            **_money(obj.get("amount_refunded"), obj.get("currency")),
        }
        events = [("Order Refunded", properties)]
    else:
        events = [(f"stripe.{kind}", {**base, "object_id": obj.get("id"), "object": obj.get("object")})]
    return Translation(
        email=email,
        occurred_at=unix_time(payload.get("created")),
        events=events,
        traits=traits,
        subject=_customer(obj),
    )


def _customer(obj: dict[str, Any]) -> str | None:
    """The Stripe customer the object belongs to (or is)."""
    if obj.get("object") == "customer":
        return text(obj.get("id"))
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return text(customer)


KIND = Kind(
    name="stripe",
    default_tolerance=300,
    verify=verify,
    sender_id=sender_id,
    event_type=event_type,
    translate=translate,
)
