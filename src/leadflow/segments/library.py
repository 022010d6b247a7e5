"""Ready-made segments: ``leadflow segments install-library``.

Events follow Segment's e-commerce spec (``Product Added``, ``Order Completed`` with ``revenue``);
plans are the ``plan`` trait.
"""

from __future__ import annotations

from typing import Any

from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict
from leadflow.segments import service
from leadflow.segments.schemas import Segment, SegmentCreate

CART_EVENTS = ("Product Added", "Product Removed", "Cart Viewed", "Checkout Started")

STANDARD: dict[str, dict[str, Any]] = {
    "library.active_users": {
        "name": "Active users (30 days)",
        "description": "seen in the last 30 days",
        "rules": {"field": "last_seen_at", "op": "within_last", "value": "30d"},
    },
    "library.churned": {
        "name": "Churned (no activity 90 days)",
        "description": "last seen more than 90 days ago",
        "rules": {"field": "last_seen_at", "op": "more_than_ago", "value": "90d"},
    },
    "library.high_value_customers": {
        "name": "High-value customers (spent > 500)",
        "description": "orders adding up to more than 500",
        "rules": {"event": "Order Completed", "total": {"property": "revenue", "gt": 500}},
    },
    "library.new_users": {
        "name": "New users (7 days)",
        "description": "created in the last 7 days",
        "rules": {"field": "created_at", "op": "within_last", "value": "7d"},
    },
    "library.trial_users": {
        "name": "Trial users",
        "description": "on the trial plan",
        "rules": {"field": "traits.plan", "op": "eq", "value": "trial"},
    },
    "library.paid_subscribers": {
        "name": "Paid subscribers",
        "description": "on any plan but free and trial",
        "rules": {
            "all": [
                {"field": "traits.plan", "op": "is_set"},
                {"field": "traits.plan", "op": "not_in", "value": ["free", "trial"]},
            ]
        },
    },
    "library.cart_abandoners": {
        "name": "Cart abandoners",
        "description": "cart changed in the last 24 hours, no order since",
        "rules": {
            "all": [
                {"any": [{"event": name, "within": "24h"} for name in CART_EVENTS]},
                {"event": "Order Completed", "within": "24h", "count": {"eq": 0}},
            ]
        },
    },
}


def install(ctx: AppContext, *, actor: str) -> list[Segment]:
    """Create the standard segments that do not exist yet (by their key); returns those created."""
    created = []
    for key, spec in STANDARD.items():
        try:
            created.append(service.create(ctx, SegmentCreate(**spec), actor=actor, key=key))
        except Conflict:
            continue
    return created
