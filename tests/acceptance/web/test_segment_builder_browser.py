"""The segment builder in a real browser (Debian's Chromium, driven by Playwright) against the app served
by uvicorn in this process: a marketer builds a segment by clicking — a trait condition, then a nested
"any" group with a number comparison and an event — sees the live count equal the segments service's
count for the rule the builder wrote, saves it, finds it in the list, and the saved rule is drawn
again as the same tree — with no console error."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page

from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.context import AppContext
from leadflow.segments import service as segments
from tests.support.console_browser import (
    DESKTOP,
    PHONE,
    Watch,
    add_user,
    assert_fits,
    chromium,
    live_console,
    sign_in,
)
from tests.support.events import send

PASSWORD = "a long marketer secret"
BUILT = {
    "all": [
        {"field": "traits.plan", "op": "eq", "value": "pro"},
        {"any": [{"field": "traits.age", "op": "gt", "value": 40}, {"event": "Order Completed"}]},
    ]
}


@pytest.fixture(scope="module")
def live(sqlite_url: str) -> Iterator[tuple[str, AppContext]]:
    with live_console(sqlite_url) as console:
        ctx = console.ctx
        add_user(ctx, "Mia Marketer", "mia@example.com", "marketer", PASSWORD)
        people = {
            "ann": ("pro", 34),
            "cat": ("pro", 52),
            "dan": ("free", 60),
            "fay": ("Pro", None),
            "gus": ("pro", 20),
        }
        send(
            ctx,
            *(
                {
                    "type": "identify",
                    "userId": u,
                    "traits": {"email": f"{u}@example.com", "plan": p, "age": a},
                }
                for u, (p, a) in people.items()
            ),
            {"type": "track", "userId": "gus", "event": "Order Completed"},
            {"type": "track", "userId": "dan", "event": "Order Completed"},
        )
        EventProcessor(ctx).drain()
        console.start()
        yield console.url, ctx


def _every_kind(other: str) -> dict[str, Any]:
    """A rule with a condition of every kind and operator class the builder draws."""
    return {
        "any": [
            {"field": "traits.plan", "op": "in", "value": ["pro", "team"]},
            {"field": "traits.age", "op": "between", "value": [20, 45]},
            {"field": "traits.vip", "op": "eq", "value": True},
            {"field": "lifecycle_stage", "op": "gte", "value": "lead"},
            {"field": "created_at", "op": "within_last", "value": "7d"},
            {"field": "tags", "op": "contains", "value": "vip"},
            {"field": "company.traits.tier", "op": "is_set"},
            {"not": {"field": "score", "op": "lt", "value": 10}},
            {"not": {"all": [{"field": "email", "op": "ends_with", "value": "@x.io"}, {"page": "*"}]}},
            {
                "event": "Course Previewed",
                "where": [{"field": "course", "op": "starts_with", "value": "ai"}],
                "count": {"gte": 2},
                "within": "30d",
                "last": {"op": "more_than_ago", "value": "1d"},
            },
            {"event": "Order Completed", "total": {"property": "revenue", "between": [100, 900]}},
            {
                "email": "clicked",
                "journey": "j1",
                "within": "14d",
                "count": {"between": [1, 3]},
                "include_machine_generated": True,
            },
            {"segment": other, "member": False},
        ]
    }


def _rule(page: Page) -> Any:
    return json.loads(page.locator("textarea#rules").input_value())


def test_build_a_segment_by_clicking_see_its_count_and_save_it(live: tuple[str, AppContext]) -> None:
    url, ctx = live
    expected = segments.preview(ctx, BUILT).count
    assert expected == 2  # cat (pro, over 40) and gus (pro, ordered); not ann, dan (free), fay (no age)
    watch = Watch()
    with chromium() as browser:
        page = watch.page(browser.new_page(viewport=DESKTOP))
        sign_in(page, "mia@example.com", PASSWORD, login_url=url + "/app/login", landed=None)
        page.get_by_role("link", name="Segments").click()
        page.get_by_role("link", name="New segment").click()
        page.get_by_label("Name").fill("Pro buyers or seniors")
        page.wait_for_selector("#segment-count[data-count]")  # the starting rule's count
        assert page.locator("#segment-count").get_attribute("data-count") == "5"

        first = page.locator("#builder .cond").first
        first.get_by_label("Field").select_option("traits.")
        first.get_by_label("Key").fill("plan")
        first.get_by_label("Operator").select_option("eq")
        page.locator("#builder .cond").first.get_by_label("Value").fill("pro")

        page.get_by_role("button", name="Add group").click()
        nested = page.locator("#builder fieldset.group fieldset.group")
        assert nested.get_by_label("Match").input_value() == "any"
        age = nested.locator(".cond").first
        age.get_by_label("Field").select_option("traits.")
        nested.locator(".cond").first.get_by_label("Key").fill("age")
        nested.locator(".cond").first.get_by_label("Operator").select_option("gt")
        nested.locator(".cond").first.get_by_label("Value").fill("40")
        nested.get_by_role("button", name="Add condition").click()
        nested.locator(".cond").nth(1).get_by_label("Condition").select_option("beh")
        with page.expect_response(
            lambda r: (
                r.url.endswith("/app/segments/preview") and "Order Completed" in (r.request.post_data or "")
            )
        ) as answered:
            nested.locator(".cond").nth(1).get_by_label("Event name").fill("Order Completed")
        assert answered.value.json()["count"] == expected
        page.wait_for_function(
            f"document.getElementById('segment-count').getAttribute('data-count') === '{expected}'"
        )
        assert page.locator("#segment-count").inner_text().startswith(f"{expected} contacts match")
        shown = page.locator("#segment-sample li").all_inner_texts()
        assert sorted(line.split(">")[0] for line in shown) == ["<cat@example.com", "<gus@example.com"]
        assert _rule(page) == BUILT

        page.get_by_role("button", name="Create segment").click()
        page.wait_for_selector("text=Segment created")
        saved = next(
            s for s in segments.listing(ctx, after=None, limit=10) if s.name == "Pro buyers or seniors"
        )
        assert saved.rules == BUILT
        again = page.locator("#builder fieldset.group fieldset.group")  # the tree, rebuilt from the JSON
        assert again.locator(".cond").nth(1).get_by_label("Event name").input_value() == "Order Completed"
        assert page.locator("#builder .cond").first.get_by_label("Key").input_value() == "plan"
        page.get_by_role("link", name="← Segments").click()
        assert page.locator(f'tr[data-segment="{saved.id}"]').inner_text().startswith("Pro buyers or seniors")

        every = _every_kind(saved.id)
        full = segments.create(ctx, segments.SegmentCreate(name="Every kind", rules=every), actor="test")
        page.goto(f"{url}/app/segments/{full.id}")
        page.wait_for_selector("#segment-count[data-count]")
        assert page.locator("#builder .cond").count() == 15  # 14 conditions and 1 property condition
        assert page.locator('[data-kind="mail"]').get_by_label("Journey id").input_value() == "j1"
        assert page.locator('[data-kind="member"]').get_by_label("Segment").input_value() == saved.id
        root = page.locator("#builder fieldset.group").first.get_by_label("Match").first
        root.select_option("all")
        root = page.locator("#builder fieldset.group").first.get_by_label("Match").first
        with page.expect_response(
            lambda r: (
                r.url.endswith("/app/segments/preview")
                and (r.request.post_data or "").startswith('{"rules":{"any"')
            )
        ) as answered:
            root.select_option("any")
        assert _rule(page) == every  # drawn and written back: nothing lost or changed
        assert answered.value.json()["count"] == segments.preview(ctx, every).count

        page.set_viewport_size(PHONE)  # a phone: the builder wraps
        page.reload()
        page.wait_for_selector("#segment-count[data-count]")
        assert_fits(page)
    assert watch.errors == []
