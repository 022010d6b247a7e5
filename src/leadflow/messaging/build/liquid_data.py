"""Liquid in the values of a data object — a journey webhook's ``data`` — with an email's renderer.

Rules:

* Every string, at any depth of objects and lists, is a Liquid template rendered as plain text (no HTML
  escaping); keys, numbers, booleans and null are kept as they are. A rendered value is a string:
  ``{"seats": "{{ event.seats }}"}`` becomes ``{"seats": "3"}``.
* The variables are an email's (docs/journeys.md): ``contact`` (with ``score`` and ``score_band``),
  ``company``, ``event`` (the triggering event's properties), ``vars``, ``journey`` and ``brand`` — but
  no ``links``: unsubscribe links belong to an email.
* Rendering is as strict as an email's, under the same Liquid environment: an undefined or nil variable
  raises :class:`~leadflow.messaging.build.render.MissingVariable` naming it and the value's place
  (``data.seats``); optional values use ``| default:``.
* Limits (:mod:`leadflow.messaging.build.limits`): one contact's data is rendered within one budget, as one
  email is; data that goes over a limit whatever the variables (a loop of a million steps) is refused
  when the journey is saved, as a template is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.messaging.build import limits, profiles, render

__all__ = ["Compiled", "check", "compile_data", "people"]

_MARKS = ("{{", "{%")


class Compiled:
    """A data object whose Liquid strings are compiled once (per batch) and rendered per contact."""

    def __init__(self, data: Any, label: str) -> None:
        self.sources: list[tuple[str, str]] = []
        self._tree = self._compile(data, label)

    def render(self, variables: Mapping[str, Any]) -> Any:
        """The data with every template string rendered, within one budget; raises
        `render.TemplateError` (its `render.MissingVariable`, `render.TemplateTooCostly`) naming the
        value's place."""
        with limits.metered():
            return _render(self._tree, variables)

    def _compile(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            if not any(mark in value for mark in _MARKS):
                return value
            self.sources.append((value, path))
            return render.snippet(value, path)
        if isinstance(value, dict):
            return {key: self._compile(item, f"{path}.{key}") for key, item in value.items()}
        if isinstance(value, list):
            return [self._compile(item, f"{path}[{index}]") for index, item in enumerate(value)]
        return value


def compile_data(data: Any, label: str = "data") -> Compiled:
    """Compile every Liquid string of ``data``; raises `render.TemplateError` naming the place
    (``label.path.to.value``) of a syntax error or unknown filter."""
    return Compiled(data, label)


def check(data: Any, label: str = "data") -> None:
    """What a journey is validated with when saved: :func:`compile_data`, then one lenient render with
    empty variables, which refuses data too costly whatever the variables (`render.TemplateTooCostly`)."""
    render.trial_snippets(compile_data(data, label).sources)


def _render(node: Any, variables: Mapping[str, Any]) -> Any:
    if isinstance(node, render.Snippet):
        return node.render(variables)
    if isinstance(node, dict):
        return {key: _render(item, variables) for key, item in node.items()}
    if isinstance(node, list):
        return [_render(item, variables) for item in node]
    return node


def people(conn: Connection, contact_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``contact`` and ``company`` as an email sees them, for each of ``contact_ids`` that exists: three
    queries however many contacts."""
    found = profiles.load(conn, contact_ids)
    return {contact_id: found.variables(contact_id) for contact_id in found.contacts}
