"""The compiled fast path renders exactly what python-liquid renders (or steps aside).

python-liquid is the reference: for random render data (missing keys, nil, booleans, numbers, strings
with HTML specials, lists, nested dicts) every compiled program either gives python-liquid's output, or
returns None where python-liquid then renders (or raises) itself.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from liquid import BoundTemplate
from liquid.exceptions import LiquidError

from leadflow.messaging.build import fastpath
from leadflow.messaging.build.render import _HTML_ENV, _TEXT_ENV, _StrictOutputNode

TEMPLATES = [
    "Hi {{ contact.first_name }}, welcome!",
    "<p>{{ contact.first_name | default: 'there' }}</p>",
    "{{ a.b.c | default: \"<x> & 'y'\" | upcase }}",
    "{{ flag | default: 'no', allow_false: true }}|{{ flag | default: 'no' }}",
    "{{ n | plus: 1 }} {{ n | times: 2.5 }} {{ n | default: 7 }}",
    "{{ items.size }}/{{ items.first }}/{{ items.last }}/{{ obj.size }}/{{ s.size }}",
    "{{ s | strip | capitalize | append: '!' | prepend: x }}",
    "{{ s | escape }}{{ s | safe }}{{ s | escape_once }}",
    "{{ x | default: y }} {{ y | default: x | default: 'z' }}",
    "{{ s | truncate: 5 }} {{ s | replace: 'a', '<b>' }} {{ s | downcase | url_encode }}",
    "{{ obj }} {{ items }} {{ n }} {{ flag }}",
    "{{- s -}}\n  {{ contact['first_name'] }}  {{ obj.first }}",
    "{{ contact.first_name | default }}{{ s | default: nil }}",
    "{{ n | divided_by: 0 }}",
    "{{ s | newline_to_br }}{{ s | strip_html }}{{ s | strip_newlines }}",
]
KEYS = ["contact", "a", "b", "c", "flag", "n", "items", "obj", "s", "x", "y", "first_name", "size", "first"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(alphabet=st.sampled_from("ab <>&\"' \n\tÄ"), max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)
    ),
    max_leaves=8,
)
texts = st.text(alphabet=st.sampled_from("ab <>&\"' \n\tÄ"), max_size=8)
render_data = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=9),
    st.fixed_dictionaries(  # mostly present and plain: the outputs the fast path renders itself
        {
            "contact": st.fixed_dictionaries({"first_name": st.one_of(texts, scalars)}),
            "a": st.one_of(st.just({}), st.fixed_dictionaries({"b": st.fixed_dictionaries({"c": scalars})})),
            "flag": st.one_of(st.booleans(), scalars),
            "n": st.one_of(st.integers(-100, 100), st.floats(-1e3, 1e3, width=32), scalars),
            "items": st.lists(scalars, max_size=3),
            "obj": st.one_of(st.dictionaries(st.sampled_from(KEYS), scalars, max_size=3), scalars),
            "s": texts,
            "x": st.one_of(texts, scalars),
            "y": st.one_of(texts, scalars),
        }
    ),
)


def _compiled(source: str, *, autoescape: bool) -> tuple[BoundTemplate, fastpath.Program]:
    env = _HTML_ENV if autoescape else _TEXT_ENV
    template = env.from_string(source)
    program = fastpath.compile_program(template, _StrictOutputNode, autoescape=autoescape)
    assert program is not None, source
    return template, program


def _reference(template: BoundTemplate, data: dict[str, Any]) -> str | None:
    try:
        return template.render(data)
    except LiquidError:
        return None


@pytest.mark.parametrize("autoescape", [True, False], ids=["html", "text"])
@pytest.mark.parametrize("source", TEMPLATES)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=render_data)
def test_fast_path_output_equals_python_liquid(source: str, autoescape: bool, data: dict[str, Any]) -> None:
    template, program = _compiled(source, autoescape=autoescape)
    fast = program.render(data)
    if fast is not None:
        assert fast == _reference(template, data)


@pytest.mark.parametrize("autoescape", [True, False], ids=["html", "text"])
def test_plain_data_takes_the_fast_path(autoescape: bool) -> None:
    data = {
        "contact": {"first_name": "Ann <&>"},
        "a": {},
        "flag": False,
        "n": 3,
        "items": [1, "two"],
        "obj": {"k": "v"},
        "s": "  abc \n",
        "x": "X",
        "y": None,
    }
    for source in TEMPLATES[:10]:
        template, program = _compiled(source, autoescape=autoescape)
        assert program.render(data) == template.render(data), source


def test_missing_and_nil_values_step_aside_for_python_liquid() -> None:
    _, program = _compiled("Hi {{ contact.first_name }}", autoescape=True)
    assert program.render({}) is None
    assert program.render({"contact": {"first_name": None}}) is None
    assert program.render({"contact": "Ann"}) is None
    assert program.render({"contact": {"first_name": "<Ann>"}}) == "Hi &lt;Ann&gt;"


@pytest.mark.parametrize(
    "source",
    [
        "{% if x %}{{ x }}{% endif %}",
        "{{ x | date: '%Y' }}",
        "{{ now }}",
        "{{ partial }}",
        "{{ items[0] }}",
        "{{ a[b] }}",
        "{{ 'literal' }}",
        "{{ x | no_such_filter }}",
        "{{ x | default: (1..3) }}",
        "{% echo x %}",
    ],
)
def test_templates_with_tags_or_other_expressions_are_not_compiled(source: str) -> None:
    template = _HTML_ENV.from_string(source)
    assert fastpath.compile_program(template, _StrictOutputNode, autoescape=True) is None


def test_literals_are_markup_when_autoescaping_like_python_liquid() -> None:
    for autoescape in (True, False):
        template, program = _compiled("{{ x | default: '<b>' }}", autoescape=autoescape)
        assert program.render({}) == template.render({}) == "<b>"
