"""The console's contacts pages on both databases: the list filtered by any segment rule (exactly the
contacts the rule matches, also in the CSV), by a segment, a stage, a search; a bad rule is the page
with the reason (422); a contact's page and its edit, tag, export and erase (audited as the user);
roles (viewer reads, sales refused) and CSRF."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from decimal import Decimal

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.contacts import service as contacts
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import deals
from leadflow.crm import service as crm
from leadflow.journeys import service as journeys
from leadflow.kernel.context import AppContext
from leadflow.segments import service as segments
from leadflow.web import contact_detail, contact_pages
from tests.integration.web.conftest import sign_in
from tests.support import journeys as j
from tests.support.contacts import by_user
from tests.support.events import send

MARKETER = "user:marketer@example.com"
PEOPLE = (  # user id, email, plan, first name
    ("u1", "ann@example.com", "pro", "Ann"),
    ("u2", "bob@example.com", "free", "Bob"),
    ("u3", "cat@example.com", "pro", "Cat"),
    ("u4", "dan@example.com", "pro", "Dan"),
)


@pytest.fixture
def people(ctx: AppContext, processor: EventProcessor) -> dict[str, str]:
    send(
        ctx,
        *(
            {"type": "identify", "userId": u, "traits": {"email": e, "plan": p, "firstName": n}}
            for u, e, p, n in PEOPLE
        ),
        {"type": "track", "userId": "u1", "event": "Course Previewed", "properties": {"course": "yoga"}},
        {"type": "track", "userId": "u3", "event": "Course Previewed", "properties": {"course": "yoga"}},
    )
    processor.drain()
    return {e: by_user(ctx, u)["id"] for u, e, _, _ in PEOPLE}


def _shown(html: str) -> list[str]:
    return sorted(re.findall(r'data-contact="([^"]+)"', html))


def _audit(ctx: AppContext, entity_id: str) -> list[tuple[str, str]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT action, actor FROM audit_log WHERE entity_id = :id ORDER BY id"),
            {"id": entity_id},
        )
        return [(r.action, r.actor) for r in rows]


def test_list_filters_by_rule_segment_stage_and_search_with_count_pages_and_csv(
    client: TestClient,
    ctx: AppContext,
    people: dict[str, str],
    user_of: Callable[..., crm.User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user_of("marketer")
    sign_in(client, "marketer@example.com")
    rule = {
        "all": [
            {"field": "traits.plan", "op": "eq", "value": "pro"},
            {
                "not": {
                    "event": "Course Previewed",
                    "where": [{"field": "course", "op": "eq", "value": "yoga"}],
                }
            },
        ]
    }
    page = client.get("/app/contacts", params={"rule": json.dumps(rule)})
    assert page.status_code == 200
    assert _shown(page.text) == ["dan@example.com"]
    assert "data-total>1<" in page.text
    pro = client.get("/app/contacts", params={"rule": '{"field": "traits.plan", "op": "eq", "value": "pro"}'})
    assert _shown(pro.text) == ["ann@example.com", "cat@example.com", "dan@example.com"]
    assert "data-total>3<" in pro.text
    searched = client.get(
        "/app/contacts", params={"q": "CAT", "rule": '{"field": "traits.plan", "op": "eq", "value": "pro"}'}
    )
    assert _shown(searched.text) == ["cat@example.com"]
    assert _shown(client.get("/app/contacts", params={"stage": "visitor"}).text) == []
    assert len(_shown(client.get("/app/contacts", params={"stage": "lead"}).text)) == 4

    listed = segments.create(
        ctx, segments.SegmentCreate.model_validate({"name": "VIP", "kind": "static"}), actor="test"
    )
    segments.change_static(ctx, listed.id, [people["bob@example.com"]], [], actor="test")
    assert _shown(client.get("/app/contacts", params={"segment": listed.id}).text) == ["bob@example.com"]
    inside = json.dumps(
        {"any": [{"segment": listed.id}, {"field": "first_name", "op": "eq", "value": "Ann"}]}
    )
    assert _shown(client.get("/app/contacts", params={"rule": inside}).text) == [
        "ann@example.com",
        "bob@example.com",
    ]

    exported = client.get("/app/contacts.csv", params={"rule": json.dumps(rule)})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [(r["email"], r["id"], json.loads(r["traits"])["plan"]) for r in rows] == [
        ("dan@example.com", people["dan@example.com"], "pro")
    ]
    monkeypatch.setattr(contact_pages, "CSV_CHUNK", 2)  # the stream reads in several chunks
    everyone = client.get("/app/contacts.csv", params={"stage": "lead"}).text
    assert sorted(r["email"] for r in csv.DictReader(io.StringIO(everyone))) == sorted(people)

    monkeypatch.setattr(contact_pages, "PAGE_SIZE", 2)
    first = client.get(
        "/app/contacts", params={"rule": '{"field": "traits.plan", "op": "eq", "value": "pro"}'}
    )
    following = re.search(r'href="([^"]+)" rel="next"', first.text)
    assert following is not None
    second = client.get(following.group(1).replace("&amp;", "&")).text
    assert len(_shown(first.text)) == 2
    assert _shown(first.text + second) == ["ann@example.com", "cat@example.com", "dan@example.com"]
    assert "data-total>3<" in second
    assert 'rel="next"' not in second
    assert client.get("/app/contacts", params={"cursor": "not-ours"}).status_code == 400
    assert client.get(f"/app/contacts/{people['ann@example.com']}", params={"after": "x"}).status_code == 400
    assert client.get("/app/contacts/nobody").status_code == 404


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"rule": "{not json"}, "not JSON"),
        ({"rule": '{"field": "traits.plan", "op": "bogus", "value": 1}'}, "rules.op"),
        ({"rule": '{"segment": "nope"}'}, "unknown segment"),
        ({"stage": "alien"}, "unknown lifecycle stage"),
        ({"entered": "lead", "from": "2026-13-01"}, "YYYY-MM-DD"),
    ],
)
def test_a_bad_filter_is_the_page_with_its_reason(
    client: TestClient, user_of: Callable[..., crm.User], params: dict[str, str], reason: str
) -> None:
    user_of("viewer")
    sign_in(client, "viewer@example.com")
    answer = client.get("/app/contacts", params=params)
    assert answer.status_code == 422
    assert 'data-error="filter"' in answer.text
    assert reason in answer.text
    assert 'id="f-rule"' in answer.text  # the form is still there to fix it
    assert client.get("/app/contacts.csv", params=params).status_code == 422


def test_contact_page_edit_tag_export_erase_roles_and_csrf(
    client: TestClient,
    ctx: AppContext,
    people: dict[str, str],
    user_of: Callable[..., crm.User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user_of("marketer")
    user_of("viewer")
    user_of("sales")
    ann = people["ann@example.com"]
    url = f"/app/contacts/{ann}"
    csrf = sign_in(client, "marketer@example.com")
    listing = client.get("/app/contacts", params={"q": "ann"}).text
    assert f'href="{url}"' in listing

    j.template(ctx, "hello")
    journey = j.publish(
        ctx,
        {
            "name": "Welcome",
            "trigger": {"type": "event", "event": "Webinar Joined"},
            "steps": [{"id": "hello", "type": "send_email", "template": "hello"}],
        },
    )
    j.track(ctx, "u1", "Webinar Joined")
    j.settle(ctx)
    deal = deals.create(
        ctx,
        deals.DealCreate(title="Yoga bundle", value=Decimal("90"), currency="EUR", email="ann@example.com"),
        actor="test",
    )
    page = client.get(url)
    assert page.status_code == 200
    text = page.text
    (run,) = journeys.runs_of(ctx, journey_id=journey)
    (message,) = j.sent(ctx)
    assert f'data-run="{run.id}"><td>Welcome</td>' in text
    assert f'data-message="{message["id"]}"' in text
    assert f'data-deal="{deal.id}"><td>Yoga bundle</td>' in text
    monkeypatch.setattr(contact_detail, "TIMELINE_SIZE", 2)  # the timeline pages, newest first
    newest = client.get(url).text
    older = re.search(r'href="([^"]+)" rel="next">Older', newest)
    assert older is not None
    rest = client.get(older.group(1).replace("&amp;", "&")).text
    entries = re.findall(r'data-entry="([^"]+)"', newest) + re.findall(r'data-entry="([^"]+)"', rest)
    assert len(entries) == 4
    assert len(set(entries)) == 4
    monkeypatch.undo()
    for heading in ("Profile", "Consent and email", "Score", "Tags", "Segments", "Journeys", "Messages"):
        assert f">{heading}</h2>" in text
    assert 'data-trait="plan">pro<' in text
    assert "user: <code>u1</code>" in text
    timeline = text[text.index('id="timeline-h"') :]
    assert "Course Previewed" in timeline
    assert timeline.index("Course Previewed") < timeline.index("identify")  # newest first

    edited = client.post(
        f"{url}/edit",
        data={"first_name": "Anna", "last_name": "Smith", "traits": '{"plan": "team"}', "csrf": csrf},
    )
    assert edited.status_code == 200  # the page again, after the 303
    with ctx.db.read() as conn:
        contact = contacts.get(conn, ann)
    assert (contact.first_name, contact.last_name, contact.traits.get("plan")) == ("Anna", "Smith", "team")
    assert "firstName" not in contact.traits  # a trait left out of the box is removed
    bad = client.post(f"{url}/edit", data={"traits": "[1, 2]", "csrf": csrf})
    assert bad.status_code == 422
    assert "JSON object" in bad.text

    client.post(f"{url}/tags", data={"add": "VIP, webinar", "csrf": csrf})
    with ctx.db.read() as conn:
        assert contacts.held(conn, ann).tags == ["vip", "webinar"]
    client.post(f"{url}/tags", data={"remove": "webinar", "csrf": csrf})
    with ctx.db.read() as conn:
        assert contacts.held(conn, ann).tags == ["vip"]
    assert 'data-tag="vip"' in client.get(url).text
    assert [a for a in _audit(ctx, ann) if a[1] == MARKETER] == [
        ("contact.updated", MARKETER),
        ("contact.tags_changed", MARKETER),
        ("contact.tags_changed", MARKETER),
    ]
    assert client.post(f"{url}/tags", data={"add": "nocsrf"}).status_code == 403

    exported = client.get(f"{url}/export")
    assert exported.status_code == 200
    assert "attachment" in exported.headers["content-disposition"]
    body = exported.json()
    assert body["contact"]["email"] == "ann@example.com"
    assert body["tags"] == ["vip"]

    with TestClient(client.app) as viewer:
        token = sign_in(viewer, "viewer@example.com")
        seen = viewer.get(url)
        assert seen.status_code == 200
        assert f'action="{url}/' not in seen.text  # no form
        assert viewer.post(f"{url}/tags", data={"add": "x", "csrf": token}).status_code == 403
        assert (
            viewer.post(f"{url}/erase", data={"confirm": "ann@example.com", "csrf": token}).status_code == 403
        )
        assert viewer.get("/app/contacts").status_code == 200
    with TestClient(client.app) as seller:
        token = sign_in(seller, "sales@example.com")
        assert seller.get("/app/contacts").status_code == 403
        assert seller.get(url).status_code == 403
        assert seller.get("/app/contacts.csv").status_code == 403
        assert seller.post(f"{url}/tags", data={"add": "x", "csrf": token}).status_code == 403
        assert 'href="/app/contacts"' not in seller.get("/app/account").text

    wrong = client.post(f"{url}/erase", data={"confirm": "bob@example.com", "csrf": csrf})
    assert wrong.status_code == 422
    assert "Type the contact" in wrong.text
    assert client.get(url).status_code == 200
    erased = client.post(f"{url}/erase", data={"confirm": "ANN@example.com", "csrf": csrf})
    assert erased.status_code == 200
    assert "was erased" in erased.text
    assert client.get(url).status_code == 404
    with ctx.db.read() as conn:
        actors = conn.execute(
            sa.text("SELECT actor FROM audit_log WHERE action = 'contact.erased'")
        ).scalars()
        assert list(actors) == [MARKETER]
