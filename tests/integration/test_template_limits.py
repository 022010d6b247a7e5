"""Hostile templates over HTTP and at send time, on SQLite and PostgreSQL: refused with a 4xx at save
(nothing stored) and at preview; a message whose render goes over a limit is ``failed`` with the reason,
once, and the deliverer carries on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.kernel.context import AppContext
from leadflow.messaging.delivery import outbox
from leadflow.messaging.delivery.deliverer import Deliverer
from leadflow.messaging.delivery.transport.capture import CaptureTransport
from leadflow.messaging.models import email_layouts, email_templates, messages
from tests.support import journeys as j
from tests.support.http import bearer

COSTLY = {
    "loop of millions": "{% for i in (1..5000000) %}x{% endfor %}",
    "nested loops": "{% for i in (1..3000) %}{% for j in (1..3000) %}.{% endfor %}{% endfor %}",
    "output of tens of MB": "{% for i in (1..9000) %}{{ 'x' | append: '" + "y" * 5000 + "' }}{% endfor %}",
    "capture growth": "{% assign s = 'ab' %}{% for i in (1..60) %}{% capture s %}{{ s }}{{ s }}"
    "{% endcapture %}{% endfor %}",
    "assign growth": "{% assign s = 'ab' %}{% for i in (1..60) %}{% assign s = s | append: s %}{% endfor %}",
    "deep nesting": "{% if true %}" * 40 + "{% endif %}" * 40,
    "loop in an untaken branch": "{% if contact.vip %}{% for i in (1..20000) %}x{% endfor %}{% endif %}",
}
LOADING = {"include": "{% include 'footer' %}", "render": "{% render 'footer' %}"}
# Costly only with some data: saved, then refused at preview and failed at send.
BY_DATA = "<p>{% for i in (1..vars.n) %}{% for j in (1..vars.n) %}.{% endfor %}{% endfor %}</p>"


def body(html: str, *, key: str = "hostile") -> dict[str, Any]:
    return {"key": key, "name": key, "kind": "transactional", "subject": "Hi", "html": html}


def count(ctx: AppContext, table: sa.Table) -> int:
    with ctx.db.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def refused(answer: Any, code: str) -> str:
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    return str(error["message"])


@pytest.mark.parametrize("name", sorted(COSTLY))
def test_a_costly_template_is_refused_at_save_and_nothing_is_stored(
    client: TestClient, make_key: Any, ctx: AppContext, name: str
) -> None:
    writer = make_key("write")
    answer = client.post("/api/v1/email/templates", json=body(COSTLY[name]), headers=bearer(writer))
    assert "limit" in refused(answer, "template_limit_exceeded")
    assert count(ctx, email_templates) == 0
    assert client.get("/api/v1/email/templates/hostile", headers=bearer(writer)).status_code == 404


@pytest.mark.parametrize("tag", sorted(LOADING))
def test_include_and_render_are_refused_at_save(
    client: TestClient, make_key: Any, ctx: AppContext, tag: str
) -> None:
    writer = make_key("write")
    answer = client.post("/api/v1/email/templates", json=body(LOADING[tag]), headers=bearer(writer))
    assert f"'{tag}' tag is not available" in refused(answer, "invalid_template")
    assert count(ctx, email_templates) == 0


def test_an_update_and_a_layout_are_checked_the_same_way(
    client: TestClient, make_key: Any, ctx: AppContext
) -> None:
    writer = make_key("write")
    created = client.post("/api/v1/email/templates", json=body("<p>fine</p>"), headers=bearer(writer))
    assert created.status_code == 201
    update = {k: v for k, v in body(COSTLY["capture growth"]).items() if k != "key"}
    answer = client.put("/api/v1/email/templates/hostile", json=update, headers=bearer(writer))
    refused(answer, "template_limit_exceeded")
    kept = client.get("/api/v1/email/templates/hostile", headers=bearer(writer)).json()
    assert (kept["html"], kept["revision"]) == ("<p>fine</p>", 1)

    layout = {"key": "frame", "name": "Frame", "html": "{{ content }}" + COSTLY["loop of millions"]}
    answer = client.put("/api/v1/email/layouts/frame", json=layout, headers=bearer(writer))
    refused(answer, "template_limit_exceeded")
    layout["html"] = "{{ content }}" + LOADING["render"]
    refused(
        client.put("/api/v1/email/layouts/frame", json=layout, headers=bearer(writer)), "invalid_template"
    )
    assert count(ctx, email_layouts) == 0


def test_preview_refuses_what_the_data_makes_costly(
    client: TestClient, make_key: Any, ctx: AppContext
) -> None:
    writer, reader = make_key("write"), make_key("read")
    saved = client.post("/api/v1/email/templates", json=body(BY_DATA), headers=bearer(writer))
    assert saved.status_code == 201, saved.text
    small = client.post(
        "/api/v1/email/templates/hostile/preview", json={"vars": {"n": 3}}, headers=bearer(reader)
    )
    assert small.status_code == 200
    assert small.json()["html"] == "<p>.........</p>"
    answer = client.post(
        "/api/v1/email/templates/hostile/preview", json={"vars": {"n": 5000}}, headers=bearer(reader)
    )
    assert "loop iteration limit" in refused(answer, "template_limit_exceeded")


def test_preview_of_a_stored_template_with_include_is_a_4xx(
    client: TestClient, make_key: Any, ctx: AppContext
) -> None:
    """A template stored before include was refused at save renders as a template error, not a 500."""
    j.template(ctx, "old", kind="transactional", html="<p>old</p>")
    with ctx.db.write() as conn:
        conn.execute(
            email_templates.update().where(email_templates.c.key == "old").values(html=LOADING["include"])
        )
    answer = client.post("/api/v1/email/templates/old/preview", json={}, headers=bearer(make_key("read")))
    assert "'include' tag is not available" in refused(answer, "invalid_template")


def _queue(ctx: AppContext, rows: list[dict[str, Any]]) -> None:
    with ctx.db.write() as conn:
        outbox.enqueue_many(conn, ctx, rows, ctx.clock.now())


def _statuses(ctx: AppContext) -> dict[str, tuple[str, int, str | None]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.select(messages.c.key, messages.c.status, messages.c.attempts, messages.c.error)
        )
        return {r.key: (r.status, r.attempts, r.error) for r in rows}


def test_a_send_over_a_limit_fails_once_with_the_reason(ctx: AppContext) -> None:
    j.template(ctx, "by-data", kind="transactional", html=BY_DATA)
    j.template(ctx, "old", kind="transactional", html="<p>old</p>")
    with ctx.db.write() as conn:
        conn.execute(
            email_templates.update().where(email_templates.c.key == "old").values(html=LOADING["render"])
        )
    row = {"kind": "transactional", "to_address": "ann@example.com"}
    _queue(
        ctx,
        [
            {**row, "key": "big", "template": "by-data", "context": {"vars": {"n": 5000}}},
            {**row, "key": "small", "template": "by-data", "context": {"vars": {"n": 2}}},
            {**row, "key": "old", "template": "old"},
        ],
    )
    capture = CaptureTransport()
    deliverer = Deliverer(ctx, capture)
    assert deliverer.deliver_due() == 3
    found = _statuses(ctx)
    assert found["small"] == ("sent", 1, None)
    status, attempts, error = found["big"]
    assert (status, attempts) == ("failed", 1)
    assert error is not None
    assert "loop iteration limit" in error
    status, attempts, error = found["old"]
    assert (status, attempts) == ("failed", 1)
    assert error is not None
    assert "'render' tag is not available" in error
    assert [m.recipient for m in capture.sent] == ["ann@example.com"]
    ctx.clock.advance(timedelta(days=2))  # type: ignore[attr-defined]
    assert deliverer.deliver_due() == 0  # failed for good: never retried


def test_mjml_that_expands_past_the_html_limit_is_refused(
    client: TestClient, make_key: Any, ctx: AppContext
) -> None:
    section = "<mj-section><mj-column><mj-text>x</mj-text></mj-column></mj-section>"
    mjml = "<mjml><mj-body>" + section * 1000 + "</mj-body></mjml>"  # 68 KB of MJML, 1.3 MB of HTML
    request = {k: v for k, v in body("").items() if k != "html"} | {"mjml": mjml}
    answer = client.post("/api/v1/email/templates", json=request, headers=bearer(make_key("write")))
    assert "characters of HTML" in refused(answer, "template_limit_exceeded")
    assert count(ctx, email_templates) == 0
