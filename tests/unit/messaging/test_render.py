from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from leadflow.messaging.build.render import (
    Layout,
    MissingVariable,
    Rendered,
    Renderer,
    Source,
    TemplateError,
    check,
    compile_mjml,
    html_to_text,
)

CONTACT = {
    "contact": {"first_name": "Ann", "company": None},
    "links": {"cta": "https://acme.example/go?a=1&b=2"},
}


def source(
    html: str, *, subject: str = "Hello", text: str | None = None, key: str = "t", rev: int = 1
) -> Source:
    return Source(key=key, revision=rev, subject=subject, html=html, text=text)


def render(src: Source, variables: dict[str, Any], layout: Layout | None = None) -> Rendered:
    return Renderer().render(src, variables, layout)


# ------------------------------------------------------------------------------------------ rendering basics


def test_renders_all_parts_and_collapses_the_subject() -> None:
    src = source(
        "<p>Hi {{ contact.first_name }}</p>",
        subject="  Welcome,\n   {{ contact.first_name }}!\t ",
        text="Hi {{ contact.first_name }}\nBye",
    )
    out = render(src, CONTACT)
    assert out == Rendered(subject="Welcome, Ann!", html="<p>Hi Ann</p>", text="Hi Ann\nBye")


def test_subject_never_contains_newlines_even_from_variables() -> None:
    out = render(source("x", subject="Hi {{ name }}"), {"name": "Ann\r\nBcc: evil@example.com"})
    assert out.subject == "Hi Ann Bcc: evil@example.com"


@pytest.mark.parametrize(
    ("variables", "name"),
    [
        ({}, "contact"),
        ({"contact": {}}, "contact.first_name"),
        ({"contact": None}, "contact.first_name"),
        ({"contact": {"first_name": None}}, "contact.first_name"),
    ],
)
def test_missing_or_nil_variable_raises_with_its_name(variables: dict[str, Any], name: str) -> None:
    with pytest.raises(MissingVariable) as info:
        render(source("<p>Hi {{ contact.first_name }},</p>"), variables)
    assert info.value.name == name
    assert "html" in str(info.value)
    assert isinstance(info.value, TemplateError)


@pytest.mark.parametrize("part", ["subject", "text"])
def test_missing_variable_in_subject_or_text_raises(part: str) -> None:
    parts = {"subject": "Hi", "text": "Hi", part: "Hi {{ contact.nickname }}"}
    with pytest.raises(MissingVariable) as info:
        render(source("<p>x</p>", subject=parts["subject"], text=parts["text"]), CONTACT)
    assert info.value.name == "contact.nickname"
    assert part in str(info.value)


def test_missing_variable_in_a_loop_or_filter_argument_raises() -> None:
    with pytest.raises(MissingVariable) as info:
        render(source("{% for item in items %}{{ item }}{% endfor %}"), {})
    assert info.value.name == "items"
    with pytest.raises(MissingVariable):
        render(source("{{ 'a' | append: suffix }}"), {})


@pytest.mark.parametrize(
    "variables",
    [
        {},
        {"contact": {}},
        {"contact": None},
        {"contact": {"first_name": None}},
        {"contact": {"first_name": ""}},
    ],
)
def test_default_filter_covers_missing_and_nil_values(variables: dict[str, Any]) -> None:
    src = source(
        "<p>Hi {{ contact.first_name | default: 'there' }},</p>",
        subject="{{ contact.first_name | default: 'Hi' }}",
    )
    out = render(src, variables)
    assert out.html == "<p>Hi there,</p>"
    assert out.subject == "Hi"


def test_default_filter_keeps_present_values_and_nil_tests_work() -> None:
    src = source(
        "{{ contact.first_name | default: 'there' }}"
        "{% if contact.company %} at {{ contact.company }}{% endif %}"
    )
    assert render(src, CONTACT).html == "Ann"
    assert render(src, {"contact": {"first_name": "Bo", "company": "Acme"}}).html == "Bo at Acme"


def test_html_is_escaped_but_subject_and_text_are_not() -> None:
    src = source('<p>{{ name }}</p><a href="{{ url }}">go</a>', subject="{{ name }}", text="{{ name }}")
    out = render(src, {"name": "<b>Tom & Jerry</b>", "url": "https://x.example/?a=1&b=2"})
    assert (
        out.html == '<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p><a href="https://x.example/?a=1&amp;b=2">go</a>'
    )
    assert out.subject == "<b>Tom & Jerry</b>"
    assert out.text == "<b>Tom & Jerry</b>"


def test_safe_filter_outputs_trusted_html() -> None:
    assert render(source("{{ snippet | safe }}"), {"snippet": "<em>hi</em>"}).html == "<em>hi</em>"


def test_variable_values_are_never_rendered_as_liquid() -> None:
    out = render(source("<p>{{ note }}</p>", text="{{ note }}"), {"note": "{{ secret }}"})
    assert out.html == "<p>{{ secret }}</p>"
    assert out.text == "{{ secret }}"


def test_text_is_derived_from_html_when_absent() -> None:
    out = render(
        source("<h1>Hi {{ contact.first_name }}</h1><p><a href='{{ links.cta }}'>Start</a></p>"), CONTACT
    )
    assert out.text == "Hi Ann\n\nStart (https://acme.example/go?a=1&b=2)"


# ---------------------------------------------------------------------------------------------------- layouts

LAYOUT_HTML = (
    "<html><head><style>p { color: red }</style></head><body>"
    "<div style='display:none'>preheader</div>{{ content }}"
    "<p>{{ company }} · <a href='{{ unsub }}'>Unsubscribe</a></p>"
    "</body></html>"
)
LAYOUT_VARS = {**CONTACT, "company": "Acme & Co", "unsub": "https://acme.example/u/1"}


def test_layout_wraps_rendered_content_without_escaping_or_rerendering_it() -> None:
    layout = Layout(key="base", revision=1, html=LAYOUT_HTML, text=None)
    src = source("<p>Hi {{ contact.first_name }} {{ note }}</p>")
    out = render(src, {**LAYOUT_VARS, "note": "{{ company }} <i>"}, layout)
    assert (
        "<body><div style='display:none'>preheader</div><p>Hi Ann {{ company }} &lt;i&gt;</p><p>Acme &amp; Co"
        in out.html
    )
    assert out.text == "Hi Ann {{ company }} <i>\n\nAcme & Co · Unsubscribe (https://acme.example/u/1)"


def test_layout_text_wraps_the_text_body() -> None:
    layout = Layout(
        key="base", revision=1, html="<div>{{ content }}</div>", text="{{ content }}\n--\n{{ company }}"
    )
    out = render(source("<p>Hi</p>", text="Hi {{ contact.first_name }}"), LAYOUT_VARS, layout)
    assert out.html == "<div><p>Hi</p></div>"
    assert out.text == "Hi Ann\n--\nAcme & Co"


def test_layout_text_wraps_text_derived_from_the_body_html() -> None:
    layout = Layout(key="base", revision=1, html="<div>{{ content }}</div>", text="{{ content }}\n--\nfooter")
    out = render(source("<p>Hi <b>{{ contact.first_name }}</b></p>"), LAYOUT_VARS, layout)
    assert out.text == "Hi Ann\n--\nfooter"


def test_layout_html_footer_is_kept_around_a_given_text_body() -> None:
    layout = Layout(key="base", revision=1, html=LAYOUT_HTML, text=None)
    out = render(source("<p>ignored</p>", text="Line one\nLine  two"), LAYOUT_VARS, layout)
    assert out.text == "Line one\nLine  two\n\nAcme & Co · Unsubscribe (https://acme.example/u/1)"


def test_missing_variable_in_layout_names_the_layout() -> None:
    layout = Layout(key="base", revision=2, html="{{ content }}{{ footer }}", text=None)
    with pytest.raises(MissingVariable) as info:
        render(source("<p>x</p>"), {}, layout)
    assert info.value.name == "footer"
    assert "layout 'base' r2" in str(info.value)


# ------------------------------------------------------------------------------------------------- caching


def test_cache_never_serves_a_stale_template_for_the_same_revision() -> None:
    renderer = Renderer()
    assert renderer.render(source("A {{ x }}"), {"x": 1}).html == "A 1"
    assert renderer.render(source("B {{ x }}"), {"x": 1}).html == "B 1"
    layout = Layout(key="l", revision=1, html="[{{ content }}]", text=None)
    assert renderer.render(source("x"), {}, layout).html == "[x]"
    assert (
        renderer.render(source("x"), {}, Layout(key="l", revision=1, html="({{ content }})", text=None)).html
        == "(x)"
    )


def test_a_tiny_cache_keeps_rendering_correctly() -> None:
    renderer = Renderer(max_entries=1)
    for index in range(6):
        src = source(f"{index}:{{{{ x }}}}", key=f"k{index % 3}", rev=index)
        assert renderer.render(src, {"x": "v"}).html == f"{index}:v"


def test_rendering_is_thread_safe() -> None:
    renderer = Renderer(max_entries=4)
    sources = [source(f"<p>{n} {{{{ contact.first_name }}}} {{{{ i }}}}</p>", key=f"k{n}") for n in range(8)]

    def work(i: int) -> tuple[int, str]:
        return i, renderer.render(sources[i % 8], {**CONTACT, "i": i}).html

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(400)))
    assert all(html == f"<p>{i % 8} Ann {i}</p>" for i, html in results)


# ------------------------------------------------------------------------------------------- syntax checks


def test_check_accepts_valid_templates() -> None:
    check(source("<p>{{ a | upcase }}</p>{% if b %}x{% endif %}", text="{{ c }}"))


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>ok</p>\n<p>ok</p>\n{% endfor %}", "html, line 3: unexpected tag 'endfor'"),
        ("line\n{{ x", "html, line 2"),
        ("a\nb\n\n{{ x | no_such_filter }}", "html, line 4: unknown filter 'no_such_filter'"),
        ("{% if x %}never closed", "html"),
    ],
)
def test_check_reports_part_and_line(html: str, expected: str) -> None:
    with pytest.raises(TemplateError) as info:
        check(source(html, key="welcome", rev=3))
    assert "template 'welcome' r3 " + expected in str(info.value)
    assert not isinstance(info.value, MissingVariable)


def test_check_covers_subject_and_text() -> None:
    with pytest.raises(TemplateError, match="subject"):
        check(source("ok", subject="{% if %}"))
    with pytest.raises(TemplateError, match="text, line 2"):
        check(source("ok", text="fine\n{% endif %}"))


def test_render_of_broken_template_raises_template_error() -> None:
    with pytest.raises(TemplateError, match="html"):
        render(source("{% if x %}"), {"x": 1})
    with pytest.raises(TemplateError, match="unknown filter"):
        render(source("{{ x | nope }}"), {"x": 1})


# -------------------------------------------------------------------------------------------- html_to_text


def test_html_to_text_drops_invisible_content() -> None:
    html = (
        "<!DOCTYPE html><html><head><title>T</title><style>.a{}</style><script>var s = '<p>no</p>';</script>"
        "</head><body><!--[if mso]><p>outlook</p><![endif]-->"
        "<div style='DISPLAY: none; max-height:0'>preheader <div>nested</div> still hidden</div>"
        "<span hidden>gone</span><p>Visible</p></body></html>"
    )
    assert html_to_text(html) == "Visible"


def test_html_to_text_blocks_lists_and_breaks() -> None:
    html = (
        "<h1>Title</h1>\n  <p>First   line<br>second\n line</p><ul><li>one</li><li>two &amp; three</li></ul>"
        "<table><tr><td>cell a</td><td>cell b</td></tr></table><div>end&nbsp;&#8212;&eacute;</div>"
    )
    assert (
        html_to_text(html)
        == "Title\n\nFirst line\nsecond line\n\n- one\n- two & three\n\ncell a\ncell b\nend —é"
    )


def test_html_to_text_links() -> None:
    html = (
        '<p><a href="https://a.example/x?a=1&amp;b=2">Read more</a>, '
        '<a href="https://b.example/">https://b.example/</a>, '
        '<a href="mailto:hi@acme.example">hi@acme.example</a>, '
        '<a href="https://c.example/"><img src="logo.png" alt="Logo"></a>, '
        '<a href="#top">top</a></p>'
    )
    expected = "Read more (https://a.example/x?a=1&b=2), https://b.example/, hi@acme.example, "
    expected += "https://c.example/, top"
    assert html_to_text(html) == expected


def test_html_to_text_keeps_pre_lines_and_plain_text() -> None:
    assert html_to_text("<pre>a\nb</pre>") == "a\nb"
    assert html_to_text("just text, 3 < 4 & 5 > 2") == "just text, 3 < 4 & 5 > 2"
    assert html_to_text("") == ""


# ---------------------------------------------------------------------------------------------------- MJML

MJML = """<mjml>
  <mj-body>
    <mj-section><mj-column>
      <mj-text>
        Hi {{ contact.first_name | default: "there" }}{% if contact.company %},
        {{ contact.company }}{% endif %}
      </mj-text>
      <mj-button href="{{ links.cta }}">Start</mj-button>
    </mj-column></mj-section>
  </mj-body>
</mjml>"""


def test_liquid_survives_mjml_compilation() -> None:
    html = compile_mjml(MJML)
    assert '{{ contact.first_name | default: "there" }}' in html
    assert "{% if contact.company %}" in html
    assert 'href="{{ links.cta }}"' in html
    out = render(
        source(html), {"contact": {"first_name": "Ann", "company": "Acme"}, "links": CONTACT["links"]}
    )
    assert re.search(r"Hi Ann,\s+Acme", out.html)
    assert 'href="https://acme.example/go?a=1&amp;b=2"' in out.html
    assert "Hi Ann, Acme" in out.text
    assert "Start (https://acme.example/go?a=1&b=2)" in out.text


@pytest.mark.parametrize("bad", ["", "not mjml at all", "<mjml><mj-body><mj-section>"])
def test_invalid_mjml_raises_template_error(bad: str) -> None:
    with pytest.raises(TemplateError, match="invalid MJML"):
        compile_mjml(bad)
