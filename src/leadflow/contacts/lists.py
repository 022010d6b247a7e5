"""A CSV import may add its contacts to a static list; lists are segments, which sit above contacts.

So contacts does not call segments: the composition root (:func:`leadflow.runtime.context.wire`)
registers in each context the two things an import needs (:func:`use_static_lists`): a check that
names the list (its id; ``404 segment_not_found``, or ``422 dynamic_segment`` for a segment that
follows rules), and an adder that puts contacts on the list in the caller's transaction (audited as
the list's change) and says how many were not on it yet. Each import chunk adds its contacts in its
own transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy.engine import Connection

from leadflow.kernel.context import AppContext, Slot

Check = Callable[[AppContext, str], str]
Add = Callable[[Connection, AppContext, str, Sequence[str], str], int]


def _unwired_check(ctx: AppContext, list_id: str) -> str:
    raise RuntimeError("static lists are not wired (leadflow.runtime.context.wire)")


def _unwired_add(conn: Connection, ctx: AppContext, list_id: str, ids: Sequence[str], actor: str) -> int:
    raise RuntimeError("static lists are not wired (leadflow.runtime.context.wire)")


@dataclass(frozen=True)
class _Lists:
    check: Check = _unwired_check
    add: Add = _unwired_add


LISTS: Slot[_Lists] = Slot("contacts.static_lists", lambda ctx: _Lists())


def use_static_lists(ctx: AppContext, check: Check, add: Add) -> None:
    """In this context, name and fill static lists with these (see the module)."""
    ctx.put(LISTS, _Lists(check, add))


def static_list(ctx: AppContext, list_id: str) -> str:
    """The id of the static list ``list_id`` names; an error if there is none, or it follows rules."""
    return ctx.get(LISTS).check(ctx, list_id)


def add_to_list(
    conn: Connection, ctx: AppContext, list_id: str, contact_ids: Sequence[str], actor: str
) -> int:
    """Put these contacts on the static list (in ``conn``'s transaction); how many were not on it."""
    return ctx.get(LISTS).add(conn, ctx, list_id, contact_ids, actor)
