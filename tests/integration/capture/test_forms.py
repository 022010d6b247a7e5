"""Hosted forms over HTTP on both databases: definitions, posts (urlencoded and JSON), validation,
honeypot, per-address rate limit, CORS, consent records, UTM touchpoints, double opt-in through the real
composer and deliverer, and erasure."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.api.app import create_app
from leadflow.capture.models import form_submissions, forms
from leadflow.contacts import service as contacts
from leadflow.contacts.models import contact_tags, touchpoints
from leadflow.contacts.models import contacts as contact_rows
from leadflow.contacts.processor import EventProcessor
from leadflow.events.models import events
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.messaging import templates
from leadflow.messaging.delivery import outbox
from leadflow.messaging.delivery.deliverer import Deliverer
from leadflow.messaging.delivery.transport.capture import CaptureTransport
from leadflow.messaging.models import messages, suppressions
from leadflow.privacy import service as privacy
from leadflow.segments import service as segments

SITE = "https://courses.example"
JSON = {"Content-Type": "application/json", "Origin": SITE}
DEFINITION: dict[str, Any] = {
    "name": "Newsletter",
    "fields": [
        {"name": "email", "label": "Email", "type": "email", "required": True},
        {"name": "first_name", "label": "First name", "required": True, "max_length": 40},
        {"name": "interest", "label": "Interest", "type": "select", "options": ["ai", "data"]},
        {"name": "seats", "label": "Seats", "type": "number"},
        {"name": "campaign_code", "label": "Code", "type": "hidden", "value": "spring"},
    ],
    "consent": {"text": "I agree to receive the newsletter."},
    "tags": ["newsletter"],
    "allowed_origins": [SITE],
    "thank_you": "Thanks, see you soon!",
}


@pytest.fixture
def web(ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(create_app(ctx, run_worker=False), follow_redirects=False) as client:
        yield client


@pytest.fixture
def auth(make_key: Callable[..., str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_key('read', 'write')}"}


def _form(web: TestClient, auth: dict[str, str], **changes: Any) -> str:
    answer = web.post("/api/v1/forms", json={**DEFINITION, **changes}, headers=auth)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _process(ctx: AppContext) -> None:
    processor = EventProcessor(ctx)
    while processor.process_next():
        pass


def _rows(ctx: AppContext, table: sa.Table) -> list[Any]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(table)))


def test_definitions_crud_validation_and_snippets(
    web: TestClient, auth: dict[str, str], make_key: Any
) -> None:
    form_id = _form(web, auth)
    shown = web.get(f"/api/v1/forms/{form_id}", headers=auth).json()
    assert shown["consent"]["text"] == DEFINITION["consent"]["text"]
    assert shown["url"].endswith(f"/f/{form_id}")
    assert [f["id"] for f in web.get("/api/v1/forms", headers=auth).json()["data"]] == [form_id]
    patched = web.patch(f"/api/v1/forms/{form_id}", json={"thank_you": "Merci"}, headers=auth)
    assert patched.status_code == 200
    assert patched.json()["thank_you"] == "Merci"
    assert patched.json()["fields"] == shown["fields"]
    snippets = web.get(f"/api/v1/forms/{form_id}/embed", headers=auth).json()
    assert f'data-leadflow-form="{form_id}"' in snippets["script"]
    assert "/embed.js" in snippets["script"]
    assert f'method="post" action="{shown["url"]}"' in snippets["html"]
    assert web.get(f"/f/{form_id}/embed.js").headers["content-type"].startswith("text/javascript")
    assert "<form" in web.get(f"/f/{form_id}/embed.html").text

    bad = {
        "no email": {"fields": [{"name": "name", "label": "Name"}]},
        "select without options": {
            "fields": [*DEFINITION["fields"], {"name": "x", "label": "X", "type": "select"}]
        },
        "pattern": {"fields": [*DEFINITION["fields"], {"name": "x", "label": "X", "pattern": "("}]},
        "reserved": {"fields": [*DEFINITION["fields"], {"name": "utm_source", "label": "S"}]},
        "origin": {"allowed_origins": ["https://site.example/path"]},
        "type": {"fields": [*DEFINITION["fields"], {"name": "x", "label": "X", "type": "file"}]},
    }
    for case, change in bad.items():
        answer = web.post("/api/v1/forms", json={**DEFINITION, **change}, headers=auth)
        assert answer.status_code == 422, case
        assert answer.json()["error"]["code"], case
    assert web.patch(f"/api/v1/forms/{form_id}", json={"fields": []}, headers=auth).status_code == 422
    assert web.post("/api/v1/forms", json={**DEFINITION, "list_id": "nope"}, headers=auth).status_code == 404
    reader = {"Authorization": f"Bearer {make_key('read')}"}
    assert web.post("/api/v1/forms", json=DEFINITION, headers=reader).status_code == 403
    assert web.delete(f"/api/v1/forms/{form_id}", headers=auth).status_code == 204
    assert web.get(f"/api/v1/forms/{form_id}", headers=auth).status_code == 404
    assert web.get(f"/f/{form_id}").status_code == 404


def test_posts_become_contacts_with_consent_utm_and_events(
    ctx: AppContext, web: TestClient, auth: Any
) -> None:
    members = segments.create(ctx, segments.SegmentCreate(name="Newsletter list", kind="static"), actor="t")
    form_id = _form(web, auth, list_id=members.id, redirect_url=f"{SITE}/thanks")
    page = web.get(f"/f/{form_id}?utm_source=linkedin&utm_campaign=spring")
    assert page.status_code == 200
    assert 'name="utm_source" value="linkedin"' in page.text
    assert 'for="lf-first_name"' in page.text
    assert 'aria-hidden="true"' in page.text
    assert 'tabindex="-1"' in page.text
    posted = web.post(
        f"/f/{form_id}",
        data={
            "email": "Ann@Example.com",
            "first_name": "Ann",
            "interest": "ai",
            "seats": "3",
            "consent": "on",
            "utm_source": "linkedin",
            "utm_medium": "social",
            "utm_campaign": "spring",
            "page_url": f"{SITE}/course?utm_source=linkedin",
            "referrer": "https://www.linkedin.com/",
        },
        headers={"Origin": SITE},
    )
    assert posted.status_code == 303
    assert posted.headers["location"] == f"{SITE}/thanks"
    answer = web.post(
        f"/f/{form_id}", json={"email": "bob@example.com", "first_name": "Bob", "consent": True}, headers=JSON
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is True
    assert answer.headers["access-control-allow-origin"] == SITE
    _process(ctx)

    with ctx.db.read() as conn:
        ann = conn.execute(sa.select(contact_rows).where(contact_rows.c.email == "ann@example.com")).one()
    assert ann.first_name == "Ann"
    assert ann.traits["interest"] == "ai"
    assert ann.traits["seats"] == 3
    record = next(r for r in _rows(ctx, form_submissions) if r.email == "ann@example.com")
    assert record.contact_id == ann.id
    assert record.consent_text == DEFINITION["consent"]["text"]
    assert record.consented_at == ctx.clock.now()
    assert record.ip
    assert record.status == "single"
    assert record.utm == {"utm_source": "linkedin", "utm_medium": "social", "utm_campaign": "spring"}
    assert record.data["campaign_code"] == "spring"  # the hidden field's value
    touch = [t for t in _rows(ctx, touchpoints) if t.contact_id == ann.id]
    # the visit the post records and the form.submitted track carrying its campaign (one touch to
    # attribution: two equal touches at one moment count once)
    assert sorted((t.kind, t.source, t.medium, t.campaign) for t in touch) == [
        ("page", "linkedin", "social", "spring"),
        ("track", "linkedin", "social", "spring"),
    ]
    submitted = [e for e in _rows(ctx, events) if e.event == "form.submitted"]
    assert len(submitted) == 2
    assert all(e.contact_id for e in submitted)
    mine = next(e for e in submitted if e.contact_id == ann.id)
    assert mine.properties["form_id"] == form_id
    assert mine.properties["utm"]["utm_source"] == "linkedin"
    assert mine.properties["page_url"] == f"{SITE}/course?utm_source=linkedin"
    assert {r.tag for r in _rows(ctx, contact_tags) if r.contact_id == ann.id} == {"newsletter"}
    assert {m.contact.id for m in segments.members(ctx, members.id, after=None, limit=10)} >= {ann.id}


def test_validation_errors_json_and_browser(ctx: AppContext, web: TestClient, auth: Any) -> None:
    form_id = _form(web, auth)
    bad = {"email": "not-an-email", "first_name": "x" * 41, "interest": "cooking", "seats": "many"}
    answer = web.post(f"/f/{form_id}", json=bad, headers=JSON)
    assert answer.status_code == 422
    fields = answer.json()["error"]["details"]["fields"]
    assert set(fields) == {"email", "first_name", "interest", "seats", "consent"}
    page = web.post(f"/f/{form_id}", data={"email": "ann@example.com", "first_name": ""})
    assert page.status_code == 422
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="lf-first_name-error" role="alert"' in page.text
    assert 'value="ann@example.com"' in page.text
    assert web.post(f"/f/{form_id}", content=b"[1]", headers=JSON).status_code == 422
    assert web.post(f"/f/{form_id}", content=b"{", headers=JSON).status_code == 400
    assert web.post(f"/f/{form_id}", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 422
    assert web.post("/f/nope", json={}, headers=JSON).status_code == 404
    assert _rows(ctx, form_submissions) == []
    assert _rows(ctx, contact_rows) == []


def test_honeypot_pretends_success_and_stores_nothing(ctx: AppContext, web: TestClient, auth: Any) -> None:
    form_id = _form(web, auth)
    data = {"email": "bot@example.com", "first_name": "Bot", "consent": "on", "lf_website": "http://spam"}
    assert web.post(f"/f/{form_id}", data=data).status_code == 200
    assert web.post(f"/f/{form_id}", json=data, headers=JSON).json()["ok"] is True
    assert _rows(ctx, form_submissions) == []
    assert _rows(ctx, contact_rows) == []
    assert _rows(ctx, events) == []
    assert _rows(ctx, forms)[0].spam_count == 2


@pytest.mark.settings(form_rate_per_minute=2)
def test_rate_limit_per_address(ctx: AppContext, web: TestClient, auth: Any, clock: VirtualClock) -> None:
    form_id = _form(web, auth)
    data = {"email": "ann@example.com", "first_name": "Ann", "consent": True}
    assert [web.post(f"/f/{form_id}", json=data, headers=JSON).status_code for _ in range(2)] == [200, 200]
    refused = web.post(f"/f/{form_id}", json=data, headers=JSON)
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["error"]["code"] == "rate_limited"
    assert web.post(f"/f/{form_id}", data={**data, "consent": "on"}).status_code == 429  # the browser too
    clock.advance(timedelta(seconds=31))
    assert web.post(f"/f/{form_id}", json=data, headers=JSON).status_code == 200
    assert len(_rows(ctx, form_submissions)) == 3


def test_cors_preflight_and_origins(web: TestClient, auth: Any) -> None:
    form_id = _form(web, auth)
    ask = {
        "Origin": SITE,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    allowed = web.options(f"/f/{form_id}", headers=ask)
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == SITE
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "content-type" in allowed.headers["access-control-allow-headers"].lower()
    other = web.options(f"/f/{form_id}", headers={**ask, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    data = {"email": "ann@example.com", "first_name": "Ann", "consent": True}
    refused = web.post(f"/f/{form_id}", json=data, headers={**JSON, "Origin": "https://evil.example"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in refused.headers
    assert (
        web.post(f"/f/{form_id}", json=data, headers={"Content-Type": "application/json"}).status_code == 200
    )


def _marketing(ctx: AppContext, contact_id: str, key: str) -> None:
    with ctx.db.write() as conn:
        row = {"key": key, "kind": "marketing", "contact_id": contact_id, "template": "news"}
        assert outbox.enqueue_many(conn, ctx, [row], ctx.clock.now()) == 1


def _status(ctx: AppContext, key: str) -> tuple[str, str | None]:
    with ctx.db.read() as conn:
        found = conn.execute(
            sa.select(messages.c.status, messages.c.error).where(messages.c.key == key)
        ).one()
    return found.status, found.error


def test_double_opt_in(ctx: AppContext, web: TestClient, auth: Any) -> None:
    templates.create(
        ctx,
        templates.TemplateCreate(
            key="news",
            name="News",
            subject="News",
            html='<p>News <a href="{{ links.unsubscribe }}">unsubscribe</a></p>',
        ),
        actor="t",
    )
    form_id = _form(web, auth, double_opt_in=True)
    data = {"email": "ann@example.com", "first_name": "Ann", "consent": True}
    assert web.post(f"/f/{form_id}", json=data, headers=JSON).status_code == 200
    _process(ctx)
    with ctx.db.read() as conn:
        ann = conn.execute(
            sa.select(contact_rows.c.id).where(contact_rows.c.email == "ann@example.com")
        ).scalar_one()
    assert [(r.reason) for r in _rows(ctx, suppressions)] == ["unconfirmed"]
    assert _rows(ctx, form_submissions)[0].status == "pending"
    _marketing(ctx, ann, "before")
    capture = CaptureTransport()
    deliverer = Deliverer(ctx, capture)
    try:
        assert deliverer.deliver_due() == 2
    finally:
        deliverer.close()
    assert _status(ctx, "before") == ("suppressed", "unconfirmed")
    [confirmation] = capture.snapshot()
    assert confirmation.recipient == "ann@example.com"
    body = confirmation.data.decode()
    assert "Please confirm" in body
    link = re.search(r'href="?(http[^"\s>]+/t/c/[^"\s>]+)', body.replace("=\r\n", "").replace("=3D", "="))
    assert link, body
    clicked = web.get(urlsplit(link.group(1)).path)
    assert clicked.status_code in (302, 303, 307)
    confirmation_path = urlsplit(clicked.headers["location"]).path
    opened = web.get(confirmation_path)  # what a mail scanner fetches: it changes nothing
    assert opened.status_code == 200
    assert '<form method="post">' in opened.text
    assert _rows(ctx, form_submissions)[0].status == "pending"
    assert [r.reason for r in _rows(ctx, suppressions)] == ["unconfirmed"]
    confirmed = web.post(confirmation_path)
    assert confirmed.status_code == 200
    assert "confirmed" in confirmed.text
    assert web.post(confirmation_path).status_code == 200  # a second press: the same page
    assert "confirmed" in web.get(confirmation_path).text
    assert _rows(ctx, suppressions) == []
    assert _rows(ctx, form_submissions)[0].status == "confirmed"
    assert [e.event for e in _rows(ctx, events)].count("form.confirmed") == 1
    _marketing(ctx, ann, "after")
    deliverer = Deliverer(ctx, capture)
    try:
        assert deliverer.deliver_due() == 1
    finally:
        deliverer.close()
    assert _status(ctx, "after") == ("sent", None)
    assert web.get("/f/confirm/not-a-token").status_code == 400
    assert web.post("/f/confirm/not-a-token").status_code == 400


def test_export_and_erasure_of_submissions(ctx: AppContext, web: TestClient, auth: Any) -> None:
    form_id = _form(web, auth)
    data = {"email": "ann@example.com", "first_name": "Ann", "consent": True}
    assert web.post(f"/f/{form_id}", json=data, headers=JSON).status_code == 200
    _process(ctx)
    [record] = _rows(ctx, form_submissions)
    exported = privacy.export(ctx, record.contact_id)["form_submissions"]
    assert [(s["id"], s["consent_text"]) for s in exported] == [(record.id, DEFINITION["consent"]["text"])]
    contacts.erase(ctx, record.contact_id, actor="t")
    assert _rows(ctx, form_submissions) == []
