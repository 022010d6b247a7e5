"""Text parts derived once from Liquid HTML, instead of converting every rendered HTML.

A template (or layout) without tags is literal HTML with output statements in between. `derive_text`
converts that HTML to text once (`htmltext.derive`), with a hole for each distinct output, and compiles
the outputs (`fastpath`) for plain-text rendering; `DerivedText.render` then fills in one message's values.

Only outputs whose value reads the same in the HTML (once unescaped) as in plain text qualify: no filter
but ``default``, and no string literal containing ``& < > " '`` (autoescaping passes literals through as
markup). Values of other types than strings, numbers and booleans make `render` return None, and the
caller converts the rendered HTML as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from liquid import Environment
from liquid.builtin.expressions import FilteredExpression
from liquid.builtin.expressions.primitive import StringLiteral
from liquid.expression import Expression

from leadflow.messaging.build import fastpath, htmltext

__all__ = ["DerivedText", "Parts", "derive_text", "with_content"]

Parts = list[str | Expression]  # literal text and output expressions


class DerivedText:
    """A text part worked out once from Liquid HTML (`htmltext.derive`) and rendered by filling in the
    outputs' plain-text values; `render` is None where the rendered HTML must be converted instead."""

    def __init__(self, outputs: Sequence[fastpath.Output], shape: htmltext.TextShape) -> None:
        self.outputs = tuple(outputs)
        self.shape = shape

    def render(self, data: dict[str, Any]) -> str | None:
        values: list[str] = []
        for output in self.outputs:
            value = output.value(data)
            kind = type(value)
            if kind is str:
                values.append(value)
            elif kind is bool:
                values.append("true" if value else "false")
            elif kind is int or kind is float:
                values.append(str(value))
            else:
                return None
        return self.shape.text(values)


_HTML_SPECIAL = frozenset("&<>\"'")


def _plain_text_safe(expression: Expression) -> bool:
    """Whether the expression's value is the same in the HTML (once unescaped) and as plain text: only the
    ``default`` filter, and no string literal that autoescaping would pass through as markup."""
    if type(expression) is not FilteredExpression:
        return False
    for flt in expression.filters or ():
        if flt.name != "default":
            return False
        for argument in flt.args:
            value = argument.value
            if type(value) is StringLiteral and not _HTML_SPECIAL.isdisjoint(str(value.value)):
                return False
    return True


def derive_text(parts: Parts | None, env: Environment) -> DerivedText | None:
    """The text part of output-only Liquid HTML, worked out once; None where it cannot be."""
    if parts is None:
        return None
    holes: dict[str, int] = {}
    outputs: list[fastpath.Output] = []
    pieces: list[str | int] = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
            continue
        key = str(part)
        if key not in holes:
            output = fastpath.compile_output(env, part, autoescape=False, filters=frozenset({"default"}))
            if output is None or not _plain_text_safe(part):
                return None
            holes[key] = len(outputs)
            outputs.append(output)
        pieces.append(holes[key])
    shape = htmltext.derive(pieces)
    return None if shape is None else DerivedText(outputs, shape)


def _is_content(expression: Expression) -> bool:
    return str(expression) == "content" and type(expression) is FilteredExpression and not expression.filters


def with_content(layout: Parts | None, content: Parts | None) -> Parts | None:
    """The layout's parts with ``{{ content }}`` replaced by ``content``'s (None if it uses content
    otherwise)."""
    if layout is None or content is None:
        return None
    found: Parts = []
    for part in layout:
        if isinstance(part, str) or not _is_content(part):
            if not isinstance(part, str) and "content" in str(part):
                return None
            found.append(part)
        else:
            found.extend(content)
    return found
