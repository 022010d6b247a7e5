"""Liquid rendering of email templates (subject, HTML and text parts) plus MJML compilation.

Business rules:

* Rendering is strict: a variable that does not exist raises `MissingVariable`, and so does a variable
  that exists but is nil (``None``) when it is output directly (``{{ contact.first_name }}``), so an email
  can never go out as "Hi ,". Optional values opt out explicitly with the ``default`` filter:
  ``{{ contact.first_name | default: "there" }}`` renders "there" when the value is missing or nil.
* HTML bodies are auto-escaped (a first name of ``<b>x</b>`` is shown, not interpreted); use the ``safe``
  filter for trusted HTML. Subjects and text bodies are not escaped.
* A layout wraps the rendered body where it says ``{{ content }}``; the body is inserted as-is (already
  rendered, never escaped or rendered again).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from html import unescape
from typing import Any, TextIO

from liquid import BoundTemplate, Environment, Markup, RenderContext, StrictDefaultUndefined
from liquid.builtin.filters.extra import safe
from liquid.builtin.output import Output, OutputNode
from liquid.builtin.tags.echo_tag import EchoNode, EchoTag
from liquid.exceptions import LiquidError, UndefinedError
from liquid.stringify import to_liquid_string
from mjml import mjml2html


class TemplateError(Exception):
    """A template cannot be compiled or rendered (syntax error, bad filter arguments, invalid MJML)."""


class MissingVariable(TemplateError):
    """A variable used by the template is undefined (or nil where it is output)."""

    def __init__(self, message: str, *, name: str) -> None:
        super().__init__(message)
        self.name = name


@dataclass(frozen=True)
class Source:
    """The Liquid sources of one template revision."""

    key: str
    revision: int
    subject: str
    html: str
    text: str | None


@dataclass(frozen=True)
class Layout:
    """A wrapper template; ``{{ content }}`` marks where the rendered body goes."""

    key: str
    revision: int
    html: str
    text: str | None


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


# --------------------------------------------------------------------------------------------- Liquid setup


class _NilOutputError(UndefinedError):
    """Raised when an output statement evaluates to nil."""

    def __init__(self, node: OutputNode) -> None:
        expression = node.expression
        message = f"{expression} is nil (use the default filter for optional values)"
        super().__init__(message, token=node.token)
        self.variable = str(getattr(expression, "left", expression))


def _write_checked(node: OutputNode, context: RenderContext, buffer: TextIO) -> int:
    value = node.expression.evaluate(context)
    if value is None:
        raise _NilOutputError(node)
    return buffer.write(to_liquid_string(value, context.autoescape))


class _StrictOutputNode(OutputNode):
    __slots__ = ()

    def render_to_output(self, context: RenderContext, buffer: TextIO) -> int:
        return _write_checked(self, context, buffer)


class _StrictEchoNode(EchoNode):
    def render_to_output(self, context: RenderContext, buffer: TextIO) -> int:
        return _write_checked(self, context, buffer)


class _StrictOutput(Output):
    node_class = _StrictOutputNode


class _StrictEcho(EchoTag):
    node_class = _StrictEchoNode


def _environment(*, autoescape: bool) -> Environment:
    env = Environment(undefined=StrictDefaultUndefined, autoescape=autoescape)
    env.add_tag(_StrictOutput)
    env.add_tag(_StrictEcho)
    env.add_filter("safe", safe)
    return env


_HTML_ENV = _environment(autoescape=True)
_TEXT_ENV = _environment(autoescape=False)
_UNDEFINED_MESSAGE = re.compile(r"'?(?P<name>.+?)'? is undefined")


def _line_of(err: LiquidError) -> int | None:
    context = err.context()
    return context[0] if context else None


def _where(label: str, err: LiquidError) -> str:
    line = _line_of(err)
    return f"{label}, line {line}" if line else label


def _variable_name(err: UndefinedError) -> str:
    """Extract the undefined variable's dotted path from python-liquid's error message."""
    if isinstance(err, _NilOutputError):
        return err.variable
    match = _UNDEFINED_MESSAGE.fullmatch(str(err.message))
    if match:
        return match.group("name")
    return err.token.value if err.token else str(err.message)


def _parse(env: Environment, source: str, label: str) -> BoundTemplate:
    try:
        return env.from_string(source)
    except LiquidError as err:
        raise TemplateError(f"{_where(label, err)}: {err.message}") from err


def _render(template: BoundTemplate, data: Mapping[str, Any], label: str) -> str:
    try:
        return template.render(data)
    except UndefinedError as err:
        name = _variable_name(err)
        raise MissingVariable(f"{_where(label, err)}: {err.message}", name=name) from err
    except LiquidError as err:
        raise TemplateError(f"{_where(label, err)}: {err.message}") from err


# ------------------------------------------------------------------------------------------------- Renderer


@dataclass(frozen=True)
class _Part:
    template: BoundTemplate
    label: str

    def render(self, data: Mapping[str, Any]) -> str:
        return _render(self.template, data, self.label)


@dataclass(frozen=True)
class _Compiled:
    sources: tuple[str | None, str, str | None]
    subject: _Part | None
    html: _Part
    text: _Part | None


def _compile(kind: str, item: Source | Layout) -> _Compiled:
    subject = item.subject if isinstance(item, Source) else None
    name = f"{kind} {item.key!r} r{item.revision}"

    def part(env: Environment, text: str | None, what: str) -> _Part | None:
        if text is None:
            return None
        label = f"{name} {what}"
        return _Part(_parse(env, text, label), label)

    html = part(_HTML_ENV, item.html, "html")
    assert html is not None
    return _Compiled(
        (subject, item.html, item.text),
        part(_TEXT_ENV, subject, "subject"),
        html,
        part(_TEXT_ENV, item.text, "text"),
    )


_CONTENT_MARK = "\ue000leadflow-content\ue000"


class Renderer:
    """Renders `Source`s, caching compiled templates by (key, revision) in a bounded LRU.

    Thread-safe. A cache hit is only used when the cached sources are identical to the given ones, so an
    edited template that kept its revision number is recompiled rather than served stale.

    Text part rules: the source's text (rendered) is used when given, otherwise it is derived from the
    HTML with `html_to_text`. With a layout, a layout text (rendered with ``content`` = text body) wins;
    without one, the layout's HTML is converted to text around the body so footers survive.
    """

    def __init__(self, *, max_entries: int = 512) -> None:
        self._max_entries = max_entries
        self._cache: OrderedDict[tuple[str, str, int], _Compiled] = OrderedDict()
        self._lock = threading.Lock()

    def render(self, source: Source, variables: Mapping[str, Any], layout: Layout | None = None) -> Rendered:
        compiled = self._get("template", source)
        assert compiled.subject is not None
        subject = " ".join(compiled.subject.render(variables).split())
        html = compiled.html.render(variables)
        text = None if compiled.text is None else compiled.text.render(variables)
        if layout is not None:
            html, text = self._wrap(layout, variables, html, text)
        return Rendered(subject=subject, html=html, text=html_to_text(html) if text is None else text)

    def _wrap(
        self, layout: Layout, variables: Mapping[str, Any], html: str, text: str | None
    ) -> tuple[str, str | None]:
        compiled = self._get("layout", layout)
        wrapped = compiled.html.render({**variables, "content": Markup(html)})
        if compiled.text is not None:
            body = html_to_text(html) if text is None else text
            return wrapped, compiled.text.render({**variables, "content": body})
        if text is None:
            return wrapped, None
        frame = html_to_text(compiled.html.render({**variables, "content": Markup(_CONTENT_MARK)}))
        return wrapped, frame.replace(_CONTENT_MARK, text.strip()) if _CONTENT_MARK in frame else text

    def _get(self, kind: str, item: Source | Layout) -> _Compiled:
        cache_key = (kind, item.key, item.revision)
        with self._lock:
            compiled = self._cache.get(cache_key)
            if compiled is not None:
                self._cache.move_to_end(cache_key)
        subject = item.subject if isinstance(item, Source) else None
        if compiled is not None and compiled.sources == (subject, item.html, item.text):
            return compiled
        compiled = _compile(kind, item)
        with self._lock:
            self._cache[cache_key] = compiled
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return compiled


def check(source: Source) -> None:
    """Parse every part of ``source``; raise `TemplateError` naming the part and line of a syntax error.

    Unknown filters are reported too (Liquid itself only notices them when rendering).
    """
    compiled = _compile("template", source)
    for part, text in ((compiled.subject, source.subject), (compiled.html, source.html)):
        _check_filters(part, text)
    _check_filters(compiled.text, source.text)


def _check_filters(part: _Part | None, text: str | None) -> None:
    if part is None or text is None:
        return
    known = part.template.env.filters
    for name, spans in part.template.analyze().filters.items():
        if name not in known:
            line = text.count("\n", 0, spans[0].index) + 1
            raise TemplateError(f"{part.label}, line {line}: unknown filter {name!r}")


def compile_mjml(source: str) -> str:
    """Compile MJML markup to HTML. Liquid tags in text and attributes pass through unchanged."""
    try:
        html: str = mjml2html(source, disable_comments=True)
    except (ValueError, TypeError) as err:
        raise TemplateError(f"invalid MJML: {err}") from err
    return html


# ---------------------------------------------------------------------------------------------- html → text
# A small regex tokenizer instead of html.parser.HTMLParser (same stdlib entity decoding, several times
# faster): the text part of most emails is derived from the rendered HTML on every send.

_TOKEN = re.compile(
    r"<(?:!--.*?(?:-->|\Z)|!\[CDATA\[.*?(?:\]\]>|\Z)|[!?][^>]*>"
    r"|(?P<close>/?)(?P<tag>[a-zA-Z][^\s/>]*)(?P<attrs>(?:[^>\"']+|\"[^\"]*\"|'[^']*')*)>)",
    re.DOTALL,
)
_ATTR = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_RAW_END = {"script": re.compile(r"</script\s*>", re.IGNORECASE), "style": re.compile(r"</style\s*>", re.I)}
_SKIPPED = frozenset({"head", "title", "template", "noscript", "svg"})
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "blockquote", "pre", "hr"})
_LINES = frozenset(
    {"div", "tr", "td", "th", "table", "section", "article", "header", "footer", "center", "address", "dl"}
    | {"dt", "dd", "form", "nav", "main", "aside", "figure", "figcaption", "tbody", "thead", "tfoot", "body"}
)
# Line structure: block boundaries only *request* newlines (1 for a line, 2 for a paragraph, each <br>
# adds one, never more than 2); they are written as markers just before the next visible text, so runs of
# nested blocks collapse and there are no leading or trailing blank lines. Source newlines are whitespace.
_NEWLINE = "\x00"


def _attributes(raw: str) -> dict[str, str]:
    return {
        m.group(1).lower(): unescape(m.group(2) or m.group(3) or m.group(4) or "")
        for m in _ATTR.finditer(raw)
    }


def _is_hidden(raw_attrs: str) -> bool:
    lowered = raw_attrs.lower()
    if "hidden" not in lowered and "display" not in lowered:
        return False
    attrs = _attributes(raw_attrs)
    return "hidden" in attrs or bool(_HIDDEN_STYLE.search(attrs.get("style", "")))


class _TextBuilder:
    def __init__(self) -> None:
        self.out: list[str] = []
        self._newlines = 0  # requested before the next text
        self._started = False
        self._skip_tag = ""  # the element whose content is being dropped, and how deeply it is nested
        self._skip_depth = 0
        self._links: list[tuple[str, int]] = []  # (href, index in out where the label starts)
        self._pre = 0

    def start(self, tag: str, raw_attrs: str) -> None:
        if self._skip_depth:
            self._skip_depth += tag == self._skip_tag and tag not in _VOID
        elif tag in _SKIPPED or _is_hidden(raw_attrs):
            if tag not in _VOID:
                self._skip_tag, self._skip_depth = tag, 1
        elif tag == "br":
            self._newlines = min(self._newlines + 1, 2)
        elif tag == "li":
            self._break(1)
            self._text("- ")
        elif tag == "a":
            self._links.append((_attributes(raw_attrs).get("href", ""), len(self.out)))
        elif tag in _PARAGRAPHS:
            self._pre += tag == "pre"
            self._break(2)
        elif tag in _LINES:
            self._break(1)

    def end(self, tag: str) -> None:
        if self._skip_depth:
            self._skip_depth -= tag == self._skip_tag
        elif tag == "a" and self._links:
            self._close_link(*self._links.pop())
        elif tag in _PARAGRAPHS:
            self._pre -= tag == "pre" and self._pre > 0
            self._break(2)
        elif tag in _LINES or tag == "li":
            self._break(1)

    def _break(self, newlines: int) -> None:
        self._newlines = max(self._newlines, newlines)

    def _text(self, text: str) -> None:
        if self._newlines:
            if self._started:
                self.out.append(_NEWLINE * self._newlines)
            self._newlines = 0
        self._started = True
        self.out.append(text)

    def _close_link(self, href: str, start: int) -> None:
        label = " ".join("".join(self.out[start:]).split())
        href = href.strip()
        if not href or href.startswith(("#", "javascript:")) or label in (href, href.removeprefix("mailto:")):
            return
        self.out.append(f" ({href})" if label else href)

    def data(self, text: str) -> None:
        if self._skip_depth or not text:
            return
        if "&" in text:
            text = unescape(text)
        if self._pre:
            self._text(text.replace("\n", _NEWLINE))
        elif text.isspace():
            self.out.append(" ")
        else:
            self._text(text)

    def result(self) -> str:
        text = " ".join("".join(self.out).split())  # the marker is not whitespace: it survives
        text = text.replace(" " + _NEWLINE, _NEWLINE).replace(_NEWLINE + " ", _NEWLINE)
        return text.replace(_NEWLINE, "\n").strip()


def html_to_text(html: str) -> str:
    """Readable plain text from HTML.

    Head, style, script and hidden elements (``hidden``, ``display:none``) are dropped, blocks go on their
    own lines, list items become ``- item``, links become ``label (URL)`` (just the URL when the label is
    the URL), entities are decoded and whitespace is collapsed.
    """
    if _NEWLINE in html:
        html = html.replace(_NEWLINE, "")
    builder = _TextBuilder()
    pos = 0
    for match in _TOKEN.finditer(html):
        if match.start() < pos:
            continue  # inside a script/style body that was jumped over
        builder.data(html[pos : match.start()])
        pos = match.end()
        tag = match.group("tag")
        if tag is None:
            continue  # comment, doctype, CDATA, processing instruction
        tag = tag.lower()
        if match.group("close"):
            builder.end(tag)
        elif tag in _RAW_END:
            end = _RAW_END[tag].search(html, pos)
            pos = end.end() if end else len(html)
        else:
            builder.start(tag, match.group("attrs"))
    builder.data(html[pos:])
    return builder.result()
