"""A text part derived once from Liquid HTML is exactly ``html_to_text`` of the rendered HTML.

The renderer works the text out once per template (and layout) revision and fills in the values per
message; whenever a value could make the conversion of the rendered HTML come out differently it
converts the rendered HTML instead. These tests compare with converting the rendered HTML every time.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadflow.messaging.build import htmltext
from leadflow.messaging.build.render import _TEXT_ENV, Layout, Renderer, Source, html_to_text

_DEFAULT = yaml.safe_load((resources.files("leadflow.messaging.layouts") / "default.yaml").read_text("utf-8"))
DEFAULT_LAYOUT = Layout(key="default", revision=1, html=_DEFAULT["html"], text=_DEFAULT["text"])
HTML_ONLY_LAYOUT = Layout(key="default-html", revision=1, html=_DEFAULT["html"], text=None)


def _shipped() -> list[dict[str, Any]]:
    folder = resources.files("leadflow.journeys.templates")
    emails: list[dict[str, Any]] = []
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith(".yaml"):
            emails.extend(yaml.safe_load(item.read_text("utf-8"))["emails"])
    return emails


SHIPPED = _shipped()


def _context(*, full: bool) -> dict[str, Any]:
    """Every documented render-time variable; ``full=False`` leaves the optional ones out."""
    product = {"product_id": "ai-101", "name": "AI Foundations", "price": 199, "quantity": 1}
    return {
        "contact": {
            "id": "01J0CONTACT",
            "email": "ada@example.com",
            "first_name": "Ada" if full else None,
            "last_name": "Lovelace" if full else None,
            "phone": "+447700900123" if full else None,
            "lifecycle_stage": "mql",
            "score": 72,
            "traits": {"course_interest": "AI & Data <101>"} if full else {},
        },
        "company": {"name": "Engines & Co", "domain": "engines.example", "traits": {}} if full else None,
        # a booking's start (consultation-reminders: its trigger always carries it) is there even when sparse
        "event": (
            {"course_name": "AI Foundations", "products": [product], "total": 199, "currency": "eur"}
            if full
            else {}
        )
        | {"start_time": "2026-03-10T10:00:00+01:00", "end_time": "2026-03-10T10:30:00+01:00"},
        "journey": {"key": "welcome-series", "name": "Welcome series"},
        "vars": {"discount_code": "BDAY15", "discount_percent": 15},
        "owner": {"email": "sam@example.com", "name": "Sam"},
        "brand": {"name": "Academy", "url": "https://academy.example", "address": "1 Main St, Berlin"},
        "links": {"unsubscribe": "https://u.example/u/tok", "preferences": "https://u.example/p/tok"},
        "message": {"id": "01J0MESSAGE"},
    }


def _source(email: dict[str, Any]) -> Source:
    return Source(key=email["key"], revision=1, subject=email["subject"], html=email["html"], text=None)


@pytest.mark.parametrize("full", [True, False], ids=["full", "sparse"])
@pytest.mark.parametrize("email", SHIPPED, ids=[email["key"] for email in SHIPPED])
def test_shipped_templates_text_equals_converting_the_rendered_html(
    email: dict[str, Any], full: bool
) -> None:
    renderer, source, data = Renderer(), _source(email), _context(full=full)
    body = renderer.render(source, data).html
    assert renderer.render(source, data).text == html_to_text(body)
    expected = _TEXT_ENV.from_string(_DEFAULT["text"]).render({**data, "content": html_to_text(body)})
    assert renderer.render(source, data, DEFAULT_LAYOUT).text == expected
    framed = renderer.render(source, data, HTML_ONLY_LAYOUT)
    assert framed.text == html_to_text(framed.html)
    derived = renderer._get("template", source).derived
    if "{%" in email["html"]:
        assert derived is None  # tags: converted from the rendered HTML, as before
    else:
        assert derived is not None
        found = derived.render(data)
        assert found is not None or not full
        assert found in (None, html_to_text(body))


def test_bench_like_template_derives_its_text_and_links() -> None:
    html = (
        "<h1>Hi {{ contact.first_name }},</h1>\n<ul>\n"
        '  <li><a href="{{ brand.url }}/courses/python?c={{ contact.id }}">Python for analysts</a></li>\n'
        '  <li><a href="{{ brand.url }}/courses/sql">SQL from zero</a></li>\n</ul>\n'
        '<p>Your plan: {{ contact.traits.plan | default: "free" }}.</p>'
    )
    renderer = Renderer()
    source = Source(key="bench", revision=1, subject="x", html=html, text=None)
    data = {
        "contact": {"first_name": "Ann & Bo", "id": "c1", "traits": {}},
        "brand": {"url": "https://s.example"},
    }
    out = renderer.render(source, data)
    assert out.text == (
        "Hi Ann & Bo,\n\n- Python for analysts (https://s.example/courses/python?c=c1)\n"
        "- SQL from zero (https://s.example/courses/sql)\n\nYour plan: free."
    )
    derived = renderer._get("template", source).derived
    assert derived is not None
    assert derived.render(data) == out.text


# ----------------------------------------------------------------------------------- random values

HOLED = [
    '<p>Hi {{ a }},</p><p>{{ b }}</p><p><a href="{{ u }}">Open</a> or <a href="mailto:{{ e }}">{{ e }}</a>',
    "<ul><li>{{ a }}</li><li>{{ b }} {{ c }}</li></ul><div>{{ a }}<br>{{ b }}<br><br><br>{{ c }}</div>",
    '<table><tr><td>{{ a }}</td><td> {{ b }} </td></tr></table><a href="{{ u }}">{{ a }}</a>',
    '<b>{{ a }}</b>{{ b }}<i>{{ c }}</i><a href="{{ u }}"><img src="x.png" alt="{{ a }}"></a>',
    '<div style="display:none">{{ a }}</div><p title="{{ b }}">x {{ c }} y</p><a href="#{{ a }}">top</a>',
    "<html><head><title>{{ a }}</title></head><body>{{ b | default: 'none' }} &middot; {{ c }}</body></html>",
]
UNSAFE = [
    "<pre>{{ a }}</pre>",
    '<p style="color: {{ a }}">x</p>',
    "<a href={{ u }}>x</a>",
    "<{{ a }}>x",
    "&amp{{ a }}",
    "<!-- {{ a }}> -->",
    "{{ a | safe }}",
    "{{ a | upcase }}",
    "{{ a | default: '<b>' }}",
    "{% if a %}{{ a }}{% endif %}",
]
SAMPLES = [
    "",
    " ",
    "  ",
    "\n",
    "\xa0",
    "a",
    "Ann",
    "x y",
    "&",
    "<b>",
    "'\"",
    "#top",
    "javascript:x",
    "mailto:",
]
SAMPLES += ["Open", "https://x.example/?a=1&b=2", "\x00", "é", "&amp;", "&lt;", "{{ q }}"]
pieces = st.sampled_from(SAMPLES)
words = st.lists(pieces, max_size=4).map("".join)
holed_data = st.fixed_dictionaries(
    {
        "a": st.one_of(words, st.integers(-5, 5), st.booleans()),
        "b": words,
        "c": st.one_of(words, st.floats(-10, 10, width=16)),
        "u": words,
        "e": words,
    }
)


@pytest.mark.parametrize("html", HOLED)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=holed_data)
def test_derived_text_equals_converting_the_rendered_html(html: str, data: dict[str, Any]) -> None:
    renderer = Renderer()
    source = Source(key="t", revision=1, subject="s", html=html, text=None)
    derived = renderer._get("template", source).derived
    assert derived is not None
    out = renderer.render(source, data)
    found = derived.render(data)
    if found is not None:
        assert found == html_to_text(out.html)
    assert out.text == html_to_text(out.html)


@pytest.mark.parametrize("html", UNSAFE)
def test_values_that_could_change_the_markup_are_never_derived(html: str) -> None:
    source = Source(key="t", revision=1, subject="s", html=html, text=None)
    assert Renderer()._get("template", source).derived is None


def test_derive_refuses_sources_using_the_hole_characters() -> None:
    assert htmltext.derive(["<p>\ue001", 0, "</p>"]) is None
    shape = htmltext.derive(["<p>", 0, "</p>"])
    assert shape is not None
    assert shape.text(["hi"]) == "hi"
    assert shape.text(["  "]) is None  # only blank: the paragraph would add no line
    assert shape.text(["a\x00b"]) is None
