"""Broadcasts on both databases: the set-based start, the throttle, resuming, cancelling, the frequency cap,
delivery to a real SMTP server, and the HTTP API."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.api.app import create_app
from leadflow.contacts.processor import EventProcessor
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict, Invalid
from leadflow.messaging import templates
from leadflow.messaging.delivery import broadcasts as service
from leadflow.messaging.delivery import outbox
from leadflow.messaging.delivery.broadcasts import BroadcastCreate
from leadflow.messaging.delivery.broadcasts_api import router
from leadflow.messaging.models import broadcasts, messages, suppressions
from leadflow.segments import service as segments
from leadflow.segments.schemas import SegmentCreate
from tests.support.contacts import by_user
from tests.support.events import send
from tests.support.http import bearer

ACTOR = "test"
PRO = {"field": "traits.plan", "op": "eq", "value": "pro"}
MEMBERS = ("p0", "p1", "p2", "p3", "p4")  # pro, with an email address


def _template(ctx: AppContext, key: str = "news", kind: str = "marketing", topic: str | None = None) -> None:
    data = templates.TemplateCreate(
        key=key,
        name=key,
        kind=kind,
        topic=topic,
        subject="News for {{ contact.first_name | default: 'you' }}",
        html="<p>News</p>",
    )
    templates.create(ctx, data, actor=ACTOR)


def _people(ctx: AppContext) -> str:
    """Five pro members with an email, a pro member without one, a free contact; returns the segment."""
    people = [
        {"type": "identify", "userId": u, "traits": {"plan": "pro", "email": f"{u}@example.com"}}
        for u in MEMBERS
    ]
    people.append({"type": "identify", "userId": "nomail", "traits": {"plan": "pro"}})
    people.append(
        {"type": "identify", "userId": "free", "traits": {"plan": "free", "email": "f@example.com"}}
    )
    send(ctx, *people)
    EventProcessor(ctx).drain()
    segment = segments.create(ctx, SegmentCreate(name="Pro", rules=PRO), actor=ACTOR, key="pros")
    assert segments.refresh(ctx, segment.id).members == 6
    _template(ctx)
    return segment.id


def _broadcast(ctx: AppContext, **fields: Any) -> service.Broadcast:
    data = BroadcastCreate(**{"name": "March news", "segment": "pros", "template": "news", **fields})
    created = service.create(ctx, data, actor=ACTOR)
    return service.schedule(ctx, created.id, actor=ACTOR)


def _messages(ctx: AppContext, broadcast_id: str) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        query = (
            sa.select(messages).where(messages.c.broadcast_id == broadcast_id).order_by(messages.c.contact_id)
        )
        return [dict(r._mapping) for r in conn.execute(query)]


def _events(ctx: AppContext, name: str) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        query = sa.select(events).where(events.c.event == name).order_by(events.c.id)
        return [dict(r._mapping) for r in conn.execute(query)]


def _member_ids(ctx: AppContext) -> list[str]:
    return sorted(by_user(ctx, u)["id"] for u in MEMBERS)


def test_start_writes_one_message_per_member_with_an_email_spread_by_the_throttle(
    ctx: AppContext, clock: VirtualClock
) -> None:
    _people(ctx)
    broadcast = _broadcast(ctx, per_minute=2)
    assert (broadcast.status, broadcast.send_at) == ("scheduled", clock.now())
    start = clock.now()
    clock.advance(timedelta(seconds=30))

    assert service.start_due(ctx, limit_rows=2) == 5  # three chunks: 2, 2, 1

    found = _messages(ctx, broadcast.id)
    assert [m["contact_id"] for m in found] == _member_ids(ctx)
    assert {m["key"] for m in found} == {f"b:{broadcast.id}:{c}" for c in _member_ids(ctx)}
    began = start + timedelta(seconds=30)
    assert [m["due_at"] for m in found] == [began + timedelta(minutes=n) for n in (0, 0, 1, 1, 2)]
    assert {(m["status"], m["kind"], m["topic"], m["error"]) for m in found} == {
        ("queued", "marketing", None, None)
    }
    assert all(m["context"] == {"broadcast": {"id": broadcast.id, "name": "March news"}} for m in found)
    assert len({m["id"] for m in found}) == 5
    assert {len(m["id"]) for m in found} == {26}
    with ctx.db.read() as conn:  # the deliverer's query finds the first minute's messages only
        due = sa.select(sa.func.count()).where(messages.c.status == "queued", messages.c.due_at <= began)
        assert conn.execute(due).scalar_one() == 2

    queued = _events(ctx, "leadflow.email_queued")
    assert sorted(e["message_id"] for e in queued) == sorted(f"email:{m['id']}:queued" for m in found)
    first = next(e for e in queued if e["properties"]["message_id"] == found[0]["id"])
    assert first["contact_id"] == found[0]["contact_id"]
    assert first["source"] == "internal"
    assert first["properties"] == {
        "message_id": found[0]["id"],
        "journey_id": None,
        "broadcast_id": broadcast.id,
        "step_id": None,
        "template_id": found[0]["template_id"],
        "kind": "marketing",
    }
    EventProcessor(ctx).drain()  # the pipeline accepts them (the ctx fixture checks none failed)

    view = service.get(ctx, broadcast.id)
    assert (view.status, view.recipients, view.started_at, view.counts) == (
        "sending",
        5,
        began,
        {"queued": 5},
    )
    assert service.start_due(ctx, limit_rows=2) == 0
    assert len(_messages(ctx, broadcast.id)) == 5
    assert len(_events(ctx, "leadflow.email_queued")) == 5


def test_an_interrupted_start_resumes_and_completes_without_duplicates(ctx: AppContext) -> None:
    _people(ctx)
    broadcast = _broadcast(ctx, per_minute=1)
    assert service.start_due(ctx, limit_rows=2) == 5
    before = {m["key"]: m["due_at"] for m in _messages(ctx, broadcast.id)}
    cut = _member_ids(ctx)[1]
    with ctx.db.write() as conn:  # as if it had crashed after its first chunk committed
        lost = sa.select(messages.c.id).where(
            messages.c.broadcast_id == broadcast.id, messages.c.contact_id > cut
        )
        lost_ids = list(conn.execute(lost).scalars())
        conn.execute(events.delete().where(events.c.message_id.in_([f"email:{i}:queued" for i in lost_ids])))
        conn.execute(messages.delete().where(messages.c.id.in_(lost_ids)))
        conn.execute(
            broadcasts.update()
            .where(broadcasts.c.id == broadcast.id)
            .values(status="scheduled", recipients=0)
        )

    assert service.start_due(ctx, limit_rows=2) == 3

    after = _messages(ctx, broadcast.id)
    assert {m["key"]: m["due_at"] for m in after} == before  # same rows, same throttle slots
    assert len(_events(ctx, "leadflow.email_queued")) == 5
    assert (service.get(ctx, broadcast.id).status, service.get(ctx, broadcast.id).recipients) == (
        "sending",
        5,
    )


def test_two_workers_starting_the_same_broadcast_write_each_message_once(ctx: AppContext) -> None:
    _people(ctx)
    broadcast = _broadcast(ctx, per_minute=1)
    with ThreadPoolExecutor(2) as pool:
        written = list(pool.map(lambda _: service.start_due(ctx, limit_rows=1), range(2)))
    assert sum(written) == 5
    assert [m["contact_id"] for m in _messages(ctx, broadcast.id)] == _member_ids(ctx)
    assert len(_events(ctx, "leadflow.email_queued")) == 5
    assert (service.get(ctx, broadcast.id).status, service.get(ctx, broadcast.id).recipients) == (
        "sending",
        5,
    )


def test_cancel_suppresses_every_waiting_message_in_one_go(ctx: AppContext) -> None:
    _people(ctx)
    broadcast = _broadcast(ctx, per_minute=1)
    service.start_due(ctx)
    first, second, *_ = _messages(ctx, broadcast.id)
    with ctx.db.write() as conn:
        conn.execute(messages.update().where(messages.c.id == first["id"]).values(status="sent"))
        conn.execute(messages.update().where(messages.c.id == second["id"]).values(status="deferred"))

    cancelled = service.cancel(ctx, broadcast.id, actor=ACTOR)

    assert cancelled.status == "cancelled"
    assert cancelled.finished_at is not None
    assert cancelled.counts == {"sent": 1, "suppressed": 4}
    found = {m["id"]: m for m in _messages(ctx, broadcast.id)}
    assert found[first["id"]]["error"] is None
    assert {m["error"] for i, m in found.items() if i != first["id"]} == {"broadcast cancelled"}
    suppressed = _events(ctx, "leadflow.email_suppressed")
    assert len(suppressed) == 4
    assert {e["properties"]["reason"] for e in suppressed} == {"broadcast cancelled"}
    with pytest.raises(Conflict):
        service.cancel(ctx, broadcast.id, actor=ACTOR)
    assert service.finish_done(ctx) == 0  # a cancelled broadcast is not "sent"


def test_a_cancelled_or_future_broadcast_is_not_started(ctx: AppContext, clock: VirtualClock) -> None:
    _people(ctx)
    later = _broadcast(ctx, send_at=clock.now() + timedelta(hours=1))
    dropped = _broadcast(ctx)
    service.cancel(ctx, dropped.id, actor=ACTOR)
    assert service.start_due(ctx) == 0
    clock.advance(timedelta(hours=1))
    assert service.start_due(ctx) == 5
    assert [m["due_at"] for m in _messages(ctx, later.id)] == [clock.now()] * 5
    assert _messages(ctx, dropped.id) == []


def test_contacts_over_the_frequency_cap_get_a_suppressed_message(
    ctx: AppContext, clock: VirtualClock
) -> None:
    _people(ctx)
    _template(ctx, "receipt", kind="transactional")
    ids = _member_ids(ctx)
    per_day = ctx.settings.frequency_cap_per_day
    rows = [  # ids[0]: at the daily cap; ids[1]: as many, but two days ago; ids[2]: transactional ones
        *(
            {"key": f"today{n}", "kind": "marketing", "contact_id": ids[0], "template": "news"}
            for n in range(per_day)
        ),
        *(
            {"key": f"t{n}", "kind": "transactional", "contact_id": ids[2], "template": "receipt"}
            for n in range(9)
        ),
    ]
    with ctx.db.write() as conn:
        old = [
            {"key": f"old{n}", "kind": "marketing", "contact_id": ids[1], "template": "news"}
            for n in range(3)
        ]
        outbox.enqueue_many(conn, ctx, old, clock.now() - timedelta(days=2))
        outbox.enqueue_many(conn, ctx, rows, clock.now())
        expected = outbox.over_cap(conn, ctx, ids, clock.now())
    assert expected == {ids[0]}
    broadcast = _broadcast(ctx)

    assert service.start_due(ctx) == 5

    status = {m["contact_id"]: (m["status"], m["error"]) for m in _messages(ctx, broadcast.id)}
    assert status == {
        c: ("suppressed", "frequency_capped") if c in expected else ("queued", None) for c in ids
    }
    (event,) = [e for e in _events(ctx, "leadflow.email_suppressed") if e["contact_id"] == ids[0]]
    assert event["properties"]["reason"] == "frequency_capped"
    assert service.get(ctx, broadcast.id).counts == {"queued": 4, "suppressed": 1}


def test_messages_are_delivered_and_the_broadcast_finishes(ctx: AppContext, clock: VirtualClock) -> None:
    """Suppression is decided at send time, as for journey email: an unsubscribed member's message is
    written, then suppressed by the deliverer."""
    from leadflow.messaging.delivery.deliverer import Deliverer
    from leadflow.messaging.delivery.transport.smtp import SmtpTransport
    from tests.peers.smtp import SmtpPeer

    _people(ctx)
    with ctx.db.write() as conn:
        unsubscribed = {"email": "p4@example.com", "reason": "unsubscribed", "created_at": clock.now()}
        conn.execute(suppressions.insert(), unsubscribed)
    broadcast = _broadcast(ctx)
    assert service.start_due(ctx) == 5
    assert service.finish_done(ctx) == 0
    with SmtpPeer() as peer:
        deliverer = Deliverer(ctx, SmtpTransport.from_url(peer.url, pool_size=1))
        assert deliverer.deliver_due() == 5
        deliverer.close()
        received = peer.wait_for(4)
    assert sorted(r.recipients[0] for r in received) == [f"{u}@example.com" for u in MEMBERS[:4]]
    assert service.finish_done(ctx) == 1
    done = service.get(ctx, broadcast.id)
    assert (done.status, done.counts) == ("sent", {"sent": 4, "suppressed": 1})
    assert done.finished_at == clock.now()


def test_create_checks_its_segment_and_template(ctx: AppContext) -> None:
    segment_id = _people(ctx)
    _template(ctx, "receipt", kind="transactional")
    for fields, code in (
        ({"segment": "nope"}, "unknown_segment"),
        ({"template": "nope"}, "unknown_template"),
        ({"template": "receipt"}, "not_marketing"),
    ):
        with pytest.raises(Invalid) as raised:
            _broadcast(ctx, **fields)
        assert raised.value.code == code
    by_id = service.create(ctx, BroadcastCreate(name="b", segment=segment_id, template="news"), actor=ACTOR)
    assert (by_id.segment_id, by_id.status, by_id.send_at) == (segment_id, "draft", None)
    service.schedule(ctx, by_id.id, actor=ACTOR)
    with pytest.raises(Conflict):
        service.schedule(ctx, by_id.id, actor=ACTOR)


@pytest.fixture
def api(ctx: AppContext, admin_key: str) -> Iterator[TestClient]:
    app = create_app(ctx, run_worker=False)
    app.include_router(router)
    with TestClient(app) as client:
        client.headers.update(bearer(admin_key))
        yield client


def test_the_api_round_trip(api: TestClient, ctx: AppContext, make_key: Any) -> None:
    _people(ctx)
    body = {"name": "March news", "segment": "pros", "template": "news", "per_minute": 100}
    created = api.post("/api/v1/broadcasts", json=body)
    assert created.status_code == 201, created.text
    broadcast = created.json()
    assert (broadcast["status"], broadcast["per_minute"], broadcast["counts"]) == ("draft", 100, {})
    second = api.post("/api/v1/broadcasts", json={**body, "name": "April news"}).json()

    page = api.get("/api/v1/broadcasts", params={"limit": 1}).json()
    rest = api.get("/api/v1/broadcasts", params={"cursor": page["next_cursor"]}).json()
    assert [b["id"] for b in page["data"] + rest["data"]] == [broadcast["id"], second["id"]]
    assert rest["next_cursor"] is None

    scheduled = api.post(f"/api/v1/broadcasts/{broadcast['id']}/schedule")
    assert scheduled.status_code == 200
    assert scheduled.json()["status"] == "scheduled"
    service.start_due(ctx)
    fetched = api.get(f"/api/v1/broadcasts/{broadcast['id']}").json()
    assert (fetched["status"], fetched["recipients"], fetched["counts"]) == ("sending", 5, {"queued": 5})
    cancelled = api.post(f"/api/v1/broadcasts/{broadcast['id']}/cancel").json()
    assert (cancelled["status"], cancelled["counts"]) == ("cancelled", {"suppressed": 5})

    assert api.post(f"/api/v1/broadcasts/{broadcast['id']}/schedule").status_code == 409
    assert api.get("/api/v1/broadcasts/nope").status_code == 404
    assert api.post("/api/v1/broadcasts", json={**body, "per_minute": 0}).status_code == 422
    assert api.post("/api/v1/broadcasts", json={**body, "segment": "nope"}).status_code == 422
    reader = bearer(make_key("read"))
    assert api.get("/api/v1/broadcasts", headers=reader).status_code == 200
    assert api.post(f"/api/v1/broadcasts/{second['id']}/cancel", headers=reader).status_code == 403


def test_a_big_start_refreshes_the_planner_statistics_of_messages(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without fresh statistics PostgreSQL sorts every queued row on each claim (see kernel.db.analyze);
    SQLite's planner reads the partial index for the claim whatever it knows."""
    monkeypatch.setattr(service, "ANALYZE_AFTER_ROWS", 2)
    _people(ctx)
    _broadcast(ctx)
    if ctx.db.is_sqlite:
        assert service.start_due(ctx) == 5
        with ctx.db.read() as conn:
            plan = conn.exec_driver_sql(
                "EXPLAIN QUERY PLAN SELECT id FROM messages WHERE status IN ('queued', 'deferred')"
                " AND due_at <= '2100-01-01' ORDER BY due_at LIMIT 500"
            ).all()
        assert any("ix_messages_due" in str(row[-1]) for row in plan), plan
        return
    with ctx.db.write() as conn:  # forget whatever an earlier analysis counted
        conn.exec_driver_sql("UPDATE pg_class SET reltuples = -1 WHERE relname = 'messages'")
    written = service.start_due(ctx)
    with ctx.db.read() as conn:
        estimate = conn.exec_driver_sql("SELECT reltuples FROM pg_class WHERE relname = 'messages'").scalar()
        total = conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one()
    assert written == 5
    assert estimate == total


def _blocked(ctx: AppContext) -> bool:
    """Some other session waits for a row lock."""
    with ctx.db.read() as conn:
        found = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
        ).scalar_one()
    return bool(found)


def test_cancel_locks_messages_in_the_order_a_deliverer_does(ctx: AppContext) -> None:
    """A deliverer recording outcomes locks its messages in id order; a cancel that locked them in
    storage order could hold a later one while waiting for an earlier one the deliverer holds, and the
    deliverer then wait for the later one: a deadlock. Here the earliest message's row is stored last
    (it was updated), a "deliverer" holds it, and asks for the latest while the cancel waits."""
    if ctx.db.dialect != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    _people(ctx)
    broadcast = _broadcast(ctx, per_minute=1000)
    service.start_due(ctx)
    found = sorted(_messages(ctx, broadcast.id), key=lambda m: m["id"])
    ids = [m["id"] for m in found]
    with ctx.db.write() as conn:  # a new row version (an indexed column changed): now stored last
        later = found[0]["due_at"] + timedelta(seconds=1)
        conn.execute(messages.update().where(messages.c.id == ids[0]).values(due_at=later))
    engine = sa.create_engine(ctx.settings.database_url)
    try:
        with engine.connect() as deliverer, ThreadPoolExecutor(1) as pool:
            deliverer.exec_driver_sql("SET lock_timeout = '5s'")
            lock = sa.select(messages.c.id).with_for_update()
            deliverer.execute(lock.where(messages.c.id == ids[0])).one()
            cancelling = pool.submit(service.cancel, ctx, broadcast.id, actor=ACTOR)
            for _ in range(200):
                if _blocked(ctx):
                    break
                time.sleep(0.01)
            assert _blocked(ctx)
            deliverer.execute(lock.where(messages.c.id == ids[-1])).one()  # a deadlock raises here
            deliverer.execute(messages.update().where(messages.c.id == ids[-1]).values(status="sent"))
            deliverer.commit()
            cancelled = cancelling.result(timeout=10)
    finally:
        engine.dispose()
    assert cancelled.counts == {"sent": 1, "suppressed": 4}
    assert {m["id"]: m["status"] for m in _messages(ctx, broadcast.id)}[ids[-1]] == "sent"
