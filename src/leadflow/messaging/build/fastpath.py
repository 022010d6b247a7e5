"""A compiled fast path for Liquid templates made only of text and output statements.

python-liquid stays the parser and the reference: a parsed template whose nodes are all literal text and
strict output statements ``{{ path }}`` / ``{{ path | filter: args }}`` is turned into a `Program`, a list
of literal chunks and compiled outputs, which renders the same string without building a render context.

Rules (each keeps the result identical to python-liquid's strict render):

* Paths are resolved like ``RenderContext.get``: plain ``dict`` lookups, ``size`` / ``first`` / ``last``
  as Liquid defines them, and *undefined* wherever Liquid says so (a missing key, an item of nil, a string
  or a number). Root names Liquid resolves elsewhere (``partial``, ``now``, ``today``) are not compiled.
* Filters are python-liquid's own functions, called with the same arguments; only those in `FILTERS`,
  which depend on nothing but their arguments and the environment, are compiled.
* Output is stringified by liquid's ``to_liquid_string`` (strings: markupsafe-escaped when autoescaping).
* Whenever the outcome is not a plain success — an undefined or nil value reaching the output, an
  undefined value going into any filter but ``default``, an exception in a filter, a value of a type the
  resolver does not know — the program returns ``None`` and the caller renders with python-liquid, which
  then produces the very same output or error as always. The fast path never raises and never decides
  about errors.
* The limits of `leadflow.messaging.build.limits` hold here too: the filters are the environment's guarded
  ones (a filter over a limit raises, so python-liquid renders and reports it), and a render whose
  output would exceed `limits.OUTPUT_CHARS` characters stops and hands over to python-liquid. A
  template without tags has no loops, so its work is bounded by its length and those limits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import markupsafe
from liquid import BoundTemplate, Environment, Markup, StrictDefaultUndefined
from liquid.builtin.content import ContentNode
from liquid.builtin.expressions import FilteredExpression, Path
from liquid.builtin.expressions.arguments import KeywordArgument, PositionalArgument
from liquid.builtin.expressions.primitive import (
    FalseLiteral,
    FloatLiteral,
    IntegerLiteral,
    Nil,
    StringLiteral,
    TrueLiteral,
)
from liquid.builtin.filters.misc import default as liquid_default
from liquid.builtin.output import OutputNode
from liquid.expression import Expression
from liquid.stringify import to_liquid_string
from markupsafe import escape

from leadflow.messaging.build.limits import OUTPUT_CHARS


def _markup_escape(text: str, /) -> str:
    return str(escape(text))


# markupsafe's own C escaping, which `escape` (what Liquid autoescapes with) wraps in a Markup: the same
# characters, without that object's overhead; `escape` itself where markupsafe has no such function.
_escape: Callable[[str], str] = getattr(markupsafe, "_escape_inner", _markup_escape)


__all__ = ["FILTERS", "Output", "Program", "compile_output", "compile_program", "template_parts"]

# Filters that are pure functions of (value, arguments, environment). Context-aware ones are excluded.
FILTERS = frozenset(
    {"default", "size", "safe", "escape", "escape_once", "upcase", "downcase", "capitalize", "strip"}
    | {"lstrip", "rstrip", "squish", "append", "prepend", "remove", "remove_first", "remove_last"}
    | {"replace", "replace_first", "replace_last", "truncate", "truncatewords", "strip_html"}
    | {"strip_newlines", "newline_to_br", "url_encode", "url_decode", "plus", "minus", "times"}
    | {"divided_by", "modulo", "abs", "at_most", "at_least", "ceil", "floor", "round"}
)
RESERVED_ROOTS = frozenset({"partial", "now", "today"})  # resolved by Liquid outside the render data
_SPECIAL = frozenset({"size", "first", "last"})
_SCALARS = frozenset({str, int, float, bool, type(None)})
_SEQUENCES = frozenset({list, tuple})


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


MISSING: Any = _Sentinel("MISSING")  # Liquid would produce an undefined
UNSUPPORTED: Any = _Sentinel("UNSUPPORTED")  # not reproduced here: fall back to python-liquid
_UNDEFINED = StrictDefaultUndefined("value", token=None)  # what `default` is given for a missing value


# ---------------------------------------------------------------------------------------------- resolving

Getter = Callable[[dict[str, Any]], Any]


def _item(obj: Any, key: str) -> Any:
    """``RenderContext.get_item(obj, key)`` for a string key, as MISSING where Liquid gets undefined."""
    kind = type(obj)
    if kind is dict:
        if key in obj:
            return obj[key]
        if key not in _SPECIAL:
            return MISSING
        if key == "size":
            return len(obj)
        if key == "first" and obj:
            return UNSUPPORTED  # Liquid: the first (key, value) pair
        return MISSING
    if kind in _SEQUENCES:
        if key == "size":
            return len(obj)
        if key in ("first", "last") and obj:
            return obj[0] if key == "first" else obj[-1]
        return MISSING
    if kind in _SCALARS:
        return len(obj) if key == "size" and kind is str else MISSING
    if obj is MISSING or obj is UNSUPPORTED:
        return obj
    return UNSUPPORTED


def _getter(root: str, keys: tuple[str, ...]) -> Getter:
    """Resolves ``root.key1.key2...`` in the render data; specialised for the common short paths."""
    if not keys:
        return lambda data: data.get(root, MISSING)
    if len(keys) == 1:
        (first,) = keys

        def one(data: dict[str, Any]) -> Any:
            obj = data.get(root, MISSING)
            return obj[first] if type(obj) is dict and first in obj else _item(obj, first)

        return one
    if len(keys) == 2:
        first, second = keys

        def two(data: dict[str, Any]) -> Any:
            obj = data.get(root, MISSING)
            obj = obj[first] if type(obj) is dict and first in obj else _item(obj, first)
            return obj[second] if type(obj) is dict and second in obj else _item(obj, second)

        return two

    def many(data: dict[str, Any]) -> Any:
        obj = data.get(root, MISSING)
        for key in keys:
            obj = obj[key] if type(obj) is dict and key in obj else _item(obj, key)
        return obj

    return many


def _path(expression: Expression) -> tuple[str, tuple[str, ...]] | None:
    if type(expression) is not Path or not all(type(segment) is str for segment in expression.path):
        return None
    root, *keys = expression.path
    if not isinstance(root, str) or root in RESERVED_ROOTS:
        return None
    return root, tuple(str(key) for key in keys)


# ----------------------------------------------------------------------------------------------- filters

Step = Callable[[Any, dict[str, Any]], Any]  # (value, data) -> value, or UNSUPPORTED


def _literal(expression: Expression, autoescape: bool) -> Getter | None:
    """A getter for an argument: a literal's value as Liquid evaluates it (string literals are Markup when
    autoescaping), or a path."""
    kind = type(expression)
    if kind is StringLiteral:
        text = expression.value  # type: ignore[attr-defined]
        value = Markup(text) if autoescape else text
    elif kind in (TrueLiteral, FalseLiteral, IntegerLiteral, FloatLiteral):
        value = expression.value  # type: ignore[attr-defined]
    elif kind is Nil:
        value = None
    else:
        path = _path(expression)
        return None if path is None else _getter(*path)
    constant: Getter = lambda data: value  # noqa: E731
    constant.constant = True  # type: ignore[attr-defined]
    return constant


def _default_step(fallback: Any, allow_false: bool) -> Step:
    """python-liquid's ``default`` for the plain types (identical results), its own function otherwise."""
    real = partial(liquid_default, default_=fallback, allow_false=allow_false)

    def step(value: Any, data: dict[str, Any]) -> Any:
        kind = type(value)
        if kind is str or kind is list or kind is dict:
            return value if value else fallback
        if value is None or value is MISSING:
            return fallback
        if kind is int or kind is float:
            return value
        if kind is bool:
            return value if value or allow_false else fallback
        try:
            return real(value)
        except Exception:
            return UNSUPPORTED

    return step


def _call_step(
    func: Callable[..., Any], is_default: bool, args: list[Getter], kwargs: dict[str, Getter]
) -> Step:
    def step(value: Any, data: dict[str, Any]) -> Any:
        if value is MISSING:
            if not is_default:
                return UNSUPPORTED
            value = _UNDEFINED
        positional = [arg(data) for arg in args]
        named = {name: arg(data) for name, arg in kwargs.items()}
        for argument in (*positional, *named.values()):
            if argument is MISSING or argument is UNSUPPORTED:
                return UNSUPPORTED
        try:
            return func(value, *positional, **named)
        except Exception:
            return UNSUPPORTED

    return step


def _filter(env: Environment, flt: Any, autoescape: bool, allowed: frozenset[str]) -> Step | None:
    func = env.filters.get(flt.name)
    if flt.name not in allowed or func is None or getattr(func, "with_context", False):
        return None
    if getattr(func, "with_environment", False):
        func = partial(func, environment=env)
    args: list[Getter] = []
    kwargs: dict[str, Getter] = {}
    for argument in flt.args:
        value = _literal(argument.value, autoescape)
        if value is None:
            return None
        if type(argument) is KeywordArgument:
            kwargs[argument.name] = value
        elif type(argument) is PositionalArgument:
            args.append(value)
        else:
            return None
    getters = (*args, *kwargs.values())
    if (
        func is liquid_default
        and len(args) <= 1
        and set(kwargs) <= {"allow_false"}
        and all(getattr(getter, "constant", False) for getter in getters)
    ):
        fallback = args[0]({}) if args else ""
        return _default_step(fallback, kwargs["allow_false"]({}) is True if kwargs else False)
    return _call_step(func, flt.name == "default", args, kwargs)


# ----------------------------------------------------------------------------------------------- outputs


def _stringify(value: Any, autoescape: bool) -> str | None:
    if value is UNSUPPORTED:
        return None
    try:
        return to_liquid_string(value, autoescape)
    except Exception:  # e.g. an Undefined object inside the data
        return None


class Output:
    """One compiled ``{{ path | filters }}``.

    ``value(data)`` is the value before stringification, or UNSUPPORTED where python-liquid must decide;
    ``render(data)`` the output string, or None.
    """

    __slots__ = ("render", "source", "value")

    def __init__(self, source: str, get: Getter, steps: Sequence[Step], autoescape: bool) -> None:
        self.source = source
        self.value = _valuer(get, tuple(steps))
        value = self.value
        if autoescape:

            def render(data: dict[str, Any]) -> str | None:
                found = value(data)
                return _escape(found) if type(found) is str else _stringify(found, True)

        else:

            def render(data: dict[str, Any]) -> str | None:
                found = value(data)
                return found if type(found) is str else _stringify(found, False)

        self.render = render


def _valuer(get: Getter, steps: tuple[Step, ...]) -> Getter:
    if not steps:

        def plain(data: dict[str, Any]) -> Any:
            value = get(data)
            return UNSUPPORTED if value is None or value is MISSING else value

        return plain

    def filtered(data: dict[str, Any]) -> Any:
        value = get(data)
        for step in steps:
            if value is UNSUPPORTED:
                return value
            value = step(value, data)
        return UNSUPPORTED if value is None or value is MISSING or value is _UNDEFINED else value

    return filtered


def compile_output(
    env: Environment, expression: Expression, *, autoescape: bool, filters: frozenset[str] = FILTERS
) -> Output | None:
    """An `Output` for a strict output statement's expression, or None if it cannot be compiled."""
    if type(expression) is not FilteredExpression:
        return None
    path = _path(expression.left)
    if path is None:
        return None
    steps: list[Step] = []
    for flt in expression.filters or ():
        found = _filter(env, flt, autoescape, filters)
        if found is None:
            return None
        steps.append(found)
    return Output(str(expression), _getter(*path), steps, autoescape)


# ---------------------------------------------------------------------------------------------- programs


class Program:
    """Literal chunks with compiled outputs in between; `render` is None where python-liquid must render."""

    __slots__ = ("chunks", "outputs", "room", "slots")

    def __init__(self, parts: Sequence[str | Output]) -> None:
        self.chunks = ["" if isinstance(part, Output) else part for part in parts]
        self.room = OUTPUT_CHARS - sum(len(chunk) for chunk in self.chunks)  # characters left for outputs
        self.slots = tuple(
            (index, part.render) for index, part in enumerate(parts) if isinstance(part, Output)
        )
        self.outputs = tuple(part for part in parts if isinstance(part, Output))

    def render(self, data: dict[str, Any]) -> str | None:
        chunks = self.chunks.copy()
        room = self.room
        for index, render in self.slots:
            text = render(data)
            if text is None:
                return None
            room -= len(text)
            if room < 0:
                return None  # python-liquid refuses it
            chunks[index] = text
        return "".join(chunks)


def template_parts(template: BoundTemplate, output_class: type[OutputNode]) -> list[str | Expression] | None:
    """The template as literal text and output expressions, or None if it has anything else (tags)."""
    if template.globals or template.matter:
        return None
    parts: list[str | Expression] = []
    for node in template.nodes:
        if type(node) is ContentNode:
            parts.append(node.text)
        elif type(node) is output_class:
            parts.append(node.expression)
        else:
            return None
    return parts


def compile_program(
    template: BoundTemplate, output_class: type[OutputNode], *, autoescape: bool
) -> Program | None:
    """A `Program` equivalent to rendering ``template`` strictly, or None if the template has tags or
    outputs this module does not compile."""
    parts = template_parts(template, output_class)
    if parts is None:
        return None
    compiled: list[str | Output] = []
    for part in parts:
        if isinstance(part, str):
            compiled.append(part)
            continue
        output = compile_output(template.env, part, autoescape=autoescape)
        if output is None:
            return None
        compiled.append(output)
    return Program(compiled)
