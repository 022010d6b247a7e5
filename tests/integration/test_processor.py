"""The processing loop: atomic batches, crash recovery, failing events isolated and recorded."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc

from leadflow.contacts import apply, store
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.context import AppContext
from tests.support.contacts import all_contacts, all_touchpoints
from tests.support.events import send, stored


def _crash(*_: Any, **__: Any) -> None:
    raise sa_exc.OperationalError("INSERT", {}, Exception("server closed the connection unexpectedly"))


def test_a_crash_mid_batch_leaves_nothing_and_a_retry_applies_once(
    ctx: AppContext, processor: EventProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    send(
        ctx,
        {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com"}},
        {"type": "page", "userId": "u1", "properties": {"url": "https://x.test/?utm_source=news"}},
        {"type": "track", "userId": "u2", "event": "E"},
    )
    monkeypatch.setattr(store, "insert_touchpoints", _crash)  # dies after contacts were written
    with pytest.raises(sa_exc.OperationalError):
        processor.process_next()
    assert all_contacts(ctx) == []
    assert all(row["processed_at"] is None for row in stored(ctx))
    monkeypatch.undo()
    assert processor.drain() == 4  # the three events, then the stage change (visitor → lead) they caused
    assert len(all_contacts(ctx)) == 2
    assert len(all_touchpoints(ctx)) == 1
    assert processor.drain() == 0


@pytest.mark.processing_errors
def test_a_failing_event_is_recorded_and_does_not_block_the_others(
    ctx: AppContext, processor: EventProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = apply._apply_one

    def fragile(batch: Any, row: Any, changes: Any) -> Any:
        if row.event == "Poison":
            raise ValueError("cannot apply this one")
        return real(batch, row, changes)

    monkeypatch.setattr(apply, "_apply_one", fragile)
    send(
        ctx,
        *({"type": "track", "userId": f"u{i}", "event": "Poison" if i == 5 else "Fine"} for i in range(12)),
    )
    assert processor.drain() == 12
    rows = stored(ctx)
    failed = [r for r in rows if r["error"]]
    assert [r["event"] for r in failed] == ["Poison"]
    assert "cannot apply this one" in failed[0]["error"]
    assert failed[0]["processed_at"] is not None
    assert all(r["contact_id"] for r in rows if r["event"] == "Fine")
    assert len(all_contacts(ctx)) == 11
    assert ctx.metrics.processing_errors._value.get() == 1


def test_a_processor_that_cannot_take_its_turn_does_nothing(
    ctx: AppContext, processor: EventProcessor
) -> None:
    from leadflow.contacts.writes import processor_lock

    send(ctx, {"type": "track", "userId": "u1", "event": "E"})
    if ctx.db.is_sqlite:  # SQLite's own write lock serialises writers: the locks are no-ops there
        with ctx.db.write() as conn:
            assert processor_lock(conn) is True
        return
    with ctx.db.write() as conn:
        processor_lock(conn)  # another processor is at work
        assert EventProcessor(ctx).process_next() == 0
    assert processor.drain() == 1


@pytest.mark.postgres_only
def test_a_processor_waits_its_turn_behind_profile_writes_instead_of_giving_up(
    ctx: AppContext, processor: EventProcessor
) -> None:
    """A form post or API upsert holds the profile lock for a moment: the processor waits for it (it
    used to give up, and a steady stream of such writes starved it while events piled up)."""
    from leadflow.contacts.service import profile_lock

    send(ctx, {"type": "track", "userId": "u1", "event": "E"})
    handled: list[int] = []
    with ctx.db.write() as conn:
        profile_lock(conn)  # a profile write in progress
        worker = threading.Thread(target=lambda: handled.append(processor.process_next()))
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive()  # waiting, not given up
        assert handled == []
    worker.join(timeout=30)
    assert handled == [1]


def test_internal_events_keep_their_contact(ctx: AppContext, processor: EventProcessor) -> None:
    from leadflow.events import ingest

    send(ctx, {"type": "identify", "userId": "u1"})
    processor.drain()
    contact_id = all_contacts(ctx)[0]["id"]
    row = {
        "message_id": "internal-1",
        "type": "track",
        "event": "leadflow.segment_entered",
        "contact_id": contact_id,
        "timestamp": ctx.clock.now(),
        "received_at": ctx.clock.now(),
        "source": "internal",
    }
    ingest.store(ctx.db, ctx.signals, ctx.metrics, [row])
    assert processor.drain() == 1
    internal = next(r for r in stored(ctx) if r["source"] == "internal")
    assert internal["contact_id"] == contact_id
    assert internal["processed_at"] is not None


def test_a_systemic_failure_halts_processing_instead_of_failing_every_event(
    ctx: AppContext, processor: EventProcessor, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from leadflow.cli import app
    from leadflow.contacts.processor import BREAKER, ProcessingHalted

    def broken(*_: Any) -> Any:
        raise NameError("a bug in the deployed code")

    monkeypatch.setattr(apply, "_apply_one", broken)
    send(ctx, *({"type": "track", "userId": f"u{i}", "event": "E"} for i in range(40)))
    with pytest.raises(ProcessingHalted):
        processor.drain()
    assert sum(1 for r in stored(ctx) if r["error"]) == BREAKER
    assert sum(1 for r in stored(ctx) if r["processed_at"] is None) == 40 - BREAKER
    monkeypatch.undo()
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", ctx.settings.database_url)
    result = CliRunner().invoke(app, ["events", "requeue-failed"])
    assert result.exit_code == 0, result.output
    assert f"requeued {BREAKER} failed event(s)" in result.stdout
    assert processor.drain() == 40
    assert all(r["contact_id"] and not r["error"] for r in stored(ctx))
    assert len(all_contacts(ctx)) == 40
