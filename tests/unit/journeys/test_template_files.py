"""The ready-made journeys ship as valid data: definitions, segments, Liquid emails and timings."""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from typing import Any

import pytest
import yaml

from leadflow.journeys import definitions
from leadflow.messaging.build import render
from leadflow.messaging.templates import LayoutFields, TemplateCreate, Topic
from leadflow.segments import durations, rules
from leadflow.segments.schemas import SegmentCreate

NAMES = (
    "welcome-series",
    "course-nurture",
    "abandoned-cart",
    "post-purchase-onboarding",
    "re-engagement",
    "birthday",
    "score-band-nurture",
    "mql-handoff",
    "assessment-career-changer",
    "consultation-reminders",
)


def _load(package: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((resources.files(package) / f"{name}.yaml").read_text("utf-8"))
    return data


FILES = {name: _load("leadflow.journeys.templates", name) for name in NAMES}
EMAILS = {email["key"]: email for data in FILES.values() for email in data["emails"]}
_LAYOUT = _load("leadflow.messaging.layouts", "default")
LAYOUT = render.Layout(key=_LAYOUT["key"], revision=1, html=_LAYOUT["html"], text=_LAYOUT["text"])
RENDERER = render.Renderer()


def _definition(data: dict[str, Any]) -> definitions.Definition:
    """The file's journey as the installer would create it: name and description from the top level."""
    return definitions.parse({"name": data["name"], "description": data["description"], **data["definition"]})


OWNER_TEMPLATES = {
    step.template
    for data in FILES.values()
    for step in _definition(data).steps
    if isinstance(step, definitions.NotifyOwner)
}


def _context(*, full: bool, owner: bool) -> dict[str, Any]:
    """Every documented render-time variable; ``full=False`` leaves every optional value out."""
    traits = {"course_interest": "AI for Managers", "birthday": "1990-04-02"} if full else {}
    product = {"product_id": "ai-101", "name": "AI Foundations", "price": 199, "quantity": 1}
    event = {
        "course": "ai-foundations",
        "course_name": "AI Foundations",
        "cart_id": "c1",
        "products": [product],
        "total": 199,
        "currency": "eur",
        "checkout_url": "https://academy.example/checkout/c1",
        "service": "Career consultation",
        "reschedule_url": "https://calendly.example/reschedulings/i1",
        "cancel_url": "https://calendly.example/cancellations/i1",
    }
    booked = {"start_time": "2026-03-05T09:00:00+00:00"}  # what consultation_scheduled always carries
    context: dict[str, Any] = {
        "contact": {
            "id": "01J0CONTACT",
            "email": "ada@example.com",
            "first_name": "Ada" if full else None,
            "last_name": "Lovelace" if full else None,
            "phone": "+447700900123" if full else None,
            "timezone": "Europe/London" if full else None,
            "lifecycle_stage": "mql",
            "score": 72,
            "traits": traits,
        },
        "company": {"name": "Analytical Engines", "domain": "engines.example", "traits": {}}
        if full
        else None,
        "event": {**event, **booked} if full else booked,
        "journey": {"key": "welcome-series", "name": "Welcome series"},
        "vars": {"discount_code": "BDAY15", "discount_percent": 15},
        "brand": {"name": "Academy", "url": "https://academy.example", "address": "1 Main St, Berlin"},
        "links": {
            "unsubscribe": "https://u.example/unsubscribe",
            "preferences": "https://u.example/preferences",
        },
    }
    if owner:
        context["owner"] = {"email": "sam@example.com", "name": "Sam"} if full else None
    return context


@pytest.mark.parametrize("name", NAMES)
def test_each_file_holds_a_valid_journey_whose_templates_are_defined(name: str) -> None:
    data = FILES[name]
    definition = _definition(data)
    assert data["key"] == name
    own = {email["key"] for email in data["emails"]}
    for step in definition.steps:
        if isinstance(step, definitions.SendEmail):
            assert step.template in own, f"{name}: {step.id} sends an email this file does not define"
        if isinstance(step, definitions.NotifyOwner):
            assert step.template in EMAILS, f"{name}: {step.id} uses an undefined owner template"
            assert EMAILS[step.template]["kind"] == "transactional"
    for segment in data.get("segments", []):
        rules.parse(segment["rules"])
        SegmentCreate(**{k: v for k, v in segment.items() if k != "key"})
    assert definition.segments() <= {s["key"] for s in data.get("segments", [])}


def test_only_these_journeys_ship_and_topics_agree() -> None:
    shipped = {
        p.name for p in resources.files("leadflow.journeys.templates").iterdir() if p.name.endswith(".yaml")
    }
    assert shipped == {f"{name}.yaml" for name in NAMES}
    topics: dict[str, dict[str, Any]] = {}
    for data in FILES.values():
        for topic in data.get("topics", []):
            assert topics.setdefault(topic["key"], topic) == topic, (
                f"topic {topic['key']} defined twice, differently"
            )
    LayoutFields(**_LAYOUT)
    for topic in topics.values():
        Topic(**topic)
    for key, email in EMAILS.items():
        TemplateCreate(**email)
        assert email["layout"] == _LAYOUT["key"]
        if email["kind"] == "marketing":
            assert email["topic"] in topics, key
        else:
            assert email["kind"] == "transactional"
            assert "topic" not in email, key


@pytest.mark.parametrize("key", sorted(EMAILS))
@pytest.mark.parametrize("full", [True, False], ids=["full", "sparse"])
def test_each_email_renders_with_only_the_documented_context(key: str, full: bool) -> None:
    """The production renderer: strict (undefined, or nil output without ``default``, is an error),
    HTML auto-escaped, wrapped in the default layout."""
    email = EMAILS[key]
    source = render.Source(key=key, revision=1, subject=email["subject"], html=email["html"], text=None)
    render.check(source)
    context = _context(full=full, owner=key in OWNER_TEMPLATES)
    body = RENDERER.render(source, context)
    wrapped = RENDERER.render(source, context, LAYOUT)
    assert body.subject
    assert "None" not in body.subject + body.html, f"{key} prints a missing value"
    if key in OWNER_TEMPLATES:
        assert "01J0CONTACT" in body.html
        assert "academy.example/contacts" not in body.html  # the brand's site has no contact records
    else:
        assert 'href="https://academy.example/' in body.html, f"{key} links to nothing on the site"
    assert body.html.strip()[:40] in wrapped.html
    for part in (wrapped.html, wrapped.text):
        for footer in ("1 Main St, Berlin", "https://u.example/unsubscribe", "https://u.example/preferences"):
            assert footer in part


def _sends(definition: definitions.Definition) -> list[tuple[str, timedelta]]:
    """The emails of a straight-line journey and when each goes out, counted from entry."""
    sends, elapsed, step_id = [], timedelta(), definition.start
    while step_id is not None:
        step = definition.step(step_id)
        if isinstance(step, definitions.Wait):
            elapsed += durations.parse(step.duration)
        elif isinstance(step, definitions.SendEmail):
            sends.append((step.template, elapsed))
        step_id = step.next
    return sends


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        ("welcome-series", "days", [0, 1, 3, 6]),
        ("abandoned-cart", "hours", [1, 24, 72]),
        ("post-purchase-onboarding", "days", [0, 1, 7, 14, 30, 60, 90]),
    ],
)
def test_drip_timings(name: str, unit: str, expected: list[int]) -> None:
    sends = _sends(_definition(FILES[name]))
    assert [at for _, at in sends] == [timedelta(**{unit: n}) for n in expected]
    assert len({template for template, _ in sends}) == len(expected)
