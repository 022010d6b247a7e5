"""Liquid in the values of a data object — a journey webhook's ``data`` — with an email's renderer.

Rules:

* Every string, at any depth of objects and lists, is a Liquid template rendered as plain text (no HTML
  escaping); keys, numbers, booleans and null are kept as they are. A rendered value is a string:
  ``{"seats": "{{ event.seats }}"}`` becomes ``{"seats": "3"}``.
* The variables are an email's (docs/journeys.md): ``contact`` (with ``score`` and ``score_band``),
  ``company``, ``event`` (the triggering event's properties), ``vars``, ``journey`` and ``brand`` — but
  no ``links``: unsubscribe links belong to an email.
* Rendering is as strict as an email's, under the same Liquid environment (and so its limits): an
  undefined or nil variable raises :class:`~leadflow.messaging.render.MissingVariable` naming it and the
  value's place (``data.seats``); optional values use ``| default:``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.contacts.models import companies, contacts
from leadflow.messaging import render
from leadflow.messaging.compose import (
    _COMPANY_COLUMNS,
    _CONTACT_COLUMNS,
    _SCORE_COLUMNS,
    _company,
    _person,
    _rows,
)
from leadflow.scoring.models import contact_scores

__all__ = ["Compiled", "check", "compile_data", "people"]

_MARKS = ("{{", "{%")


class Compiled:
    """A data object whose Liquid strings are compiled once (per batch) and rendered per contact."""

    def __init__(self, data: Any, label: str) -> None:
        self._tree = _compile(data, label)

    def render(self, variables: Mapping[str, Any]) -> Any:
        """The data with every template string rendered; raises `render.TemplateError` (or its
        `render.MissingVariable`) naming the value's place."""
        return _render(self._tree, variables)


def compile_data(data: Any, label: str = "data") -> Compiled:
    """Compile every Liquid string of ``data``; raises `render.TemplateError` naming the place
    (``label.path.to.value``) of a syntax error or unknown filter."""
    return Compiled(data, label)


def check(data: Any, label: str = "data") -> None:
    """What a journey is validated with when saved: the same as :func:`compile_data`."""
    compile_data(data, label)


def _compile(value: Any, path: str) -> Any:
    if isinstance(value, str):
        return render.snippet(value, path) if any(mark in value for mark in _MARKS) else value
    if isinstance(value, dict):
        return {key: _compile(item, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_compile(item, f"{path}[{index}]") for index, item in enumerate(value)]
    return value


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
    ids = sorted(set(contact_ids))
    found = {r.id: r for r in _rows(conn, sa.select(*_CONTACT_COLUMNS), contacts.c.id, ids)}
    company_ids = sorted({r.company_id for r in found.values() if r.company_id})
    firms = {r.id: r for r in _rows(conn, sa.select(*_COMPANY_COLUMNS), companies.c.id, company_ids)}
    query = sa.select(*_SCORE_COLUMNS)
    scores = {r.contact_id: r for r in _rows(conn, query, contact_scores.c.contact_id, ids)}
    return {
        contact_id: {
            "contact": _person(row, scores.get(contact_id)),
            "company": _company(firms.get(row.company_id) if row.company_id else None),
        }
        for contact_id, row in found.items()
    }
