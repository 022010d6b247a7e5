"""Rule sets shipped with leadflow: ``leadflow scoring install-defaults --set course|b2b``."""

from __future__ import annotations

from typing import Any

from leadflow.scoring.bands import COURSE_BANDS, DEFAULT_BANDS, Bands


def _event(name: str, event: str, points: float, max_occurrences: int | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": name, "kind": "behavioral", "event": event, "points": points}
    if max_occurrences is not None:
        rule["max_occurrences"] = max_occurrences
    return rule


COURSE: list[dict[str, Any]] = [
    {
        "name": "Course page view",
        "kind": "behavioral",
        "page": "*",
        "points": 1,
        "where": [{"field": "url", "op": "contains", "value": "/course"}],
    },
    _event("Content download", "Content Downloaded", 5),
    _event("Email open", "leadflow.email_opened", 2),
    _event("Course preview", "Course Previewed", 10),
    _event("Consultation request", "Consultation Requested", 20),
]

B2B: list[dict[str, Any]] = [
    {"name": "Page view", "kind": "behavioral", "page": "*", "points": 1, "max_occurrences": 50},
    _event("Product view", "Product Viewed", 5, 20),
    _event("Add to cart", "Product Added", 10, 10),
    _event("Email open", "leadflow.email_opened", 2, 30),
    _event("Email click", "leadflow.email_clicked", 5, 20),
    _event("Form submit", "Form Submitted", 15, 5),
    {
        "name": "Senior job title",
        "kind": "demographic",
        "points": 20,
        "conditions": {
            "any": [
                {"field": "traits.title", "op": "contains", "value": title}
                for title in ("CEO", "CTO", "VP", "Director")
            ]
        },
    },
    {
        "name": "Company size over 100",
        "kind": "firmographic",
        "points": 15,
        "conditions": {"field": "company.size", "op": "gt", "value": 100},
    },
    {
        "name": "Target industry",
        "kind": "firmographic",
        "points": 10,
        "conditions": {
            "field": "company.industry",
            "op": "in",
            "value": ["Technology", "Finance", "Healthcare"],
        },
    },
    {
        "name": "Revenue over 10M",
        "kind": "firmographic",
        "points": 25,
        "conditions": {"field": "company.traits.revenue", "op": "gt", "value": 10_000_000},
    },
    {
        "name": "Target country",
        "kind": "demographic",
        "points": 10,
        "conditions": {
            "field": "traits.country",
            "op": "in",
            "value": ["US", "USA", "United States", "UK", "GB", "United Kingdom", "CA", "Canada"],
        },
    },
    {
        "name": "Unsubscribed",
        "kind": "demographic",
        "points": -10,
        "conditions": {"field": "subscription_status", "op": "eq", "value": "unsubscribed"},
    },
]

SETS: dict[str, tuple[list[dict[str, Any]], Bands]] = {
    "course": (COURSE, COURSE_BANDS),
    "b2b": (B2B, DEFAULT_BANDS),
}
