"""A context's slots: each owner's object made once per context, on first use, and replaceable by a test."""

from __future__ import annotations

import threading
import time
from typing import Any, cast

from leadflow.kernel.context import AppContext, Slot


def _context() -> AppContext:
    nothing = cast(Any, None)  # the slots need none of the context's services
    return AppContext(nothing, nothing, nothing, nothing, nothing, nothing)


def test_a_slot_is_made_on_first_use_and_kept() -> None:
    made: list[AppContext] = []

    def make(ctx: AppContext) -> list[int]:
        made.append(ctx)
        return [len(made)]

    slot: Slot[list[int]] = Slot("test.numbers", make)
    first, second = _context(), _context()
    assert first.get(slot) == [1]
    assert first.get(slot) is first.get(slot)
    assert second.get(slot) == [2]  # one per context
    assert made == [first, second]


def test_a_slot_is_made_once_when_threads_race_for_it() -> None:
    calls: list[int] = []

    def slow(_ctx: AppContext) -> object:
        calls.append(1)
        time.sleep(0.05)
        return object()

    slot: Slot[object] = Slot("test.slow", slow)
    ctx = _context()
    seen: list[object] = []
    threads = [threading.Thread(target=lambda: seen.append(ctx.get(slot))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len({id(value) for value in seen}) == 1


def test_put_replaces_what_the_owner_would_make() -> None:
    slot: Slot[str] = Slot("test.text", lambda _ctx: "made")
    ctx = _context()
    ctx.put(slot, "given")
    assert ctx.get(slot) == "given"
    assert repr(slot) == "Slot('test.text')"


def test_slots_are_keyed_by_owner_not_by_name() -> None:
    one: Slot[str] = Slot("same.name", lambda _ctx: "one")
    other: Slot[str] = Slot("same.name", lambda _ctx: "other")
    ctx = _context()
    assert (ctx.get(one), ctx.get(other)) == ("one", "other")
