"""The console's email pages on both databases: templates and layouts edited (audited), the preview
rendered for a contact by messaging's renderer (a hostile or unfillable template is a 4xx message), a
test send through the outbox to the transport, the report's numbers equal to the database's with a bot
open apart, who opened and clicked, roles and CSRF."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.analytics import service as analytics
from leadflow.audit.models import audit_log
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import service as crm
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.ids import new_id
from leadflow.messaging import templates
from leadflow.messaging.delivery import broadcasts, outbox
from leadflow.messaging.delivery.deliverer import Deliverer
from leadflow.messaging.delivery.transport.capture import CaptureTransport
from leadflow.messaging.feedback import tracking
from leadflow.messaging.models import messages
from leadflow.segments import service as segments
from tests.integration.web.conftest import sign_in
from tests.support import events as ingest
from tests.support.contacts import by_user
from tests.support.http import bearer

HUMAN = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4"
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
PEOPLE = (("ann", "Ann"), ("bob", "Bob"), ("cy", "Cy"))


@pytest.fixture
def world(ctx: AppContext) -> SimpleNamespace:
    """Three contacts and a template greeting them by name."""
    ingest.send(
        ctx,
        *(
            {"type": "identify", "userId": u, "traits": {"email": f"{u}@example.com", "first_name": name}}
            for u, name in PEOPLE
        ),
    )
    EventProcessor(ctx).drain()
    fields = templates.TemplateCreate(
        key="news",
        name="News",
        subject="News for {{ contact.first_name }}",
        html="<p>Hello {{ contact.first_name }}</p>",
    )
    made = templates.create(ctx, fields, actor="test")
    return SimpleNamespace(template=made, ids={u: by_user(ctx, u)["id"] for u, _ in PEOPLE})


def _admin(client: TestClient, user_of: Callable[..., crm.User], role: str = "admin") -> str:
    user_of(role)
    return sign_in(client, f"{role}@example.com")


def test_the_preview_renders_for_the_chosen_contact_in_a_sandboxed_frame(
    client: TestClient, world: SimpleNamespace, user_of: Callable[..., crm.User]
) -> None:
    _admin(client, user_of, "marketer")
    listing = client.get("/app/email")
    assert listing.status_code == 200
    assert 'data-template="news"' in listing.text
    assert '<a href="/app/email" aria-current="page">Email</a>' in listing.text  # in the menu

    page = client.get("/app/email/templates/news", params={"contact": "bob@example.com"})
    assert page.status_code == 200, page.text
    assert "<dd data-subject>News for Bob</dd>" in page.text
    assert f'data-preview="{world.ids["bob"]}"' in page.text
    assert 'sandbox=""' in page.text
    assert 'src="/app/email/templates/news/preview?contact=bob%40example.com"' in page.text

    frame = client.get("/app/email/templates/news/preview", params={"contact": world.ids["ann"]})
    assert frame.status_code == 200
    assert "<p>Hello Ann</p>" in frame.text
    policy = frame.headers["content-security-policy"]
    assert "sandbox" in policy
    assert "frame-ancestors 'self'" in policy
    assert "script-src" not in policy  # default-src 'none': no script at all

    missing = client.get("/app/email/templates/news", params={"contact": "nobody@example.com"})
    assert missing.status_code == 404
    assert 'data-error="preview"' in missing.text


def test_a_hostile_or_unfillable_template_is_a_4xx_message(
    ctx: AppContext, client: TestClient, world: SimpleNamespace, user_of: Callable[..., crm.User]
) -> None:
    csrf = _admin(client, user_of)
    fields = templates.TemplateFields(
        name="Plan", subject="Your plan", html="<p>{{ contact.traits.plan }}</p>"
    )
    templates.update(ctx, "news", fields, actor="test")
    page = client.get("/app/email/templates/news", params={"contact": "ann@example.com"})
    assert page.status_code == 422
    assert "contact.traits.plan is undefined" in page.text
    assert 'data-error="preview"' in page.text

    draft = {
        "csrf": csrf,
        "contact": "ann@example.com",
        "name": "Bomb",
        "subject": "x",
        "html": "{% for a in (1..100000) %}{% for b in (1..100000) %}{{ a }}{% endfor %}{% endfor %}",
    }
    bomb = client.post("/app/email/templates/news/preview", data=draft)
    assert bomb.status_code == 422
    assert 'data-error="preview"' in bomb.text
    broken = client.post("/app/email/templates/news/preview", data={**draft, "html": "{% if %}"})
    assert broken.status_code == 422
    assert "cannot be rendered" in broken.text
    good = client.post(
        "/app/email/templates/news/preview", data={**draft, "html": "<b>Hi {{ contact.first_name }}</b>"}
    )
    assert good.status_code == 200
    assert "<b>Hi Ann</b>" in good.text
    # saving the bomb is refused with the reason, and nothing changes
    saved = client.post("/app/email/templates/news", data=draft)
    assert saved.status_code == 422
    assert 'data-error="template"' in saved.text
    assert templates.get(ctx, "news").name == "Plan"


def test_editing_saves_a_revision_audited_as_the_user(
    ctx: AppContext, client: TestClient, world: SimpleNamespace, user_of: Callable[..., crm.User]
) -> None:
    csrf = _admin(client, user_of, "marketer")
    form = {
        "csrf": csrf,
        "contact": "cy@example.com",
        "name": "News v2",
        "kind": "marketing",
        "subject": "Hi {{ contact.first_name }}!",
        "html": "<p>New body for {{ contact.first_name }}</p>",
        "text": "",
    }
    answer = client.post("/app/email/templates/news", data=form, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/email/templates/news?contact=cy%40example.com&done=saved"
    saved = templates.get(ctx, "news")
    assert (saved.name, saved.revision, saved.subject) == ("News v2", 2, "Hi {{ contact.first_name }}!")
    page = client.get(answer.headers["location"])
    assert "<dd data-subject>Hi Cy!</dd>" in page.text

    created = client.post(
        "/app/email/templates",
        data={**form, "key": "promo", "name": "Promo"},
        follow_redirects=False,
    )
    assert created.status_code == 303
    again = client.post("/app/email/templates", data={**form, "key": "promo", "name": "Promo"})
    assert again.status_code == 409
    layout = {"csrf": csrf, "key": "plain", "name": "Plain", "html": "<div>{{ content }}</div><p>Footer</p>"}
    assert client.post("/app/email/layouts", data=layout, follow_redirects=False).status_code == 303
    bad = client.post("/app/email/layouts", data={**layout, "html": "<div>no slot</div>"})
    assert bad.status_code == 422
    assert 'data-error="layout"' in bad.text
    client.post("/app/email/templates/news", data={**form, "layout": "plain"})
    frame = client.get("/app/email/templates/news/preview", params={"contact": "cy@example.com"})
    assert "<div><p>New body for Cy</p></div><p>Footer</p>" in frame.text
    with ctx.db.read() as conn:
        rows = conn.execute(sa.select(audit_log.c.action, audit_log.c.actor)).all()
    mine = {
        (r.action, r.actor)
        for r in rows
        if r.actor != "test" and r.action.startswith(("template.", "layout."))
    }
    assert mine == {
        ("template.updated", "user:marketer@example.com"),
        ("template.created", "user:marketer@example.com"),
        ("layout.saved", "user:marketer@example.com"),
    }


def test_a_test_send_goes_through_the_outbox_rendered_for_the_contact(
    ctx: AppContext, client: TestClient, world: SimpleNamespace, user_of: Callable[..., crm.User]
) -> None:
    csrf = _admin(client, user_of, "marketer")
    answer = client.post(
        "/app/email/templates/news/test",
        data={"csrf": csrf, "contact": "ann@example.com", "to": "Tester@Example.com"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    with ctx.db.read() as conn:
        queued = conn.execute(sa.select(messages)).one()
    assert (queued.kind, queued.to_address, queued.contact_id) == (
        "internal",
        "tester@example.com",
        world.ids["ann"],
    )
    assert queued.status == "queued"
    capture = CaptureTransport()
    assert Deliverer(ctx, capture).deliver_due() == 1
    [sent] = capture.snapshot()
    assert sent.recipient == "tester@example.com"
    body = sent.data.decode()
    assert "Subject: News for Ann" in body
    assert "/t/c/" not in body  # not tracked
    bad = client.post("/app/email/templates/news/test", data={"csrf": csrf, "to": "not an address"})
    assert bad.status_code == 422
    assert 'data-error="template"' in bad.text


def _sent(ctx: AppContext, world: SimpleNamespace, who: str, **origin: str) -> str:
    message_id, now = new_id(), ctx.clock.now()
    with ctx.db.write() as conn:
        row = {
            "id": message_id,
            "key": f"n:{who}:{origin.get('journey_id', '')}",
            "kind": "marketing",
            "contact_id": world.ids[who],
        }
        row |= origin
        outbox.enqueue_many(conn, ctx, [{**row, "template": "news"}], now)
        conn.execute(
            messages.update()
            .where(messages.c.id == message_id)
            .values(status="sent", sent_at=now, recipient=f"{who}@example.com")
        )
        outbox.emit(conn, ctx, [({**row, "template_id": world.template.id}, "sent")], now)
    return message_id


def _numbers(html: str) -> dict[str, float]:
    found = re.findall(r'<(?:p class="big"|dd) data-n="(\w+)">([^<]+)<', html)
    return {name: float(value.rstrip("%").replace(",", "")) for name, value in found}


def test_the_report_shows_the_databases_numbers_with_bots_apart_and_who_engaged(
    ctx: AppContext,
    client: TestClient,
    clock: VirtualClock,
    world: SimpleNamespace,
    user_of: Callable[..., crm.User],
    make_key: Callable[..., str],
) -> None:
    sent = {who: _sent(ctx, world, who) for who, _ in PEOPLE}
    clock.advance(timedelta(minutes=5))
    tracking.record_open(ctx, sent["ann"], user_agent=HUMAN, ip="198.51.100.7")
    tracking.record_click(ctx, sent["ann"], "https://example.com/a", user_agent=HUMAN, ip="198.51.100.7")
    tracking.record_open(ctx, sent["bob"], user_agent=GMAIL_PROXY, ip="66.249.84.1")  # a proxy: a bot
    scanner = "Mozilla/5.0 (compatible; Barracuda Sentinel)"
    tracking.record_click(ctx, sent["bob"], "https://example.com/b", user_agent=scanner, ip="203.0.113.9")
    clock.advance(timedelta(minutes=5))
    tracking.record_open(ctx, sent["cy"], user_agent=HUMAN, ip="198.51.100.8")
    EventProcessor(ctx).drain()
    analytics.maintain(ctx, settle=timedelta(0))
    _admin(client, user_of, "viewer")

    path = f"/app/email/reports/template/{world.template.id}"
    page = client.get(path, params={"days": "7"})
    assert page.status_code == 200, page.text
    with ctx.db.read() as conn:
        m = messages.c
        db = conn.execute(
            sa.select(
                sa.func.count(m.sent_at),
                sa.func.count(m.opened_at),
                sa.func.count(m.clicked_at),
                sa.func.sum(sa.case((m.machine_hits > 0, 1), else_=0)),  # one per message, here opens
            ).where(m.template_id == world.template.id)
        ).one()
    shown = _numbers(page.text)
    assert (shown["sent"], shown["opened"], shown["clicked"], shown["machine_opened"]) == tuple(db)
    assert tuple(db) == (3, 2, 1, 1)
    assert (shown["delivered"], shown["bounced"]) == (3, 0)
    assert shown["machine_clicked"] == 1  # bob's scanner: counted apart, not as a click
    link_row = (
        r'<tr data-link="([^"]+)"><td[^>]*>[^<]*</td><td data-n="clicked">(\d+)</td>'
        r'<td class="email-bots" data-n="machine_clicked">(\d+)<'
    )
    links = re.findall(link_row, page.text)
    assert links == [("https://example.com/a", "1", "0"), ("https://example.com/b", "0", "1")]
    api = client.get(
        f"/api/v1/analytics/email/templates/{world.template.id}/links",
        params={"from": "2026-02-24", "to": "2026-03-02"},
        headers=bearer(make_key("read")),
    )
    assert [(x["url"], str(x["clicked"]), str(x["machine_clicked"])) for x in api.json()] == links

    people = re.findall(r'data-contact="(\w+)"', page.text)
    assert people == [world.ids["cy"], world.ids["ann"]]  # latest first; bob's opener was a proxy
    assert f'<a href="/app/contacts/{world.ids["ann"]}">ann@example.com</a>' in page.text
    clicked = client.get(path, params={"days": "7", "who": "clicked"})
    assert re.findall(r'data-contact="(\w+)"', clicked.text) == [world.ids["ann"]]

    listing = client.get("/app/email/reports", params={"by": "template", "days": "7"})
    assert f'data-key="{world.template.id}"' in listing.text
    assert '<td class="email-bots" data-n="machine_opened">1</td>' in listing.text
    assert client.get(path, params={"from": "2026-13-01"}).status_code == 422
    assert client.get(path, params={"cursor": "forged"}).status_code == 400
    assert client.get("/app/email/reports/template/nope").status_code == 404
    assert client.get("/app/email/broadcasts").status_code == 200


def test_roles_and_csrf(
    ctx: AppContext, client: TestClient, world: SimpleNamespace, user_of: Callable[..., crm.User]
) -> None:
    csrf = _admin(client, user_of, "viewer")
    page = client.get("/app/email/templates/news")
    assert page.status_code == 200
    assert 'action="/app/email/templates/news/test"' not in page.text
    assert '<textarea id="t-html"' not in page.text
    form = {"csrf": csrf, "name": "Hacked", "subject": "x", "html": "<p>x</p>"}
    assert client.post("/app/email/templates/news", data=form).status_code == 403
    assert (
        client.post("/app/email/templates/news/test", data={"csrf": csrf, "to": "a@example.com"}).status_code
        == 403
    )
    assert client.get("/app/email/templates/new").status_code == 403
    client.post("/app/logout", data={"csrf": csrf})

    _admin(client, user_of, "sales")
    assert client.get("/app/email").status_code == 403
    assert client.get("/app/email/reports").status_code == 403
    client.cookies.clear()

    _admin(client, user_of, "marketer")
    no_token = client.post("/app/email/templates/news", data={k: v for k, v in form.items() if k != "csrf"})
    assert no_token.status_code == 403
    assert "CSRF" in no_token.text
    assert templates.get(ctx, "news").name == "News"
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(messages)).scalar_one() == 0


def test_a_journey_steps_report_and_its_openers(
    ctx: AppContext,
    client: TestClient,
    clock: VirtualClock,
    world: SimpleNamespace,
    user_of: Callable[..., crm.User],
) -> None:
    step = {"journey_id": "j1", "step_id": "welcome_mail"}
    sent = {who: _sent(ctx, world, who, **step) for who in ("ann", "bob")}
    _sent(ctx, world, "cy")  # the same template outside the journey
    clock.advance(timedelta(minutes=3))
    tracking.record_open(ctx, sent["bob"], user_agent=HUMAN, ip="198.51.100.9")
    EventProcessor(ctx).drain()
    analytics.maintain(ctx, settle=timedelta(0))
    _admin(client, user_of, "marketer")

    listing = client.get("/app/email/reports", params={"by": "step"})
    assert listing.status_code == 200
    assert '<a href="/app/email/reports/step/j1:welcome_mail">j1: welcome_mail</a>' in listing.text
    page = client.get("/app/email/reports/step/j1:welcome_mail")
    assert page.status_code == 200, page.text
    shown = _numbers(page.text)
    assert (shown["sent"], shown["opened"], shown["clicked"]) == (2, 1, 0)
    assert re.findall(r'data-contact="(\w+)"', page.text) == [world.ids["bob"]]
    journey = client.get("/app/email/reports/journey/j1")
    assert _numbers(journey.text)["sent"] == 2
    template = client.get(f"/app/email/reports/template/{world.template.id}")
    assert _numbers(template.text)["sent"] == 3
    assert client.get("/app/email/reports/broadcast/nope").status_code == 404
    assert client.get("/app/email/reports/colour/x").status_code == 404


def test_a_broadcasts_report_starts_on_its_day(
    ctx: AppContext,
    client: TestClient,
    clock: VirtualClock,
    world: SimpleNamespace,
    user_of: Callable[..., crm.User],
) -> None:
    rule = {"field": "first_name", "op": "eq", "value": "Ann"}
    segment = segments.create(ctx, segments.SegmentCreate(name="Ann", rules=rule), actor="test", key="ann")
    assert segments.refresh(ctx, segment.id).members == 1
    made = broadcasts.create(
        ctx, broadcasts.BroadcastCreate(name="March news", segment="ann", template="news"), actor="test"
    )
    broadcasts.schedule(ctx, made.id, actor="test")
    assert broadcasts.start_due(ctx) == 1
    assert Deliverer(ctx, CaptureTransport()).deliver_due() == 1
    clock.advance(timedelta(days=40))  # past the default 30 days: the report still starts on its day
    with ctx.db.read() as conn:
        message_id = conn.execute(
            sa.select(messages.c.id).where(messages.c.broadcast_id == made.id)
        ).scalar_one()
    tracking.record_open(ctx, message_id, user_agent=HUMAN, ip="198.51.100.7")
    EventProcessor(ctx).drain()
    analytics.maintain(ctx, settle=timedelta(0))
    _admin(client, user_of, "marketer")

    listing = client.get("/app/email/broadcasts")
    assert f'<a href="/app/email/reports/broadcast/{made.id}">March news</a>' in listing.text
    page = client.get(f"/app/email/reports/broadcast/{made.id}")
    assert page.status_code == 200, page.text
    assert "<h1>Broadcast March news</h1>" in page.text
    assert 'data-period="2026-03-02/2026-04-11"' in page.text
    shown = _numbers(page.text)
    assert (shown["sent"], shown["delivered"], shown["opened"]) == (1, 1, 1)
    assert re.findall(r'data-contact="(\w+)"', page.text) == [world.ids["ann"]]
