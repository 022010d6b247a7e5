"""Consultation booking end to end on both databases: consultants, slots in the asker's zone, requests
(one booking per slot, also under concurrent requests), signed links, ICS invitations, ICS feeds from a
real local HTTP server, and Calendly's bookings."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import icalendar
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.crm.models import crm_activities
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.scheduling import service as scheduling
from leadflow.scheduling.models import scheduling_bookings, scheduling_busy
from leadflow.scheduling.schemas import ConsultationRequest
from tests.integration.test_inbound_webhooks import CALENDLY_KEY, calendly_post, invitee
from tests.peers.http_receiver import HttpReceiver, Reply
from tests.support.http import bearer

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")
CONSULTATION = events.c.event.like("consultation%")
HOURS = {day: [["09:00", "12:00"]] for day in ("mon", "tue", "wed", "thu", "fri")}


@pytest.fixture
def api(client: TestClient, admin_key: str) -> TestClient:
    client.headers.update(bearer(admin_key))
    return client


def consultant(api: TestClient, email: str = "grace@example.com", **profile: Any) -> str:
    user = api.post(
        "/api/v1/crm/users",
        json={"name": "Grace", "email": email, "role": "sales", "timezone": "Europe/Berlin"},
    )
    assert user.status_code == 201, user.text
    body = {
        "user_id": user.json()["id"],
        "services": [{"name": "Intro", "duration": 30}, {"name": "Consultation", "duration": 30}],
        "availability": HOURS,
        "slot_minutes": 30,
        "min_notice": 60,
        **profile,
    }
    answer = api.post("/api/v1/calendar/consultants", json=body)
    assert answer.status_code == 201, answer.text
    return str(user.json()["id"])


def slots(api: TestClient, start: str, end: str, tz: str = "Europe/Berlin") -> list[str]:
    answer = api.get(
        "/api/v1/calendar/available-slots", params={"service": "Intro", "from": start, "to": end, "tz": tz}
    )
    assert answer.status_code == 200, answer.text
    return [slot["start"] for slot in answer.json()["data"]]


def ask(api: TestClient, email: str, *times: str, tz: str = "Europe/Berlin") -> dict[str, Any]:
    body = {"email": email, "name": "Ada", "service": "Intro", "preferred_times": list(times), "tz": tz}
    answer = api.post("/api/v1/calendar/consultation-requests", json=body)
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def invitation(api: TestClient, url: str) -> Any:
    answer = api.get("/" + url.split("/", 3)[3])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/calendar")
    calendar = icalendar.Calendar.from_ical(answer.content)
    return calendar, calendar.walk("VEVENT")[0]


def test_slots_requests_links_and_invitations(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    consultant(api, buffer_before=15)
    tuesday = ("2026-03-03T00:00:00+01:00", "2026-03-04T00:00:00+01:00")
    free = slots(api, *tuesday, tz="America/New_York")
    assert free[:2] == ["2026-03-03T03:00:00-05:00", "2026-03-03T03:30:00-05:00"]
    assert len(free) == 6
    booked = ask(api, "ada@example.com", "2026-03-03T08:00:00", "2026-03-03T09:00:00")  # 08:00 is closed
    assert booked["status"] == "booked"
    assert booked["booking"]["start"] == "2026-03-03T08:00:00Z"
    # the slot is taken, the next one too (15 minutes before it reach the booking)
    assert slots(api, *tuesday)[:2] == ["2026-03-03T10:00:00+01:00", "2026-03-03T10:30:00+01:00"]
    pending = ask(api, "bob@example.com", "2026-03-03T09:00:00+01:00")
    assert pending["status"] == "pending"
    assert pending["booking"] is None
    processor.drain()
    with ctx.db.read() as conn:
        kinds = conn.execute(sa.select(crm_activities.c.kind, crm_activities.c.owner_id)).all()
        named = [
            r.event for r in conn.execute(sa.select(events.c.event).where(CONSULTATION).order_by(events.c.id))
        ]
    assert [k for k, _ in kinds] == ["meeting"]
    assert named == ["consultation_scheduled", "consultation.requested"]

    # the invitation; GET pages change nothing; a tampered token is refused
    calendar, event = invitation(api, booked["ics_url"])
    assert str(calendar["method"]) == "REQUEST"
    assert int(event["sequence"]) == 0
    uid = str(event["uid"])
    cancel, reschedule = token_of(booked["cancel_url"]), token_of(booked["reschedule_url"])
    page = api.get(f"/calendar/r/{reschedule}")
    assert page.status_code == 200
    assert 'name="start"' in page.text
    assert api.get(f"/calendar/c/{cancel}").status_code == 200
    for bad in (f"/calendar/c/{cancel[:-2]}xx", f"/calendar/r/{reschedule}x", f"/calendar/c/{reschedule}"):
        assert api.get(bad).status_code == 400
        assert api.post(bad, data={"start": "2026-03-04T09:00:00+01:00"}).status_code in (400, 422)
    assert invitation(api, booked["ics_url"])[1]["sequence"] == 0

    moved = api.post(f"/calendar/r/{reschedule}", data={"start": "2026-03-04T09:00:00+01:00"})
    assert moved.status_code == 200, moved.text
    calendar, event = invitation(api, booked["ics_url"])
    assert (str(event["uid"]), int(event["sequence"])) == (uid, 1)
    assert event["dtstart"].dt == datetime(2026, 3, 4, 8, 0, tzinfo=UTC)
    taken = api.post(f"/calendar/r/{reschedule}", data={"start": "2026-03-04T09:10:00+01:00"})
    assert taken.status_code == 409
    assert taken.json()["error"]["code"] == "slot_taken"

    assert api.post(f"/calendar/c/{cancel}").status_code == 200
    calendar, event = invitation(api, booked["ics_url"])
    assert str(calendar["method"]) == "CANCEL"
    assert str(event["status"]) == "CANCELLED"
    assert (str(event["uid"]), int(event["sequence"])) == (uid, 2)
    assert "2026-03-04T09:00:00+01:00" in slots(api, "2026-03-04T00:00:00+01:00", "2026-03-05T00:00:00+01:00")
    processor.drain()
    with ctx.db.read() as conn:
        named = [
            r.event for r in conn.execute(sa.select(events.c.event).where(CONSULTATION).order_by(events.c.id))
        ]
    assert named[-2:] == ["consultation_scheduled", "consultation_canceled"]


def test_bad_input_is_a_4xx(api: TestClient) -> None:
    consultant(api)
    base = {"service": "Intro", "from": "2026-03-03T00:00:00Z", "to": "2026-03-04T00:00:00Z"}
    assert api.get("/api/v1/calendar/available-slots", params={**base, "tz": "Mars/Base"}).status_code == 422
    assert api.get("/api/v1/calendar/available-slots", params={**base, "service": "Nope"}).json()["error"][
        "code"
    ] == ("unknown_service")
    wide = {**base, "to": "2026-09-01T00:00:00Z"}
    assert api.get("/api/v1/calendar/available-slots", params=wide).json()["error"]["code"] == "invalid_range"
    body = {"email": "a@example.com", "service": "Intro", "preferred_times": [], "tz": "UTC"}
    assert api.post("/api/v1/calendar/consultation-requests", json=body).status_code == 422
    hours = {
        "user_id": "x",
        "services": [{"name": "A", "duration": 30}],
        "availability": {"mon": [["10:00", "09:00"]]},
    }
    assert api.post("/api/v1/calendar/consultants", json=hours).status_code == 422
    assert api.get("/api/v1/calendar/consultants/nobody").status_code == 404


def test_concurrent_requests_for_one_slot_book_once(api: TestClient, ctx: AppContext) -> None:
    consultant(api)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def one(email: str) -> None:
        data = ConsultationRequest(
            email=email, service="Intro", preferred_times=[datetime(2026, 3, 3, 8, 0, tzinfo=UTC)], tz="UTC"
        )
        barrier.wait()
        outcomes.append(scheduling.request(ctx, data).status)

    threads = [threading.Thread(target=one, args=(f"p{i}@example.com",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["booked", "pending"]
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(scheduling_bookings)).scalar_one() == 1


FEED = b"""BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:weekly
DTSTART;TZID=Europe/Berlin:20260303T093000
DTEND;TZID=Europe/Berlin:20260303T110000
RRULE:FREQ=WEEKLY
SUMMARY:Team meeting
END:VEVENT
END:VCALENDAR
"""


def test_ics_feed_busy_times_from_a_local_server(
    api: TestClient, ctx: AppContext, clock: VirtualClock
) -> None:
    with HttpReceiver(default=Reply(200, FEED, {"Content-Type": "text/calendar"})) as server:
        user_id = consultant(api, ics_url=f"{server.url}/grace.ics")
        assert scheduling.refresh_feeds(ctx) == 1
        assert scheduling.refresh_feeds(ctx) == 0  # fresh for 15 minutes
    with ctx.db.read() as conn:
        busy = conn.execute(
            sa.select(scheduling_busy.c.starts_at).order_by(scheduling_busy.c.starts_at)
        ).all()
    assert busy[0].starts_at == datetime(2026, 3, 3, 8, 30, tzinfo=UTC)
    assert len(busy) == 9  # weekly within the 60-day horizon
    free = slots(api, "2026-03-03T00:00:00+01:00", "2026-03-04T00:00:00+01:00")
    assert free == ["2026-03-03T09:00:00+01:00", "2026-03-03T11:00:00+01:00", "2026-03-03T11:30:00+01:00"]
    # a feed that cannot be read keeps the busy times and says why
    clock.advance(timedelta(hours=1))
    assert scheduling.refresh_feeds(ctx) == 1  # the server is gone
    profile = api.get(f"/api/v1/calendar/consultants/{user_id}").json()
    assert profile["ics_error"]
    assert len(slots(api, "2026-03-03T00:00:00+01:00", "2026-03-04T00:00:00+01:00")) == 3


def test_a_feed_read_from_a_file(api: TestClient, ctx: AppContext, tmp: Any) -> None:
    path = tmp / "grace.ics"
    path.write_bytes(FEED)
    user_id = consultant(api, ics_url=str(path))
    assert api.post(f"/api/v1/calendar/consultants/{user_id}/refresh-feed").json()["ics_error"] is None
    assert len(slots(api, "2026-03-03T00:00:00+01:00", "2026-03-04T00:00:00+01:00")) == 3


def test_calendly_bookings_and_a_reschedule_end_as_one_booking(
    api: TestClient, ctx: AppContext, clock: VirtualClock, processor: EventProcessor
) -> None:
    answer = api.post(
        "/api/v1/webhooks/sources", json={"name": "calendly", "kind": "calendly", "secret": CALENDLY_KEY}
    )
    assert answer.status_code == 201, answer.text
    user_id = consultant(api)
    assert (
        calendly_post(api, clock, invitee("invitee.created", "https://api.calendly.com/i/old")).status_code
        == 200
    )
    processor.drain()
    with ctx.db.read() as conn:
        first = conn.execute(sa.select(scheduling_bookings)).one()
    assert (first.user_id, first.source, first.status) == (user_id, "calendly", "booked")
    assert first.starts_at == datetime(2026, 3, 10, 10, 0, tzinfo=UTC)
    canceled = invitee("invitee.canceled", "https://api.calendly.com/i/old", rescheduled=True)
    created = invitee("invitee.created", "https://api.calendly.com/i/new")
    created["payload"]["old_invitee"] = "https://api.calendly.com/i/old"
    created["payload"]["scheduled_event"]["start_time"] = "2026-03-11T09:00:00Z"
    created["payload"]["scheduled_event"]["end_time"] = "2026-03-11T09:30:00Z"
    clock.advance(timedelta(seconds=5))
    assert calendly_post(api, clock, canceled).status_code == 200
    processor.drain()
    assert calendly_post(api, clock, created).status_code == 200
    processor.drain()
    with ctx.db.read() as conn:
        rows = conn.execute(sa.select(scheduling_bookings)).all()
        meetings = conn.execute(sa.select(sa.func.count()).select_from(crm_activities)).scalar_one()
    assert len(rows) == 1
    row = rows[0]
    assert (row.id, row.status, row.sequence) == (first.id, "booked", 2)
    assert row.external_id == "https://api.calendly.com/i/new"
    assert row.starts_at == datetime(2026, 3, 11, 9, 0, tzinfo=UTC)
    assert meetings == 1
    # a plain cancellation cancels
    clock.advance(timedelta(seconds=5))
    assert (
        calendly_post(api, clock, invitee("invitee.canceled", "https://api.calendly.com/i/new")).status_code
        == 200
    )
    processor.drain()
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(scheduling_bookings.c.status)).scalar_one() == "canceled"


def test_export_then_erasure_of_a_booked_person(
    api: TestClient, ctx: AppContext, processor: EventProcessor
) -> None:
    consultant(api)
    booked = ask(api, "ada@example.com", "2026-03-03T09:00:00+01:00")
    ask(api, "ada@example.com", "2026-03-03T09:00:00+01:00")  # taken: pending
    processor.drain()
    contact_id = booked["booking"]["contact_id"]
    exported = api.get(f"/api/v1/contacts/{contact_id}/export").json()["scheduling"]
    assert [b["id"] for b in exported["bookings"]] == [booked["booking"]["id"]]
    assert sorted(r["status"] for r in exported["requests"]) == ["booked", "pending"]
    assert api.delete(f"/api/v1/contacts/{contact_id}").status_code == 200
    with ctx.db.read() as conn:
        left = conn.execute(sa.select(sa.func.count()).select_from(scheduling_bookings)).scalar_one()
    assert left == 0
    assert api.get(f"/calendar/ics/{token_of(booked['ics_url'])}").status_code == 404
