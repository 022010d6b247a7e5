"""Hostile templates are refused cheaply, normal ones render exactly as python-liquid renders them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from liquid import Environment
from liquid.exceptions import LiquidError, ResourceLimitError

from leadflow.kernel.clock import VirtualClock
from leadflow.messaging.build import htmltext, limits, links
from leadflow.messaging.build.htmltext import html_to_text
from leadflow.messaging.build.render import (
    Layout,
    Renderer,
    Source,
    TemplateError,
    TemplateTooCostly,
    check,
)
from leadflow.messaging.build.tokens import Tokens


def source(html: str, *, subject: str = "Hello", text: str | None = None) -> Source:
    return Source(key="t", revision=1, subject=subject, html=html, text=text)


# Costly whatever the data: refused by `check` (at save) and by every render.
S = "{% assign s = 'ab' %}"


def doubled(times: int, how: str = "{% assign s = s | append: s %}") -> str:
    return f"{S}{{% for i in (1..{times}) %}}{how}{{% endfor %}}"


HOSTILE = {
    "a loop of millions": "{% for i in (1..5000000) %}x{% endfor %}",
    "a huge range": "{% for i in (1..99999999999999999999) %}x{% endfor %}",
    "nested loops": "{% for i in (1..3000) %}{% for j in (1..3000) %}.{% endfor %}{% endfor %}",
    "sequential loops": "{% for i in (1..9000) %}{% endfor %}" * 200,
    "tens of MB of output": "{% for i in (1..9000) %}{{ 'x' | append: '" + "y" * 5000 + "' }}{% endfor %}",
    "capture doubling": doubled(60, "{% capture s %}{{ s }}{{ s }}{% endcapture %}"),
    "append doubling": doubled(60),
    "replace blow-up": "{% assign s = 'aaaaaaaaaa' %}"
    + "{% for i in (1..8) %}{% assign s = s | replace: 'a', s %}{% endfor %}",
    "join blow-up": "{% assign a = 'x' | split: ',' %}"
    + "{% for i in (1..13) %}{% assign a = a | concat: a %}{% endfor %}"
    + "{% assign s = 'y' | append: '"
    + "z" * 2000
    + "' %}{{ a | join: s }}",
    "split into millions": doubled(17) + "{% assign parts = s | split: '' %}{{ parts | size }}",
    "number growth": "{% assign n = 3 %}"
    + "{% for i in (1..40) %}{% assign n = n | times: n %}{% endfor %}{{ n }}",
    "churning megabytes": doubled(17) + "{% for i in (1..5000) %}{% assign t = s | upcase %}{% endfor %}",
    "deep nesting": "{% if true %}" * 40 + "x" + "{% endif %}" * 40,
    "giant markup": "{{ brand.name | default: 'x' }}" * 2000,
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_template_is_refused_at_save_and_at_render(name: str) -> None:
    template = source(HOSTILE[name])
    with pytest.raises(TemplateTooCostly):
        check(template)
    with pytest.raises(TemplateTooCostly):
        Renderer().render(template, {"brand": {"name": "Acme"}})


@pytest.mark.parametrize("part", ["subject", "text"])
def test_every_part_counts(part: str) -> None:
    hostile = HOSTILE["a loop of millions"]
    template = (
        source("<p>fine</p>", subject=hostile) if part == "subject" else source("<p>ok</p>", text=hostile)
    )
    with pytest.raises(TemplateTooCostly, match=part):
        check(template)
    with pytest.raises(TemplateTooCostly, match=part):
        Renderer().render(template, {})


def test_a_layout_counts() -> None:
    frame = Layout(key="frame", revision=1, html="{{ content }}" + HOSTILE["capture doubling"], text=None)
    with pytest.raises(TemplateTooCostly, match="layout"):
        Renderer().render(source("<p>hi</p>"), {}, frame)


@pytest.mark.parametrize("tag", ["include", "render"])
def test_include_and_render_are_template_errors(tag: str) -> None:
    template = source(f"<p>Hi</p>{{% {tag} 'footer' %}}")
    with pytest.raises(TemplateError, match=f"'{tag}' tag is not available"):
        check(template)
    with pytest.raises(TemplateError, match=f"'{tag}' tag is not available"):
        Renderer().render(template, {})


@pytest.mark.parametrize(
    ("html", "costly"),
    [
        ("{% if contact.vip %}{% for i in (1..20000) %}x{% endfor %}{% endif %}", True),
        (
            "{% for i in (1..200) %}{% unless x %}{% for j in (1..200) %}.{% endfor %}{% endunless %}"
            "{% endfor %}",
            True,
        ),
        ("{% case x %}{% when 1 %}{% tablerow i in (1..20000) %}{% endtablerow %}{% endcase %}", True),
        ("{% if x %}{% for i in (1..20000) limit: 10 %}x{% endfor %}{% endif %}", False),
        ("{% if x %}{% for i in (1..20000) offset: 19995 %}x{% endfor %}{% endif %}", False),
        (
            "{% if x %}{% for i in (1..100) %}{% for j in (1..100) %}.{% endfor %}{% endfor %}{% endif %}",
            False,
        ),
        (
            "{% if x %}{% for i in (1..vars.n) %}{% for j in (1..9000) %}.{% endfor %}{% endfor %}"
            "{% endif %}",
            False,
        ),
    ],
)
def test_literal_loops_are_checked_in_every_branch(html: str, costly: bool) -> None:
    """The trial render at save takes only the branches empty variables take; literal ranges are
    checked in all of them."""
    if costly:
        with pytest.raises(TemplateTooCostly, match="loops of"):
            check(source(html))
    else:
        check(source(html))


def test_data_can_make_a_saved_template_costly() -> None:
    """Costly only with some data: `check` passes, the render with that data is refused."""
    template = source("{% for item in event.items %}{% for i in (1..event.n) %}.{% endfor %}{% endfor %}")
    check(template)
    assert Renderer().render(template, {"event": {"items": [1, 2], "n": 3}}).html == "......"
    with pytest.raises(TemplateTooCostly, match="loop iteration limit"):
        Renderer().render(template, {"event": {"items": list(range(1000)), "n": 1000}})


def test_the_fast_path_keeps_the_output_limit() -> None:
    """A template without tags renders through the fast path; big data makes it hand over, and
    python-liquid refuses it."""
    template = source("<p>{{ contact.bio }}</p>" * 200)
    renderer = Renderer()
    bio = {"contact": {"bio": "b" * 100}}
    assert renderer.render(template, bio).html.count("b") == 20_000
    program = renderer._get("template", template).html.program
    assert program is not None
    assert program.render({"contact": {"bio": "b" * 10_000}}) is None
    with pytest.raises(TemplateTooCostly, match="writes more than"):
        renderer.render(template, {"contact": {"bio": "b" * 10_000}})


def test_the_fast_path_filters_are_guarded() -> None:
    template = source("<p>{{ contact.name | replace: 'a', contact.bio }}</p>")
    data = {"contact": {"name": "a" * 1000, "bio": "b" * 2000}}
    assert Renderer()._get("template", template).html.program is not None
    with pytest.raises(TemplateTooCostly, match="replace"):
        Renderer().render(template, data)


def test_every_node_is_a_step() -> None:
    """Pins the python-liquid internal the step count relies on (``Node.render`` reads
    ``context.disabled_tags`` once per node)."""
    env = limits.LimitedEnvironment()
    with limits.metered() as budget:
        env.from_string("{% if true %}a{% endif %}{{ 'b' }}" * 50).render()
    assert budget.steps >= 150
    assert budget.chars == 100


def test_the_cpu_backstop_stops_a_render() -> None:
    env = limits.LimitedEnvironment()
    template = env.from_string("{% for i in (1..5000) %}{% if 'abc' contains 'z' %}{% endif %}{% endfor %}")
    with (
        pytest.raises(limits.TemplateLimitError, match="too long"),
        limits.metered(limits.Budget(cpu_seconds=0.0)),
    ):
        template.render()


def test_markup_is_counted_before_parsing() -> None:
    limits.check_markup("x" * 100_000 + "{{ a }}" * 100)
    limits.check_markup("{ not markup }" * 10_000)
    with pytest.raises(limits.TemplateLimitError):
        limits.check_markup("{{" + "x" * limits.MARKUP_CHARS)  # never closed: counts to the end
    with pytest.raises(limits.TemplateLimitError):
        limits.check_markup("{% liquid\n" + "assign a = 1\n" * 5000 + "%}")


# ------------------------------------------------------------------------------------------- properties

_PLAIN = Environment(autoescape=True)  # the reference: python-liquid without limits


@st.composite
def shapes(draw: Any) -> str:
    """Loops (nested, sequential), captures and assigns that grow strings, outputs."""

    def block(depth: int) -> str:
        pieces = []
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["loop", "grow", "capture", "out", "text"] if depth < 3 else ["out"]))
            if kind == "loop":
                stop = draw(st.integers(0, 40))
                pieces.append(f"{{% for i{depth} in (1..{stop}) %}}{block(depth + 1)}{{% endfor %}}")
            elif kind == "grow":
                flt = draw(st.sampled_from(["append: s", "prepend: 'ab'", "replace: 'a', 'aa'", "upcase"]))
                pieces.append(f"{{% assign s = s | {flt} %}}")
            elif kind == "capture":
                pieces.append(f"{{% capture s %}}{{{{ s }}}}{block(depth + 1)}{{% endcapture %}}")
            elif kind == "out":
                pieces.append(draw(st.sampled_from(["{{ s }}", "{{ s | size }}", "{{ 'x' }}"])))
            else:
                pieces.append(draw(st.sampled_from(["a", "<b>", "\n"])))
        return "".join(pieces)

    return "{% assign s = 'ab' %}" + block(0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes(), st.integers(50, 3000), st.integers(500, 50_000))
def test_limits_refuse_or_agree_with_python_liquid(template: str, steps: int, chars: int) -> None:
    """With any budget, a render either gives python-liquid's own output or is refused by a limit — and
    never spends more than the budget allows."""
    env = limits.LimitedEnvironment(autoescape=True)
    budget = limits.Budget(steps=steps, chars=chars, cpu_seconds=60)
    try:
        with limits.metered(budget):
            found = env.from_string(template).render()
    except ResourceLimitError:  # ours, or python-liquid's loop iteration limit
        assert budget.steps <= steps + 1
        assert budget.chars <= chars + limits.VALUE_CHARS
        return
    except LiquidError:
        pytest.fail("only limits may refuse these shapes")
    assert found == _PLAIN.from_string(template).render()
    assert budget.steps <= steps
    assert budget.chars <= chars


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="{}%ab \n", max_size=300))
def test_markup_counting_never_undercounts(text: str) -> None:
    """`check_markup` passes only what holds at most MARKUP_CHARS characters of markup (here: scaled)."""
    big = text * (limits.MARKUP_CHARS // max(len(text), 1) + 2)
    try:
        limits.check_markup(big)
    except limits.TemplateLimitError:
        return
    assert big.count("{{") + big.count("{%") <= limits.MARKUP_CHARS // 2 + 1


# ------------------------------------------------------------------------------------- HTML to text

# Inputs on which the former tokenizer backtracked exponentially (``<a `` + 40 characters without ``>``:
# 2**40 ways to split) or rescanned to the end from every ``<`` (quadratic): each now converts in one pass.
UNCLOSED = {
    "tag without >": ("<p>hi <a " + "x" * 40, "hi <a " + "x" * 40),
    "declaration without >": ("<b>x</b>" + "<!" * 200_000, "x" + "<!" * 200_000),
    "quotes without >": ('<a "' * 100_000, '<a "' * 100_000),
    "names without >": ("<a" * 200_000, "<a" * 200_000),
}


@pytest.mark.parametrize("name", sorted(UNCLOSED))
def test_html_to_text_passes_unclosed_markup_through_as_text(name: str) -> None:
    html, text = UNCLOSED[name]
    assert html_to_text(html) == text


def test_a_raw_less_than_inside_an_attribute_makes_the_tag_text() -> None:
    assert html_to_text('<p>a <img alt="x < y"> b</p>') == 'a <img alt="x < y"> b'
    assert html_to_text('<p>a <img alt="x &lt; y"> b</p>') == "a b"


def test_derive_scans_markup_once() -> None:
    """``<!<!<!...`` before a hole: the check for values inside markup stops at every next ``<``."""
    assert htmltext.derive(["<!" * 200_000, 0]) is not None
    assert htmltext.derive(["<!" * 200_000 + "<a", 0, ">"]) is None  # a value in a tag name


def _track(html: str) -> str:
    tokens = Tokens("s" * 32, VirtualClock(datetime(2026, 1, 1, tzinfo=UTC)))
    return links.track(html, message_id="m1", base_url="https://acme.example", tokens=tokens)


def test_link_tracking_passes_unclosed_anchors_through() -> None:
    """``<a <a <a ...`` (no ``>``) was rescanned to the end from every ``<a``: quadratic at send time."""
    html = "<body><p>" + "<a " * 100_000 + "</p></body>"
    tracked = _track(html)
    assert "<p>" + "<a " * 100_000 + "</p>" in tracked
    assert "/t/o/" in tracked  # the pixel is still added


def test_link_tracking_still_rewrites_anchors_around_them() -> None:
    tracked = _track(
        '<a <a title="x>y" href="https://shop.example/a">A</a> <a href="https://b.example">B</a>'
    )
    assert "https://shop.example/a" not in tracked
    assert "https://b.example" not in tracked
    assert tracked.count("/t/c/") == 2


def test_compiling_does_not_count_towards_the_cpu_time() -> None:
    """A cache miss compiles inside the render's budget; that time is given back."""
    budget = limits.Budget(cpu_seconds=0.05)
    before = budget.deadline
    with limits.metered(budget):
        Renderer()._get("template", source("<p>{{ a }}</p>" * 500))
    assert budget.deadline > before
    assert budget.steps == 0
