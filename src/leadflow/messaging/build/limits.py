"""Resource limits for user-written Liquid: no template, however hostile, can exhaust the server.

Templates are written by anyone holding a ``write`` key and previewed by anyone holding ``read``, so a
render is untrusted work. Every email render (subject, HTML, text and layout together) runs against one
`Budget`, and every value the template makes is bounded:

* **Loops**: a ``for``/``tablerow`` whose length, multiplied by the lengths of the loops around it,
  exceeds `LOOP_ITERATIONS` is refused before its first iteration (python-liquid's
  ``loop_iteration_limit``), so ``(1..5000000)`` costs nothing.
* **Steps**: each template node rendered (an output, a tag, a block) is one step; `STEPS` per email.
  This bounds sequential loops, loops in loops and long templates alike.
* **Output**: one part (or one ``capture``) may produce at most `OUTPUT_CHARS` characters.
* **Values**: a filter may neither take nor make a string over `VALUE_CHARS` characters or an array over
  `VALUE_ITEMS` items (an array's strings count towards its characters), nor an integer over `INT_BITS`
  bits; ``replace``, ``join`` and ``split`` are checked *before* they run, as they can multiply sizes.
* **Characters made**: everything written and every filter result count towards `CHARS` per email, so
  captures and assigns cannot churn gigabytes a megabyte at a time.
* **CPU time**: a backstop of `CPU_SECONDS` of the rendering thread's CPU time, checked every few
  steps, for the work the counts above do not see (comparing long strings in conditions).
* **Nesting**: blocks nest at most `BLOCK_NESTING` deep (python-liquid's ``block_nesting_limit``);
  expressions nested deeper than Python's recursion allows are refused as well.
* **Markup**: parsing costs python-liquid a few microseconds per character of markup (what lies between
  ``{{ }}`` and ``{% %}``), so a part may hold at most `MARKUP_CHARS` of it, counted before parsing
  (`check_markup`); the text around it is cheap and only bounded by the API's size limits.

Exceeding any of these raises `TemplateLimitError`, a python-liquid ``ResourceLimitError``, which the
renderer reports as `leadflow.messaging.build.render.TemplateTooCostly`.

This module relies on python-liquid internals (pinned in ``pyproject.toml``): `MeteredContext` counts a
step wherever ``Node.render`` reads ``context.disabled_tags``, which it does for every node it renders,
and `MeteredTemplate` replaces ``BoundTemplate._get_buffer``. ``tests/unit/messaging/test_limits.py``
fails if either stops working.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from io import StringIO
from typing import Any

from liquid import BoundTemplate, Environment, RenderContext
from liquid.ast import Node
from liquid.builtin.expressions import LoopExpression
from liquid.builtin.expressions.primitive import IntegerLiteral, RangeLiteral
from liquid.exceptions import LiquidSyntaxError, ResourceLimitError
from liquid.stream import TokenStream
from liquid.stringify import to_liquid_string
from liquid.tag import Tag
from liquid.token import TOKEN_TAG

__all__ = [
    "BLOCK_NESTING",
    "CHARS",
    "CPU_SECONDS",
    "INT_BITS",
    "LOOP_ITERATIONS",
    "MARKUP_CHARS",
    "OUTPUT_CHARS",
    "STEPS",
    "VALUE_CHARS",
    "VALUE_ITEMS",
    "Budget",
    "LimitedEnvironment",
    "MeteredContext",
    "MeteredTemplate",
    "TemplateLimitError",
    "check_loops",
    "check_markup",
    "metered",
    "unmetered",
]

LOOP_ITERATIONS = 10_000
STEPS = 50_000
OUTPUT_CHARS = 500_000
VALUE_CHARS = 500_000
VALUE_ITEMS = 10_000
CHARS = 20_000_000
INT_BITS = 256
CPU_SECONDS = 0.25
BLOCK_NESTING = 30
MARKUP_CHARS = 40_000
_CLOCK_EVERY = 256  # steps (or 4 KiB units of characters) between two looks at the CPU clock


class TemplateLimitError(ResourceLimitError):
    """A template went over one of this module's limits."""

    def __init__(self, message: str) -> None:
        super().__init__(f"limit exceeded: {message}", token=None)


class Budget:
    """What one email's render may still spend: steps, characters and CPU time (of this thread)."""

    __slots__ = ("chars", "chars_limit", "deadline", "steps", "steps_limit", "ticks")

    def __init__(self, *, steps: int = STEPS, chars: int = CHARS, cpu_seconds: float = CPU_SECONDS) -> None:
        self.steps = 0
        self.chars = 0
        self.ticks = 0
        self.steps_limit = steps
        self.chars_limit = chars
        self.deadline = time.thread_time() + cpu_seconds

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.steps_limit:
            raise TemplateLimitError(f"the template renders more than {self.steps_limit:,} steps")
        if not self.steps % _CLOCK_EVERY:
            self._clock()

    def made(self, count: int) -> None:
        """Count ``count`` characters written or made by a filter."""
        self.chars += count
        if self.chars > self.chars_limit:
            raise TemplateLimitError(f"the template makes more than {self.chars_limit:,} characters")
        self.ticks += 1 + (count >> 12)
        if self.ticks >= _CLOCK_EVERY:
            self.ticks = 0
            self._clock()

    def _clock(self) -> None:
        if time.thread_time() > self.deadline:
            raise TemplateLimitError("the template takes too long to render")


_CURRENT: ContextVar[Budget | None] = ContextVar("leadflow_template_budget", default=None)


@contextmanager
def unmetered() -> Iterator[None]:
    """Work inside (compiling a template on a cache miss) does not count towards the current budget's CPU
    time: whether a render is refused must not depend on whether its template was cached."""
    start = time.thread_time()
    try:
        yield
    finally:
        budget = _CURRENT.get()
        if budget is not None:
            budget.deadline += time.thread_time() - start


@contextmanager
def metered(budget: Budget | None = None) -> Iterator[Budget]:
    """Run the renders inside against one budget (a new one unless given)."""
    found = budget or Budget()
    token = _CURRENT.set(found)
    try:
        yield found
    finally:
        _CURRENT.reset(token)


def check_markup(source: str) -> None:
    """Refuse a source with more than `MARKUP_CHARS` characters of Liquid markup, before parsing it.

    Linear in the source: an opening without its closing counts to the end of the source.
    """
    total, position = 0, source.find("{")
    while position >= 0 and total <= MARKUP_CHARS:
        opener = source[position + 1 : position + 2]
        if opener in ("{", "%"):
            end = source.find("}}" if opener == "{" else "%}", position + 2)
            end = len(source) if end < 0 else end + 2
            total += end - position
            position = source.find("{", end)
        else:
            position = source.find("{", position + 1)
    if total > MARKUP_CHARS:
        raise TemplateLimitError(f"more than {MARKUP_CHARS:,} characters of Liquid markup")


def _literal_length(node: Node) -> int | None:
    """The length of a loop over a range of integer literals (with literal limit/offset), else None."""
    loop = getattr(node, "expression", None)
    if type(loop) is not LoopExpression or type(loop.iterable) is not RangeLiteral:
        return None
    bounds = [loop.iterable.start, loop.iterable.stop, loop.limit, loop.offset]
    values: list[int | None] = []
    for bound in bounds:
        if bound is not None and type(bound) is not IntegerLiteral:
            return None
        values.append(None if bound is None else int(bound.value))
    start, stop, limit, offset = values
    length = max(0, (stop or 0) - (start or 0) + 1 - (offset or 0))
    return length if limit is None else min(length, max(limit, 0))


def check_loops(template: BoundTemplate) -> None:
    """Refuse loops over literal ranges whose lengths, multiplied along any nesting, exceed
    `LOOP_ITERATIONS` — in every branch, taken or not (a render, and `check`'s trial render, only meet
    the branches its data takes; these would be refused whenever reached)."""
    context = RenderContext(template)

    def walk(nodes: Iterable[Node], outer: int) -> None:
        for node in nodes:
            length = _literal_length(node)
            inner = outer if length is None else outer * length
            if inner > LOOP_ITERATIONS:
                raise TemplateLimitError(f"loops of {inner:,} iterations (at most {LOOP_ITERATIONS:,})")
            walk(node.children(context, include_partials=False), inner)

    walk(template.nodes, 1)


# ------------------------------------------------------------------------------------------- rendering


class MeteredBuffer(StringIO):
    """An output buffer of at most `OUTPUT_CHARS` characters, each counted in the budget."""

    def __init__(self, budget: Budget) -> None:
        super().__init__()
        self.budget = budget
        self.size = 0

    def write(self, text: str, /) -> int:
        if text:
            count = len(text)
            self.size += count
            if self.size > OUTPUT_CHARS:
                raise TemplateLimitError(f"the template writes more than {OUTPUT_CHARS:,} characters")
            self.budget.made(count)
        return super().write(text)


# The slot that MeteredContext's property stands in front of.
_DISABLED_TAGS: Any = RenderContext.__dict__["disabled_tags"]


class MeteredContext(RenderContext):
    """A render context that counts one step per node rendered, against the current budget."""

    __slots__ = ("budget",)

    def __init__(self, template: BoundTemplate, **kwargs: Any) -> None:
        self.budget = _CURRENT.get() or Budget()
        super().__init__(template, **kwargs)

    @property
    def disabled_tags(self) -> list[str]:
        """Read by ``Node.render`` before rendering every node: one step."""
        self.budget.step()
        found: list[str] = _DISABLED_TAGS.__get__(self)
        return found

    @disabled_tags.setter
    def disabled_tags(self, value: list[str]) -> None:
        _DISABLED_TAGS.__set__(self, value)

    def get_buffer(self, buf: Any = None) -> StringIO:
        return MeteredBuffer(self.budget)


class MeteredTemplate(BoundTemplate):
    context_class = MeteredContext

    def _get_buffer(self) -> StringIO:
        return MeteredBuffer(_CURRENT.get() or Budget())

    def render(self, *args: Any, **kwargs: Any) -> str:
        if _CURRENT.get() is not None:
            return super().render(*args, **kwargs)
        with metered():  # one budget for the context and the buffer
            return super().render(*args, **kwargs)


# -------------------------------------------------------------------------------------------- filters


def _size(value: Any, cutoff: int) -> int:
    """Characters of a string, or of an array's strings (and items), up to a little over ``cutoff``."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list | tuple):
        total = len(value)
        for item in value:
            if total > cutoff:
                break
            if isinstance(item, str | list | tuple):
                total += _size(item, cutoff - total)
        return total
    return 1


def _check(name: str, value: Any) -> None:
    """A value going into or coming out of filter ``name`` is within bounds (cheap: lengths only)."""
    kind = type(value)
    if kind is int:
        if value.bit_length() > INT_BITS:
            raise TemplateLimitError(f"{name}: a number over {INT_BITS} bits")
    elif isinstance(value, str):
        if len(value) > VALUE_CHARS:
            raise TemplateLimitError(f"{name}: a string over {VALUE_CHARS:,} characters")
    elif isinstance(value, list | tuple | dict | range):
        try:
            length = len(value)
        except OverflowError:
            length = VALUE_ITEMS + 1
        if length > VALUE_ITEMS:
            raise TemplateLimitError(f"{name}: an array over {VALUE_ITEMS:,} items")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else to_liquid_string(value, False)


def _before_replace(value: Any, args: tuple[Any, ...]) -> None:
    if not args:
        return
    text, old = _text(value), _text(args[0])
    new = _text(args[1]) if len(args) > 1 else ""
    if len(text) + text.count(old) * (len(new) - len(old)) > VALUE_CHARS:
        raise TemplateLimitError(f"replace: a string over {VALUE_CHARS:,} characters")


def _before_join(value: Any, args: tuple[Any, ...]) -> None:
    if isinstance(value, list | tuple):
        separator = len(_text(args[0])) if args else 1
        if len(value) * separator + _size(value, VALUE_CHARS) > VALUE_CHARS:
            raise TemplateLimitError(f"join: a string over {VALUE_CHARS:,} characters")


def _before_split(value: Any, args: tuple[Any, ...]) -> None:
    if args and isinstance(value, str):
        separator = _text(args[0])
        parts = len(value) if not separator else value.count(separator)
        if parts + 1 > VALUE_ITEMS:
            raise TemplateLimitError(f"split: an array over {VALUE_ITEMS:,} items")


_BEFORE: Mapping[str, Callable[[Any, tuple[Any, ...]], None]] = {
    "replace": _before_replace,
    "join": _before_join,
    "split": _before_split,
}
UNGUARDED = frozenset({"default", "size", "first", "last"})  # cannot make anything bigger than given


def guard(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with its arguments and result checked, and its result counted in the current budget."""
    before = _BEFORE.get(name)

    @functools.wraps(func)  # keeps with_context / with_environment, which python-liquid reads
    def guarded(value: Any, *args: Any, **kwargs: Any) -> Any:
        _check(name, value)
        for argument in args:
            _check(name, argument)
        if before is not None:
            before(value, args)
        result = func(value, *args, **kwargs)
        _check(name, result)
        budget = _CURRENT.get()
        if budget is not None:
            budget.made(_size(result, VALUE_CHARS))
        return result

    return guarded


# ----------------------------------------------------------------------------------------------- tags


class _Refused(Tag):
    """``include`` and ``render``: leadflow has no template loader (a layout wraps a template)."""

    block = False

    def parse(self, stream: TokenStream) -> Any:
        token = stream.expect(TOKEN_TAG)
        raise LiquidSyntaxError(
            f"the '{token.value}' tag is not available: templates cannot load other templates "
            "(use a layout to share a frame)",
            token=token,
        )


class _RefusedInclude(_Refused):
    name = "include"


class _RefusedRender(_Refused):
    name = "render"


class LimitedEnvironment(Environment):
    """A python-liquid environment with this module's limits: loop and nesting limits, metered
    templates, guarded filters, and ``include`` / ``render`` refused when parsing."""

    loop_iteration_limit = LOOP_ITERATIONS
    block_nesting_limit = BLOCK_NESTING
    template_class = MeteredTemplate

    def setup_tags_and_filters(self, *, extra: bool = False) -> None:
        super().setup_tags_and_filters(extra=extra)
        self.add_tag(_RefusedInclude)
        self.add_tag(_RefusedRender)
        for name, func in list(self.filters.items()):
            if name not in UNGUARDED:
                self.filters[name] = guard(name, func)
