"""GA4 conversions through the connectors' outbox, against a local Measurement Protocol peer over a real
socket (on both databases): one hit per conversion (never coalesced, never repeated), its client id from
the site's context or the Segment anonymousId, GA4-safe names and params; a conversion GA4 would refuse
is dead-lettered, never sent; the peer validates bodies as ``/debug/mp/collect`` does, and leadflow's own
check agrees with it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from leadflow.connectors import ga4
from leadflow.connectors import service as connectors
from leadflow.connectors.models import connector_outbox
from leadflow.connectors.worker import ConnectorWorker
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import drain
from tests.peers.ga4 import API_SECRET, MEASUREMENT_ID, Ga4Peer, validate
from tests.support import journeys as j
from tests.support.events import send

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")  # the network guard admits the local peer


@pytest.fixture
def peer(clock: VirtualClock) -> Iterator[Ga4Peer]:
    with Ga4Peer(clock=clock.monotonic, now=clock.now) as running:
        yield running


def _connect(ctx: AppContext, peer: Ga4Peer) -> str:
    values = {
        "vendor": "ga4",
        "name": "GA4",
        "credentials": {"measurement_id": MEASUREMENT_ID, "api_secret": API_SECRET},
        "host": peer.url,
        "triggers": {
            "events": ["Plan Chosen", "Signed Up", "Session Start", "Order Completed", "Product Added"]
        },
    }
    return str(connectors.create(ctx, values, actor="test")["id"])


def _track(user: str, event: str, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": user, "event": event, **extra}


def test_one_hit_per_conversion(ctx: AppContext, peer: Ga4Peer, worker: ConnectorWorker) -> None:
    _connect(ctx, peer)
    order = {"revenue": 42.5, "value": 42.5, "currency": "EUR", "Plan Name": "pro", "tags": [1, 2]}
    send(
        ctx,
        {"type": "page", "anonymousId": "anon-1", "properties": {"url": "https://site.example/"}},
        _track("u1", "Plan Chosen", anonymousId="anon-1", properties=order),
        _track("u1", "Plan Chosen", anonymousId="anon-1", properties={"value": 10}),
        _track("u2", "Signed Up", context={"ga4": {"client_id": "1234.5678"}}),
        _track("u2", "Viewed Pricing"),  # not a conversion
        _track("u3", "Session Start"),  # GA4 reserves session_start: refused here, never sent
    )
    j.settle(ctx)
    drain(worker)
    hits = sorted(peer.hits, key=lambda h: (h.name, h.params.get("value", 0)))
    assert [(h.name, h.client_id, h.user_id) for h in hits] == [
        ("plan_chosen", "anon-1", "u1"),
        ("plan_chosen", "anon-1", "u1"),
        ("sign_up", "1234.5678", "u2"),  # Segment's Signed Up is GA4's recommended sign_up
    ]
    assert hits[1].params == {"revenue": 42.5, "value": 42.5, "currency": "EUR", "plan_name": "pro"}
    assert {(h.measurement_id, h.api_secret) for h in hits} == {(MEASUREMENT_ID, API_SECRET)}
    assert all(h.timestamp_micros for h in hits)
    assert peer.rejected == []
    with ctx.db.read() as conn:
        left = list(conn.execute(sa.select(connector_outbox)))
    assert [(r.kind, r.state) for r in left] == [("conversion", "dead")]
    assert "reserved" in left[0].last_error
    drain(worker)
    assert len(peer.hits) == 3  # exactly once: nothing is sent again


def test_segment_ecommerce_events_arrive_as_ga4_recommended_events_with_items(
    ctx: AppContext, peer: Ga4Peer, worker: ConnectorWorker
) -> None:
    """Segment's e-commerce spec → GA4's: Order Completed is a ``purchase`` with ``transaction_id``,
    ``value`` (its ``total``) and the products as ``items``; a product event is its own one item."""
    _connect(ctx, peer)
    products = [
        {"product_id": "course-1", "sku": "C1", "name": "Yoga basics", "price": 49, "quantity": 1},
        {"sku": "CONSULT", "name": "Consultation", "price": 90, "quantity": 2, "category": "sessions"},
        {"price": 1, "quantity": 1},  # neither id nor name: GA4 would refuse the item, so it is left out
    ]
    order = {
        "order_id": "ord-7",
        "total": 229,
        "revenue": 210,
        "tax": 19,
        "currency": "EUR",
        "products": products,
    }
    added = {"product_id": "course-1", "name": "Yoga basics", "price": 49.5, "quantity": 2, "currency": "EUR"}
    send(
        ctx,
        _track("u1", "Order Completed", anonymousId="anon-1", properties=order),
        _track("u1", "Product Added", anonymousId="anon-1", properties=added),
    )
    j.settle(ctx)
    drain(worker)
    assert peer.rejected == []
    hits = {h.name: h.params for h in peer.hits}
    assert hits["purchase"] == {
        "transaction_id": "ord-7",
        "total": 229,
        "revenue": 210,
        "tax": 19,
        "currency": "EUR",
        "value": 229,
        "items": [
            {"item_id": "course-1", "item_name": "Yoga basics", "price": 49, "quantity": 1},
            {"item_id": "CONSULT", "item_name": "Consultation", "item_category": "sessions", "price": 90,
             "quantity": 2},
        ],
    }  # fmt: skip
    assert hits["add_to_cart"] == {
        "currency": "EUR",
        "value": 99.0,
        "items": [
            {
                "item_id": "course-1",
                "item_name": "Yoga basics",
                "price": 49.5,
                "quantity": 2,
                "currency": "EUR",
            }
        ],
    }


def test_the_peer_validates_as_the_debug_endpoint_and_leadflow_agrees(peer: Ga4Peer) -> None:
    bodies = [
        {"events": [{"name": "purchase"}]},  # no client_id
        {"client_id": "c", "events": [{"name": "_bad"}]},
        {"client_id": "c", "events": [{"name": "9lives"}]},
        {"client_id": "c", "events": [{"name": "session_start"}]},
        {"client_id": "c", "events": [{"name": "ok", "params": {f"p{n}": n for n in range(26)}}]},
        {"client_id": "c", "events": [{"name": "ok", "params": {"long": "x" * 101}}]},
        {"client_id": "c", "events": [{"name": "ok"}] * 26},
        {"client_id": "c", "events": [{"name": "purchase", "params": {"items": [{"price": 3}]}}]},
        {"client_id": "c", "events": [{"name": "purchase", "params": {"items": [{"item_id": "i"}] * 201}}]},
        {"client_id": "c", "events": [{"name": "purchase", "params": {"items": "i1"}}]},
    ]
    codes = []
    for body in bodies:
        answer = httpx.post(f"{peer.url}/debug/mp/collect", json=body, params={"measurement_id": "G-X"})
        found = answer.json()["validationMessages"]
        assert found, body
        assert ga4.problems(body), body  # leadflow refuses what the validation server refuses
        codes.append(found[0]["validationCode"])
    assert codes == [
        "VALUE_REQUIRED",
        "NAME_RESERVED",
        "NAME_INVALID",
        "NAME_RESERVED",
        "EXCEEDED_MAX_ENTITIES",
        "VALUE_OUT_OF_BOUNDS",
        "EXCEEDED_MAX_ENTITIES",
        "VALUE_REQUIRED",
        "EXCEEDED_MAX_ENTITIES",
        "VALUE_INVALID",
    ]
    good = ga4.body_of("Order Completed", {"value": 3}, client_id="c1", user_id=None, at=peer.now())
    assert validate(httpx.Request("POST", "/", json=good).read()) == []
    assert ga4.problems(good) == []
    assert peer.hits == []  # the debug endpoint keeps nothing


def test_test_connection_asks_the_validation_server(ctx: AppContext, peer: Ga4Peer) -> None:
    connector_id = _connect(ctx, peer)
    found = connectors.test_connection(ctx, connector_id)
    assert found["ok"] is True, found
    assert [(c.method, c.path) for c in peer.calls] == [("POST", "/debug/mp/collect")]
    assert peer.hits == []
