"""A contact, as the API shows it, carries its topic preferences; messaging holds them.

Contacts sits below messaging, so it cannot ask: the composition root
(:func:`leadflow.runtime.context.wire`) registers messaging's column with :func:`use_preferences` — a
function of the contact id column that returns the contact's preferences as one JSON column (topic ->
subscribed), so a contact and its preferences are read by one statement. Until then a contact shows no
preferences (the column is ``NULL``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

Column = Callable[[sa.ColumnElement[Any]], sa.ColumnElement[Any]]


def _none(contact_id: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.null()


_column: list[Column] = [_none]
_changed: list[Callable[[], None]] = []


def use_preferences(column: Column) -> None:
    """Read contacts' topic preferences with ``column`` (see the module) from now on."""
    if _column[0] is not column:
        _column[0] = column
        for forget in _changed:
            forget()


def preferences_column(contact_id: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The registered column for ``contact_id``, labelled ``preferences``."""
    return _column[0](contact_id).label("preferences")


def on_change(forget: Callable[[], None]) -> None:
    """Call ``forget`` whenever another column is registered (statements built with the old one go)."""
    _changed.append(forget)
