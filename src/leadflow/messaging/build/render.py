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
* Templates are untrusted work: every render of an email (all its parts) runs within the limits of
  `leadflow.messaging.build.limits` (loops, steps, output and value sizes, CPU time, nesting); going over one
  raises `TemplateTooCostly`. ``include`` and ``render`` do not exist here (a syntax error): a template
  cannot load another. Whatever else goes wrong inside a template is a `TemplateError`, never another
  exception.
* `check` (at save) parses every part and also renders it once with every variable empty, so a
  template that is costly whatever the data (a loop of millions, a string doubled in a loop) is refused
  before it is stored; one that is costly only with some data fails when rendered with that data.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from liquid import BoundTemplate, Environment, Markup, RenderContext, StrictDefaultUndefined, Undefined
from liquid.builtin.filters.extra import safe
from liquid.builtin.output import Output, OutputNode
from liquid.builtin.tags.echo_tag import EchoNode, EchoTag
from liquid.exceptions import LiquidError, ResourceLimitError, UndefinedError
from liquid.stringify import to_liquid_string
from mjml import mjml2html

from leadflow.messaging.build import fastpath, limits, textpart
from leadflow.messaging.build.htmltext import html_to_text

__all__ = [
    "Layout",
    "MissingVariable",
    "Rendered",
    "Renderer",
    "Snippet",
    "Source",
    "TemplateError",
    "TemplateTooCostly",
    "check",
    "compile_mjml",
    "html_to_text",
    "snippet",
    "trial_snippets",
]


class TemplateError(Exception):
    """A template cannot be compiled or rendered (syntax error, bad filter arguments, invalid MJML)."""


class TemplateTooCostly(TemplateError):
    """A template went over a resource limit (`leadflow.messaging.build.limits`) or nests too deeply."""


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


def _environment(*, autoescape: bool, strict: bool = True) -> Environment:
    env = limits.LimitedEnvironment(
        undefined=StrictDefaultUndefined if strict else Undefined, autoescape=autoescape
    )
    if strict:
        env.add_tag(_StrictOutput)
        env.add_tag(_StrictEcho)
    env.add_filter("safe", safe)
    return env


_HTML_ENV = _environment(autoescape=True)
_TEXT_ENV = _environment(autoescape=False)
_TRIAL_HTML_ENV = _environment(autoescape=True, strict=False)  # `check`'s render with empty variables
_TRIAL_TEXT_ENV = _environment(autoescape=False, strict=False)
_TOO_DEEP = "expressions or blocks nested too deeply"
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
        limits.check_markup(source)
        return env.from_string(source)
    except ResourceLimitError as err:
        raise TemplateTooCostly(f"{_where(label, err)}: {err.message}") from err
    except LiquidError as err:
        raise TemplateError(f"{_where(label, err)}: {err.message}") from err
    except RecursionError as err:
        raise TemplateTooCostly(f"{label}: {_TOO_DEEP}") from err


def _render(template: BoundTemplate, data: Mapping[str, Any], label: str) -> str:
    """Render strictly; every failure is a `TemplateError` (user templates must not raise anything else
    into the deliverer or the API)."""
    try:
        return template.render(data)
    except UndefinedError as err:
        name = _variable_name(err)
        raise MissingVariable(f"{_where(label, err)}: {err.message}", name=name) from err
    except ResourceLimitError as err:
        raise TemplateTooCostly(f"{_where(label, err)}: {err.message}") from err
    except LiquidError as err:
        # python-liquid reports a range too long to measure as a value error ("... limit reached")
        kind = TemplateTooCostly if str(err.message).endswith("limit reached") else TemplateError
        raise kind(f"{_where(label, err)}: {err.message}") from err
    except RecursionError as err:
        raise TemplateTooCostly(f"{label}: {_TOO_DEEP}") from err
    except Exception as err:  # a filter's own error (an overflow, a bad value): the template's fault
        raise TemplateError(f"{label}: {type(err).__name__}: {err}") from err


# ------------------------------------------------------------------------------------------------- Renderer


@dataclass(frozen=True)
class _Part:
    template: BoundTemplate
    label: str
    program: fastpath.Program | None  # the compiled fast path, when the template has no tags

    def render(self, data: dict[str, Any]) -> str:
        if self.program is not None:
            found = self.program.render(data)
            if found is not None:
                return found
        return _render(self.template, data, self.label)


@dataclass(frozen=True)
class _Compiled:
    sources: tuple[str | None, str, str | None]
    subject: _Part | None
    html: _Part
    text: _Part | None
    parts: textpart.Parts | None  # the HTML as literal text and output expressions, when it has no tags
    derived: textpart.DerivedText | None  # template: text from its HTML; layout: the frame around a text body


_CONTENT_MARK = "\ue000leadflow-content\ue000"


def _compile(kind: str, item: Source | Layout) -> _Compiled:
    subject = item.subject if isinstance(item, Source) else None
    name = f"{kind} {item.key!r} r{item.revision}"

    def part(env: Environment, text: str | None, what: str) -> _Part | None:
        if text is None:
            return None
        label = f"{name} {what}"
        template = _parse(env, text, label)
        return _Part(
            template, label, fastpath.compile_program(template, _StrictOutputNode, autoescape=env.autoescape)
        )

    html = part(_HTML_ENV, item.html, "html")
    assert html is not None
    parts = fastpath.template_parts(html.template, _StrictOutputNode)
    derived = None
    if item.text is None:
        content = parts if isinstance(item, Source) else textpart.with_content(parts, [_CONTENT_MARK])
        derived = textpart.derive_text(content, _TEXT_ENV)
    return _Compiled(
        (subject, item.html, item.text),
        part(_TEXT_ENV, subject, "subject"),
        html,
        part(_TEXT_ENV, item.text, "text"),
        parts,
        derived,
    )


_Pair = tuple[_Compiled, _Compiled, textpart.DerivedText | None]  # template, layout, text of both


def _text_of(derived: textpart.DerivedText | None, data: dict[str, Any], html: str) -> str:
    found = None if derived is None else derived.render(data)
    return html_to_text(html) if found is None else found


class Renderer:
    """Renders `Source`s, caching compiled templates by (key, revision) in a bounded LRU.

    Thread-safe. A cache hit is only used when the cached sources are identical to the given ones, so an
    edited template that kept its revision number is recompiled rather than served stale.

    Text part rules: the source's text (rendered) is used when given, otherwise it is derived from the
    HTML with `html_to_text`. With a layout, a layout text (rendered with ``content`` = text body) wins;
    without one, the layout's HTML is converted to text around the body so footers survive.

    Speed (same results): templates without tags render through `fastpath`, and a text derived from HTML
    is worked out once per template (and layout) revision with `htmltext.derive` rather than converted from
    every rendered HTML, whenever the values allow it.
    """

    def __init__(self, *, max_entries: int = 512) -> None:
        self._max_entries = max_entries
        self._cache: OrderedDict[tuple[str, str, int], _Compiled] = OrderedDict()
        self._pairs: OrderedDict[tuple[str, int, str, int], _Pair] = OrderedDict()
        self._lock = threading.Lock()

    def render(self, source: Source, variables: Mapping[str, Any], layout: Layout | None = None) -> Rendered:
        """One email, all parts within one budget of `leadflow.messaging.build.limits`."""
        with limits.metered():
            return self._render(source, variables, layout)

    def _render(self, source: Source, variables: Mapping[str, Any], layout: Layout | None) -> Rendered:
        data = variables if type(variables) is dict else dict(variables)
        compiled = self._get("template", source)
        assert compiled.subject is not None
        subject = " ".join(compiled.subject.render(data).split())
        html = compiled.html.render(data)
        text = None if compiled.text is None else compiled.text.render(data)
        if layout is not None:
            wrapped, text = self._wrap(source, compiled, layout, data, html, text)
            return Rendered(subject=subject, html=wrapped, text=text)
        return Rendered(
            subject=subject, html=html, text=_text_of(compiled.derived, data, html) if text is None else text
        )

    def _wrap(
        self,
        source: Source,
        compiled: _Compiled,
        layout: Layout,
        data: dict[str, Any],
        html: str,
        text: str | None,
    ) -> tuple[str, str]:
        frame = self._get("layout", layout)
        wrapped = frame.html.render({**data, "content": Markup(html)})
        if frame.text is not None:
            body = _text_of(compiled.derived, data, html) if text is None else text
            return wrapped, frame.text.render({**data, "content": body})
        if text is None:
            return wrapped, _text_of(self._pair(source, compiled, layout, frame), data, wrapped)
        around = None if frame.derived is None else frame.derived.render(data)
        if around is None:
            around = html_to_text(frame.html.render({**data, "content": Markup(_CONTENT_MARK)}))
        return wrapped, around.replace(_CONTENT_MARK, text.strip()) if _CONTENT_MARK in around else text

    def _pair(
        self, source: Source, compiled: _Compiled, layout: Layout, frame: _Compiled
    ) -> textpart.DerivedText | None:
        """The text derived from the layout's HTML around the template's, once per pair of revisions."""
        key = (source.key, source.revision, layout.key, layout.revision)
        with self._lock:
            entry = self._pairs.get(key)
        if entry is not None and entry[0] is compiled and entry[1] is frame:
            return entry[2]
        with limits.unmetered():
            derived = textpart.derive_text(textpart.with_content(frame.parts, compiled.parts), _TEXT_ENV)
        with self._lock:
            self._pairs[key] = (compiled, frame, derived)
            while len(self._pairs) > self._max_entries:
                self._pairs.popitem(last=False)
        return derived

    def _get(self, kind: str, item: Source | Layout) -> _Compiled:
        cache_key = (kind, item.key, item.revision)
        with self._lock:
            compiled = self._cache.get(cache_key)
            if compiled is not None:
                self._cache.move_to_end(cache_key)
        subject = item.subject if isinstance(item, Source) else None
        if compiled is not None and compiled.sources == (subject, item.html, item.text):
            return compiled
        with limits.unmetered():
            compiled = _compile(kind, item)
        with self._lock:
            self._cache[cache_key] = compiled
            while len(self._cache) > self._max_entries:
                self._cache.popitem(last=False)
        return compiled


def check(source: Source) -> None:
    """Parse every part of ``source``; raise `TemplateError` naming the part and line of a syntax error.

    Unknown filters are reported too (Liquid itself only notices them when rendering), and so are loops
    over literal ranges too long in any branch (`limits.check_loops`). Then every part is rendered once
    with all variables empty (lenient: undefined is empty): going over a limit there raises
    `TemplateTooCostly`, since it will with any data; any other error is left to the real render.
    """
    compiled = _compile("template", source)
    for part, text in ((compiled.subject, source.subject), (compiled.html, source.html)):
        _check_filters(part, text)
    _check_filters(compiled.text, source.text)
    name = f"template {source.key!r}"
    parts: list[tuple[Environment, str | None, str]] = [
        (_TRIAL_TEXT_ENV, source.subject, "subject"),
        (_TRIAL_HTML_ENV, source.html, "html"),
        (_TRIAL_TEXT_ENV, source.text, "text"),
    ]
    _trial([(env, body, f"{name} {what}") for env, body, what in parts if body])


def _trial(parts: Sequence[tuple[Environment, str, str]]) -> None:
    """`check`'s cost checks of ``(environment, source, label)``: literal loops in every branch, then one
    lenient render of each with empty variables, all under one budget (as for an email)."""
    trials = [(_parse(env, source, label), label) for env, source, label in parts]
    for template, label in trials:
        try:
            limits.check_loops(template)
        except ResourceLimitError as err:
            raise TemplateTooCostly(f"{label}: {err.message}") from err
    with limits.metered():
        for template, label in trials:
            try:
                _render(template, {}, label)
            except TemplateTooCostly:
                raise
            except TemplateError:
                pass  # decided by the real render, with real data


def _check_filters(part: _Part | None, text: str | None) -> None:
    if part is None or text is None:
        return
    known = part.template.env.filters
    for name, spans in part.template.analyze().filters.items():
        if name not in known:
            line = text.count("\n", 0, spans[0].index) + 1
            raise TemplateError(f"{part.label}, line {line}: unknown filter {name!r}")


@dataclass(frozen=True)
class Snippet:
    """One Liquid string rendered as plain text (never HTML-escaped), as strictly and under the same
    environment as an email's text part: the values of a journey webhook's ``data``."""

    template: BoundTemplate
    label: str

    def render(self, variables: Mapping[str, Any]) -> str:
        """Raises `MissingVariable` or `TemplateError` naming ``label``."""
        return _render(self.template, variables, self.label)


def snippet(source: str, label: str) -> Snippet:
    """Compile ``source``; raise `TemplateError` naming ``label`` and the line of a syntax error or of an
    unknown filter."""
    template = _parse(_TEXT_ENV, source, label)
    _check_filters(_Part(template, label, None), source)
    return Snippet(template, label)


def trial_snippets(sources: Sequence[tuple[str, str]]) -> None:
    """Render each ``(source, label)`` once with empty variables, leniently and under one budget, as
    `check` does for a template's parts: raises `TemplateTooCostly` for snippets that go over a limit
    whatever the data (a missing variable is decided by the real render)."""
    _trial([(_TRIAL_TEXT_ENV, source, label) for source, label in sources])


def compile_mjml(source: str) -> str:
    """Compile MJML markup to HTML. Liquid tags in text and attributes pass through unchanged."""
    try:
        html: str = mjml2html(source, disable_comments=True)
    except (ValueError, TypeError) as err:
        raise TemplateError(f"invalid MJML: {err}") from err
    return html
