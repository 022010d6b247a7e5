"""Touchpoints from page views: UTM tags and external referrers."""

from __future__ import annotations

from typing import Any

import pytest

from leadflow.contacts.touchpoints import from_click, from_page, from_track

URL = "https://shop.example.com/pricing"


def test_utm_from_context_campaign() -> None:
    context = {
        "campaign": {
            "name": "spring",
            "source": "google",
            "medium": "cpc",
            "term": "crm",
            "content": "ad-1",
        }
    }
    assert from_page({"url": URL}, context) == {
        "source": "google",
        "medium": "cpc",
        "campaign": "spring",
        "term": "crm",
        "content": "ad-1",
        "referrer": None,
        "url": URL,
        "kind": "page",
        "journey": None,
    }


def test_utm_from_url_query() -> None:
    url = f"{URL}?utm_source=newsletter&utm_medium=email&utm_campaign=march&utm_content=hero&x=1"
    result = from_page({"url": url}, None)
    assert result is not None
    assert (result["source"], result["medium"], result["campaign"]) == ("newsletter", "email", "march")
    assert (result["term"], result["content"]) == (None, "hero")
    assert result["url"] == url


def test_context_campaign_wins_and_url_fills_the_gaps() -> None:
    context = {
        "campaign": {"source": "google", "name": "spring"},
        "page": {"url": f"{URL}?utm_source=other&utm_term=shoes"},
    }
    result = from_page(None, context)
    assert result is not None
    assert (result["source"], result["campaign"], result["term"]) == ("google", "spring", "shoes")
    assert result["url"] == f"{URL}?utm_source=other&utm_term=shoes"


def test_properties_url_and_referrer_win_over_context_page() -> None:
    context = {"page": {"url": "https://other.example/", "referrer": "https://bing.com/"}}
    result = from_page({"url": URL, "referrer": "https://www.google.com/search?q=crm"}, context)
    assert result is not None
    assert result["url"] == URL
    assert result["source"] == "www.google.com"


def test_external_referrer_is_a_referral() -> None:
    referrer = "https://News.Ycombinator.com/item?id=1"
    assert from_page({"url": URL, "referrer": referrer}, None) == {
        "source": "news.ycombinator.com",
        "medium": "referral",
        "campaign": None,
        "term": None,
        "content": None,
        "referrer": referrer,
        "url": URL,
        "kind": "page",
        "journey": None,
    }


def test_utm_wins_over_referrer() -> None:
    result = from_page({"url": f"{URL}?utm_source=ads", "referrer": "https://google.com/"}, None)
    assert result is not None
    assert (result["source"], result["medium"]) == ("ads", None)
    assert result["referrer"] == "https://google.com/"


@pytest.mark.parametrize(
    ("properties", "context"),
    [
        ({"url": URL}, None),
        ({"url": URL, "referrer": ""}, None),
        ({"url": URL, "referrer": "https://shop.example.com/"}, None),
        ({"url": URL, "referrer": "https://SHOP.example.com:443/cart"}, None),
        (None, {"page": {"url": URL, "referrer": "https://shop.example.com/blog"}}),
        ({"url": URL}, {"campaign": {"name": "  ", "source": ""}}),
        ({"url": f"{URL}?utm_source="}, None),
        (None, None),
        ({}, {"page": "not an object", "campaign": ["not", "an", "object"]}),
    ],
)
def test_direct_or_internal_visit_is_no_touchpoint(
    properties: dict[str, Any] | None, context: dict[str, Any] | None
) -> None:
    assert from_page(properties, context) is None


def test_nested_campaign_values_are_ignored() -> None:
    context = {"campaign": {"source": {"nested": 1}, "medium": ["a"]}}
    assert from_page({"url": URL}, context) is None


def test_long_values_are_truncated() -> None:
    result = from_page({"url": URL}, {"campaign": {"source": "s" * 300}})
    assert result is not None
    assert result["source"] == "s" * 255


def test_unparsable_urls_do_not_raise() -> None:
    result = from_page({"url": "http://[broken", "referrer": "http://[also-broken"}, None)
    assert result is None


def test_a_tracked_event_with_a_campaign_source_is_a_touch() -> None:
    context = {"campaign": {"source": " ads ", "medium": "cpc", "name": "fall"}}
    properties = {"utm": {"utm_source": "other", "utm_medium": "x", "utm_campaign": "y"}}
    result = from_track("Signed up", properties, context)
    assert result is not None
    assert (result["kind"], result["source"], result["medium"], result["campaign"]) == (
        "track",
        "ads",
        "cpc",
        "fall",
    )
    assert result.keys() == from_page({"url": f"{URL}?utm_source=a"}, None).keys()  # type: ignore[union-attr]


def test_a_tracked_event_without_a_campaign_source_is_none_unless_a_captured_lead() -> None:
    assert from_track("Signed up", {"source": "chat"}, {"campaign": {"name": "fall", "source": " "}}) is None
    assert from_track("Signed up", None, None) is None
    captured = from_track("lead.captured", {"source": "chat", "utm": {"utm_medium": "bot"}}, {"campaign": 3})
    assert captured is not None
    assert (captured["source"], captured["medium"], captured["campaign"]) == ("chat", "bot", None)
    bare = from_track("lead.captured", {"source": {"nested": 1}, "utm": "x"}, None)
    assert bare is not None
    assert (bare["source"], bare["medium"], bare["campaign"]) == (None, None, None)


def test_values_are_text_or_numbers_trimmed_and_cut() -> None:
    result = from_track(
        "lead.captured", {"source": 7, "utm": {"utm_medium": True, "utm_campaign": "c" * 300}}, None
    )
    assert result is not None
    assert (result["source"], result["medium"], result["campaign"]) == ("7", None, "c" * 255)


def test_an_email_click_is_a_touch_unless_a_machine_made_it() -> None:
    journey = from_click({"journey_id": "j1", "broadcast_id": "b1"})
    assert journey is not None
    assert (
        journey["kind"],
        journey["source"],
        journey["medium"],
        journey["campaign"],
        journey["journey"],
    ) == (
        "click",
        "email",
        "email",
        "j1",
        "j1",
    )
    broadcast = from_click({"broadcast_id": "b1", "machine_generated": False})
    assert broadcast is not None
    assert (broadcast["campaign"], broadcast["journey"]) == ("b1", None)
    assert from_click({"journey_id": "j1", "machine_generated": True}) is None
