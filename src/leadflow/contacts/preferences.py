"""A contact, as the API shows it, carries its topic preferences; messaging holds them.

Contacts sits below messaging, so it cannot ask: the composition root
(:func:`leadflow.runtime.context.wire`) registers messaging's reader with :func:`use_preferences`.
Until then a contact shows no preferences. The reader takes the whole list of ids at once (one query
per list of contacts, not one per contact).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.engine import Connection

Reader = Callable[[Connection, Sequence[str]], dict[str, dict[str, bool]]]


def _none(conn: Connection, contact_ids: Sequence[str]) -> dict[str, dict[str, bool]]:
    return {}


_reader: list[Reader] = [_none]


def use_preferences(reader: Reader) -> None:
    """Read contacts' topic preferences with ``reader`` (contact id -> topic -> subscribed) from now on."""
    _reader[0] = reader


def preferences_of(conn: Connection, contact_ids: Sequence[str]) -> dict[str, dict[str, bool]]:
    return _reader[0](conn, contact_ids)
