"""A hosted-form post and a capture flow each cost one write transaction, on both databases: a post's
submission and events (its contact is made by the event processor), a flow's contact upsert and
activity together under one wait for the profile lock; a refused post leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.api.app import create_app
from leadflow.capture.models import form_submissions
from leadflow.contacts import service as contacts
from leadflow.contacts.models import contact_tags
from leadflow.crm.models import crm_activities
from leadflow.kernel.context import AppContext

WRITES = ("INSERT", "UPDATE", "DELETE")
FORM: dict[str, Any] = {
    "name": "Newsletter",
    "fields": [
        {"name": "email", "label": "Email", "type": "email", "required": True},
        {"name": "phone", "label": "Phone", "type": "tel"},
    ],
    "tags": ["newsletter"],
    "double_opt_in": True,
}


@pytest.fixture
def web(ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, run_worker=False), follow_redirects=False) as client:
        yield client


@pytest.fixture
def auth(make_key: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key('read', 'write')}"}


class WriteCount:
    """Committed transactions that changed rows, seen through the engine's own events."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.commits = 0
        self.on = False

    def _begin(self, conn: sa.Connection) -> None:
        conn.info["wrote"] = False

    def _execute(self, conn: sa.Connection, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith(WRITES):
            conn.info["wrote"] = True

    def _commit(self, conn: sa.Connection) -> None:
        if self.on and conn.info.pop("wrote", False):
            self.commits += 1

    def __enter__(self) -> WriteCount:
        sa.event.listen(self.engine, "begin", self._begin)
        sa.event.listen(self.engine, "before_cursor_execute", self._execute)
        sa.event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "begin", self._begin)
        sa.event.remove(self.engine, "before_cursor_execute", self._execute)
        sa.event.remove(self.engine, "commit", self._commit)

    def during(self, call: Callable[[], Any]) -> tuple[Any, int]:
        self.commits, self.on = 0, True
        try:
            return call(), self.commits
        finally:
            self.on = False


def _count(ctx: AppContext, table: sa.Table) -> int:
    with ctx.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_post_and_a_capture_are_one_write_each(ctx: AppContext, web: TestClient, auth: Any) -> None:
    answer = web.post("/api/v1/forms", json=FORM, headers=auth)
    assert answer.status_code == 201, answer.text
    path = f"/f/{answer.json()['id']}"
    accept = {"Accept": "application/json"}
    web.post(path, data={"email": "first@example.com"}, headers=accept)  # installs the confirmation email
    with WriteCount(ctx.db.engine) as writes:
        posted, commits = writes.during(
            lambda: web.post(path, data={"email": "Ann@Example.com"}, headers=accept)
        )
        assert posted.status_code < 300, posted.text
        assert commits == 1
        with ctx.db.read() as conn:  # the event processor makes the contact (capture.processed)
            assert contacts.contact_id_for_email(conn, "ann@example.com") is None
        contacts.EventProcessor(ctx).drain()
        with ctx.db.read() as conn:
            ann = contacts.contact_id_for_email(conn, "ann@example.com")
        assert ann is not None
        bad, commits = writes.during(
            lambda: web.post(path, data={"email": "bo@example.com", "phone": "+1 0000"}, headers=accept)
        )
        captured, capture_commits = writes.during(
            lambda: web.post(
                "/api/v1/capture/leads", json={"email": "cat@example.com", "source": "chat"}, headers=auth
            )
        )
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["code"] == "invalid_submission"
    assert set(bad.json()["error"]["details"]["fields"]) == {"phone"}
    assert commits == 0
    with ctx.db.read() as conn:
        assert contacts.contact_id_for_email(conn, "bo@example.com") is None
        submitted = {row.email for row in conn.execute(sa.select(form_submissions.c.email))}
        tagged = {row.contact_id for row in conn.execute(sa.select(contact_tags.c.contact_id))}
    assert submitted == {"first@example.com", "ann@example.com"}
    assert ann in tagged
    assert captured.status_code < 300, captured.text
    assert capture_commits == 1
    assert _count(ctx, crm_activities) == 1
