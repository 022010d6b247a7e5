"""A form post stores its submission and events without the profile lock; the event processor makes the
contact and :mod:`leadflow.capture.processed` finishes the post (both databases): concurrent posts of one
address make one contact, a double opt-in address is held from the post on, a ``form.submitted`` that
names a submission already linked changes nothing, and a list deleted since the form was saved does not
stop the batch."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.api.app import create_app
from leadflow.capture import service as capture
from leadflow.capture.models import form_submissions
from leadflow.contacts import service as contacts
from leadflow.contacts.models import contact_tags
from leadflow.contacts.models import contacts as contact_rows
from leadflow.events import service as events
from leadflow.events.models import events as event_rows
from leadflow.kernel.context import AppContext
from leadflow.messaging.models import messages, suppressions
from leadflow.segments import service as segments

FORM: dict[str, Any] = {
    "name": "Course news",
    "fields": [
        {"name": "email", "label": "Email", "type": "email", "required": True},
        {"name": "first_name", "label": "First name"},
        {"name": "interest", "label": "Interest"},
    ],
    "tags": ["course-news"],
}


@pytest.fixture
def web(ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, run_worker=False), follow_redirects=False) as client:
        yield client


@pytest.fixture
def auth(make_key: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key('read', 'write')}"}


def _form(web: TestClient, auth: dict[str, str], **changes: Any) -> str:
    answer = web.post("/api/v1/forms", json={**FORM, **changes}, headers=auth)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _rows(ctx: AppContext, table: sa.Table) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(table)))


def test_concurrent_posts_of_one_address_make_one_contact(
    ctx: AppContext, web: TestClient, auth: Any
) -> None:
    members = segments.create(ctx, segments.SegmentCreate(name="Course list", kind="static"), actor="t")
    form_id = _form(web, auth, list_id=members.id)
    errors: list[BaseException] = []

    def post(n: int) -> None:
        values = {
            "email": "Ann@Example.com" if n % 2 else "ann@example.com",
            "first_name": "Ann",
            "interest": n,
        }
        try:
            capture.submit(ctx, form_id, capture.Posted(values=values, ip="192.0.2.1"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert _rows(ctx, contact_rows) == []  # the posts took no profile lock and made no contact
    assert {r.contact_id for r in _rows(ctx, form_submissions)} == {None}
    contacts.EventProcessor(ctx).drain()

    [ann] = _rows(ctx, contact_rows)
    assert (ann.email, ann.first_name) == ("ann@example.com", "Ann")
    assert ann.traits["interest"] in {str(n) for n in range(6)}
    submissions = _rows(ctx, form_submissions)
    assert len(submissions) == 6
    assert {r.contact_id for r in submissions} == {ann.id}
    assert [(r.contact_id, r.tag) for r in _rows(ctx, contact_tags)] == [(ann.id, "course-news")]
    assert [m.contact.id for m in segments.members(ctx, members.id, after=None, limit=10)] == [ann.id]
    submitted = [e for e in _rows(ctx, event_rows) if e.event == "form.submitted"]
    assert len(submitted) == 6
    assert {e.contact_id for e in submitted} == {ann.id}
    assert all(e.processed_at is not None and e.error is None for e in _rows(ctx, event_rows))


def test_double_opt_in_is_held_from_the_post_and_confirmed_after_processing(
    ctx: AppContext, web: TestClient, auth: Any
) -> None:
    form_id = _form(web, auth, double_opt_in=True)
    answer = web.post(
        f"/f/{form_id}", json={"email": "bo@example.com"}, headers={"Accept": "application/json"}
    )
    assert answer.status_code == 200, answer.text
    assert [(r.email, r.reason) for r in _rows(ctx, suppressions)] == [("bo@example.com", "unconfirmed")]
    assert _rows(ctx, messages) == []  # no contact yet: the confirmation goes with the processed post
    contacts.EventProcessor(ctx).drain()
    with ctx.db.read() as conn:
        bo = contacts.contact_id_for_email(conn, "bo@example.com")
    [record] = _rows(ctx, form_submissions)
    assert (record.contact_id, record.status) == (bo, "pending")
    [confirmation] = _rows(ctx, messages)
    assert (confirmation.contact_id, confirmation.key) == (bo, f"form-confirm:{record.id}")
    contacts.EventProcessor(ctx).drain()  # nothing waits, nothing doubles
    assert len(_rows(ctx, messages)) == 1


def test_a_forged_or_repeated_submitted_event_and_a_deleted_list_change_nothing(
    ctx: AppContext, web: TestClient, auth: Any
) -> None:
    gone = segments.create(ctx, segments.SegmentCreate(name="Gone", kind="static"), actor="t")
    form_id = _form(web, auth, list_id=gone.id)
    segments.delete(ctx, gone.id, actor="t")
    accept = {"Accept": "application/json"}
    assert web.post(f"/f/{form_id}", data={"email": "cy@example.com"}, headers=accept).status_code == 200
    contacts.EventProcessor(ctx).drain()
    [record] = _rows(ctx, form_submissions)
    assert record.contact_id is not None
    assert [r.contact_id for r in _rows(ctx, contact_tags)] == [record.contact_id]
    forged = {
        "type": "track",
        "event": "form.submitted",
        "userId": "mallory",
        "messageId": "forged-1",
        "traits": {},
        "properties": {"form_id": form_id, "submission_id": record.id},
    }
    with ctx.db.write() as conn:
        events.insert_tracked(conn, [events.to_row(forged, kind=None, received_at=ctx.clock.now())])
    contacts.EventProcessor(ctx).drain()
    assert _rows(ctx, form_submissions)[0].contact_id == record.contact_id
    assert [r.contact_id for r in _rows(ctx, contact_tags)] == [record.contact_id]
    assert all(e.error is None for e in _rows(ctx, event_rows))


def test_erasure_takes_a_post_not_yet_processed(ctx: AppContext, web: TestClient, auth: Any) -> None:
    dee, _ = contacts.upsert(ctx, contacts.ContactUpsert(email="dee@example.com"), actor="t")
    form_id = _form(web, auth)
    accept = {"Accept": "application/json"}
    assert web.post(f"/f/{form_id}", data={"email": "Dee@Example.com"}, headers=accept).status_code == 200
    assert web.post(f"/f/{form_id}", data={"email": "eve@example.com"}, headers=accept).status_code == 200
    contacts.erase(ctx, dee.id, actor="t")
    assert [r.email for r in _rows(ctx, form_submissions)] == ["eve@example.com"]
