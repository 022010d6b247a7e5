"""The console's guards, checked from the route table so a page added later is covered too: every POST
refuses a request without its CSRF token; every GET page answers each role as ``access.AREAS`` says;
a viewer walking every page writes nothing; odd text in form fields is a 4xx, never a 500."""

from __future__ import annotations

import csv
import inspect
import io
import itertools
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import quote_from_bytes, urlencode

import pytest
import sqlalchemy as sa
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from leadflow.analytics import service as analytics
from leadflow.contacts.processor import EventProcessor
from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from leadflow.web.access import AREAS, ROLES
from leadflow.web.app import PREFIX, ROUTERS
from tests.integration.web.conftest import sign_in
from tests.support import journeys as j
from tests.support.events import send

PARAM = re.compile(r"\{[^}]+\}")
# Pages anyone may open before signing in (each refuses a POST without the double-submit cookie).
ANONYMOUS = {"/app/login", "/app/reset", "/app/reset/{token}", "/app/password/{token}"}

# Pages that only hold a form making something: a read-only role gets the 403 page.
CHANGE_ONLY = {"/app/email/templates/new"}


def _routes(method: str) -> Iterator[tuple[str, APIRoute]]:
    """(path, route) of every console route answering ``method`` (web.app.ROUTERS, mounted at /app)."""
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute) and method in (route.methods or ()):
                yield PREFIX + route.path, route


def _area(route: APIRoute) -> str | None:
    """The area of the route's ``access.page(area)`` / ``access.change(area)`` dependency."""
    for dependency in route.dependant.dependencies:
        call: Any = dependency.call
        if getattr(call, "__qualname__", "") in ("page.<locals>.allowed", "change.<locals>.allowed"):
            area = inspect.getclosurevars(call).nonlocals.get("area")
            return str(area)
    return None


def _url(path: str) -> str:
    return PARAM.sub("1", path)  # an id that exists nowhere: the guard answers before the lookup


def test_every_post_refuses_a_request_without_its_csrf_token(
    client: TestClient, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    sign_in(client, "admin@example.com")
    posts = [path for path, _ in _routes("POST")]
    assert len(posts) >= 30
    for path in posts:
        url = _url(path)
        answer = client.post(url, data={"name": "x"}, follow_redirects=False)
        assert answer.status_code == 403, (url, answer.status_code)
        forged = client.post(url, data={"csrf": "forged"}, headers={"x-csrf-token": "forged"})
        assert forged.status_code == 403, (url, forged.status_code)


def test_every_page_answers_each_role_as_the_areas_say(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    pages = [(path, r) for path, r in _routes("GET") if path not in ANONYMOUS]
    unguarded = [path for path, r in pages if _area(r) is None]
    assert unguarded == []
    assert len(pages) > 30
    for role in ROLES:
        user_of(role)
    for role in ROLES:
        client.cookies.clear()
        sign_in(client, f"{role}@example.com")
        with ctx.db.read() as conn:
            audited = conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one()
            outbox = conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one()
        for path, route in pages:
            area, url = _area(route), _url(path)
            assert area is not None
            answer = client.get(url, follow_redirects=False)
            if role not in AREAS[area]:
                assert answer.status_code == 403, (role, url, answer.status_code)
            elif "{" in path:
                assert answer.status_code in (200, 303, 404, 422), (role, url, answer.status_code)
            elif answer.status_code == 303:  # e.g. a sales user's dashboard is their CRM
                where = answer.headers["location"]
                assert where.startswith("/app/"), (role, url, where)
                assert not where.startswith("/app/login"), (role, url, where)
            elif role == "viewer" and path in CHANGE_ONLY:
                assert answer.status_code == 403, (role, url, answer.status_code)
            else:
                assert answer.status_code == 200, (role, url, answer.status_code, answer.text[:300])
        if role == "viewer":  # reading every page wrote nothing and sent nothing
            with ctx.db.read() as conn:
                assert conn.execute(sa.text("SELECT count(*) FROM audit_log")).scalar_one() == audited
                assert conn.execute(sa.text("SELECT count(*) FROM messages")).scalar_one() == outbox


def test_login_goes_back_only_to_a_console_path(client: TestClient, user_of: Callable[..., crm.User]) -> None:
    user_of("admin")
    for bad in (
        "https://evil.example/",
        "//evil.example/app/",
        "/\\evil.example",
        "/app/\\\\evil",
        "javascript:x",
    ):
        page = client.get("/app/login", params={"next": bad})
        assert "evil" not in page.text, bad
        assert "javascript:" not in page.text, bad
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/app/login").text)
    assert token
    form = {"email": "admin@example.com", "password": "correct horse battery", "csrf": token.group(1)}
    answer = client.post("/app/login", data={**form, "next": "//evil.example/app/"}, follow_redirects=False)
    assert answer.headers["location"] == "/app/"
    client.cookies.clear()
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/app/login").text)
    assert token
    form["csrf"] = token.group(1)
    answer = client.post("/app/login", data={**form, "next": "/app/crm\r\nX-Evil: 1"}, follow_redirects=False)
    assert "x-evil" not in answer.headers
    assert "\n" not in answer.headers["location"]


ODD = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], include_characters="\x00\ud800\udfff=+-@\r\n<>\"'&"),
    min_size=1,
    max_size=40,
)


@pytest.fixture
def marketer(client: TestClient, user_of: Callable[..., crm.User]) -> str:
    user_of("marketer")
    return sign_in(client, "marketer@example.com")


def test_odd_text_in_forms_is_a_4xx_or_saved_never_a_500(client: TestClient, marketer: str) -> None:
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=ODD)
    @example(text="\x00")
    @example(text="\ud800")
    def post(text: str) -> None:
        raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate as a browser could never send it
        for url, field in (
            ("/app/segments", "name"),
            ("/app/email/templates", "name"),
            ("/app/journeys/new", "definition"),
            ("/app/contacts?q=", None),
            ("/app/crm/leads?q=", None),
        ):
            if field is None:
                answer = client.get(f"{url}{quote_from_bytes(raw)}")
            else:
                body = f"csrf={marketer}&{field}={quote_from_bytes(raw)}"
                answer = client.post(
                    url,
                    content=body,
                    headers={"content-type": "application/x-www-form-urlencoded"},
                    follow_redirects=False,
                )
            assert answer.status_code < 500, (url, text, answer.status_code)

    post()
    for url in ("/app/contacts?q=a%00b", "/app/journeys?x%00=1", "/app/segments?cursor=%00"):
        answer = client.get(url)
        assert answer.status_code == 422, (url, answer.status_code)
        assert "Bad input" in answer.text
    made = client.post("/app/segments", data={"csrf": marketer, "name": "a\x00b"})
    assert made.status_code == 422
    assert "Bad input" in made.text


def test_a_report_csv_cell_a_spreadsheet_would_run_is_quoted(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    """UTM values come from any visitor's URL: in the CSV they are text, not formulas."""
    hostile = '=HYPERLINK("https://evil.example")'
    utm = {"utm_source": hostile, "utm_medium": "@cpc", "utm_campaign": "-1+2"}
    url = f"https://site.example/?{urlencode(utm)}"
    send(
        ctx,
        {"type": "page", "anonymousId": "a1", "properties": {"url": url}},
        {"type": "identify", "anonymousId": "a1", "userId": "u1", "traits": {"email": "one@example.com"}},
    )
    j.settle(ctx)
    analytics.maintain(ctx, settle=timedelta(0))
    user_of("marketer")
    sign_in(client, "marketer@example.com")
    answer = client.get("/app/reports/sources.csv", params={"days": "7"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"] == 'attachment; filename="sources.csv"'
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    sources = {r["source"]: r for r in rows}
    assert "'" + hostile in sources, rows
    assert sources["'" + hostile]["medium"] == "'@cpc"
    assert sources["'" + hostile]["campaign"] == "'-1+2"
    assert not [c for r in rows for c in r.values() if c[:1] in ("=", "@", "+")]


def test_an_id_out_of_any_range_in_every_address_is_a_4xx(
    client: TestClient, user_of: Callable[..., crm.User]
) -> None:
    """Every console route with an id in its path, read (GET) and changed (POST with the token), as an
    admin: an id too large for the database's integers or negative is "not found", never a 500."""
    user_of("admin")
    csrf = sign_in(client, "admin@example.com")
    for odd_id, method in itertools.product(("99999999999999999999", "-1"), ("GET", "POST")):
        for path, _ in _routes(method):
            if "{" not in path or path in ANONYMOUS:
                continue
            url = PARAM.sub(odd_id, path)
            if method == "GET":
                answer = client.get(url, follow_redirects=False)
            else:
                answer = client.post(url, data={"csrf": csrf, "id": odd_id}, follow_redirects=False)
            assert answer.status_code < 500, (method, url, answer.status_code)


def test_a_secret_is_shown_once_and_never_again(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    csrf = sign_in(client, "admin@example.com")
    made = client.post("/app/integrations/keys", data={"csrf": csrf, "name": "ci", "scopes": "read"})
    assert made.status_code == 201
    assert made.headers["cache-control"] == "no-store"
    shown = re.search(r'id="secret" readonly value="([^"]+)"', made.text)
    assert shown
    secret = shown.group(1)
    assert len(secret) > 20
    assert secret not in client.get("/app/integrations/keys").text
    assert secret not in client.get("/app/integrations").text
    with ctx.db.read() as conn:
        audited = conn.execute(sa.text("SELECT * FROM audit_log")).all()
    assert audited
    assert secret not in repr(audited)
    assert secret[8:] not in repr(audited)


def test_previews_of_emails_run_nothing_even_opened_alone(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    """A template's HTML is the marketer's: its preview documents are sandboxed by their own policy
    (no script, no form, framed only by the console) and shown in sandboxed frames."""
    j.template(ctx, "hostile", html='<p>Hi</p><script>parent.document.title="owned"</script>')
    user_of("marketer")
    sign_in(client, "marketer@example.com")
    page = client.get("/app/email/templates/hostile", params={"contact": ""})
    assert page.status_code == 200
    assert re.search(r'<iframe name="preview-frame"[^>]* sandbox=""', page.text)
    for url in ("/app/email/templates/hostile/preview", "/app/journeys/previews/gone/0"):
        answer = client.get(url)
        assert answer.status_code < 500, url
        policy = answer.headers["content-security-policy"]
        assert "sandbox" in policy, url
        assert "default-src 'none'" in policy, url
        assert "script-src" not in policy, url
        assert "frame-ancestors 'self'" in policy, url
        assert answer.headers["x-content-type-options"] == "nosniff", url
        assert answer.headers["cache-control"] == "no-store", url


HOSTILE_QUERIES = (
    {"days": "99999999999", "cursor": "!!not-a-cursor", "limit": "1000000000", "page": "-1"},
    {"from": "0001-01-01", "to": "9999-12-31", "status": "x" * 300, "owner": "\u2603"},
    {"from": "2026-03-02", "to": "2026-02-01", "q": "%_\\'\"" * 500, "stage": "' OR 1=1 --"},
)


def test_every_page_answers_hostile_query_strings_without_a_500(
    client: TestClient, user_of: Callable[..., crm.User]
) -> None:
    """Period, page size, cursor, search and filter parameters out of any range, on every console page
    without an id in its address, as an admin (who may open them all): a 4xx page or the page, never a
    500."""
    user_of("admin")
    sign_in(client, "admin@example.com")
    pages = [path for path, _ in _routes("GET") if "{" not in path and path not in ANONYMOUS]
    for query in HOSTILE_QUERIES:
        for path in pages:
            answer = client.get(path, params=query, follow_redirects=False)
            assert answer.status_code < 500, (path, query, answer.status_code)
    odd = {"window_hours": "nan", "by": "x';--", "model": "nope", "conversion": "x" * 500}
    odd |= {"template_id": "9" * 20, "journey_id": "\u2603", "from": "2026-01-01", "to": "2026-12-31"}
    for name in analytics.REPORTS:
        for params in (odd, {**odd, "by": "", "model": "", "window_hours": "1e308"}):
            answer = client.get(f"/app/reports/{name}.csv", params=params)
            assert answer.status_code < 500, (name, params, answer.status_code)


def test_a_sales_user_reaches_no_one_elses_lead_through_any_address(
    client: TestClient, ctx: AppContext, processor: EventProcessor, user_of: Callable[..., crm.User]
) -> None:
    """Every console address naming a lead (``{email}``), read and changed with a good token, answers
    another seller's lead with 403 and changes nothing; the leads list never shows it, whatever the
    filter asks."""
    me = user_of("sales")
    other = crm.create_user(
        ctx, crm.UserCreate(name="Other Seller", email="other@example.com", role="sales"), actor="test"
    )
    send(
        ctx,
        *({"type": "identify", "userId": e, "traits": {"email": e}} for e in ("mine@x.io", "theirs@x.io")),
    )
    processor.drain()
    crm.assign_lead(ctx, "mine@x.io", crm.LeadOwnerChange(owner_id=me.id), actor="test")
    crm.assign_lead(ctx, "theirs@x.io", crm.LeadOwnerChange(owner_id=other.id), actor="test")
    task = crm.log_activity(
        ctx, crm.ActivityCreate(email="theirs@x.io", kind="task", subject="Call back"), actor="test"
    )
    csrf = sign_in(client, "sales@example.com")
    named = [(m, p) for m in ("GET", "POST") for p, _ in _routes(m) if "{email}" in p]
    assert len(named) >= 4
    for method, path in named:
        url = path.replace("{email}", "theirs@x.io").replace("{task_id}", str(task.id))
        form = {"csrf": csrf, "status": "lost", "reason": "x", "owner": me.id, "kind": "note", "done": "1"}
        answer = client.request(method, url, data=form if method == "POST" else None, follow_redirects=False)
        assert answer.status_code == 403, (method, url, answer.status_code)
    lead = crm.get_lead(ctx, "theirs@x.io")
    assert (lead.owner_id, lead.status) == (other.id, "new")
    assert crm.get_activity(ctx, task.id).done_at is None
    for query in ({"owner": other.id}, {"q": "theirs"}, {"owner": ""}, {"status": "new"}):
        listed = client.get("/app/crm/leads", params=query).text
        assert 'data-lead="theirs@x.io"' not in listed, query
    assert 'data-lead="mine@x.io"' in client.get("/app/crm/leads").text
    assert client.get("/app/crm/leads/mine@x.io").status_code == 200
    with ctx.db.read() as conn:
        changes = conn.execute(
            sa.text("SELECT count(*) FROM audit_log WHERE entity_id = :id AND actor LIKE 'user:%'"),
            {"id": lead.contact_id},
        ).scalar_one()
    assert changes == 0


ODD_JSON = (
    b'{"rules": {"all": [{"field": "email", "op": "eq", "value": "a\\u0000b"}]}}',
    b'{"rules": {"all": [{"field": "email", "op": "eq", "value": "\\ud800"}]}}',
    b'{"rules": ' + b'{"all": [' * 3000 + b"]}" * 3000 + b"}",
    b'{"rules": {"all": [{"field": "score", "op": "gt", "value": 1' + b"0" * 40 + b"}]}}",
    b'{"rules": {"all": [{"field": "score", "op": "gt", "value": 1e999}]}}',
)  # NUL, a lone surrogate, deep nesting, an integer and a float out of range


def test_the_live_count_refuses_odd_json_with_a_4xx(client: TestClient, marketer: str) -> None:
    headers = {"x-csrf-token": marketer, "content-type": "application/json"}
    for body in ODD_JSON:
        answer = client.post("/app/segments/preview", content=body, headers=headers)
        assert 400 <= answer.status_code < 500, (body[:80], answer.text[:300])
        assert answer.json()["code"]


def test_a_rule_typed_in_a_form_or_filter_refuses_odd_json_with_a_422(
    client: TestClient, marketer: str
) -> None:
    deep = '{"all": ' + "[" * 1500 + "]" * 1500 + "}"
    nul = '{"all": [{"field": "email", "op": "eq", "value": "a\\u0000b"}]}'
    for rule in (deep, nul):
        listed = client.get("/app/contacts", params={"rule": rule})
        assert listed.status_code == 422, listed.text[:300]
        made = client.post("/app/segments", data={"csrf": marketer, "name": "Odd", "rules": rule})
        assert made.status_code == 422, made.text[:300]


DEFINITION_YAML = """name: Welcome
trigger: {type: event, event: Signed Up}
steps:
  - {id: tag, type: add_tag, tags: [welcomed]}
"""
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


HOSTILE_YAML = (
    'name: "a\\0b"\ntrigger: {type: event, event: "x\\0"}\nsteps: []\n',
    "name: deep\nsteps: " + "[" * 1500 + "]" * 1500 + "\n",
    BOMB,
)  # a NUL escape, deep nesting, an alias bomb


def test_journey_yaml_that_is_hostile_is_a_4xx(client: TestClient, marketer: str) -> None:
    for source in HOSTILE_YAML:
        answer = client.post(
            "/app/journeys/new", data={"csrf": marketer, "definition": source}, follow_redirects=False
        )
        assert 400 <= answer.status_code < 500, (source[:80], answer.text[:300])
    laughs = BOMB + "name: B\ntrigger: {type: event, event: X, where: *i}\nsteps: []\n"
    answer = client.post("/app/journeys/new", data={"csrf": marketer, "definition": laughs})
    assert answer.status_code == 422
    assert "once its aliases (*name) are expanded" in answer.text


def test_simulated_events_nested_too_deep_are_a_422(client: TestClient, marketer: str) -> None:
    made = client.post(
        "/app/journeys/new",
        data={"csrf": marketer, "definition": DEFINITION_YAML},
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text[:300]
    form = {"csrf": marketer, "events": "[" * 1500 + "]" * 1500, "email": "a@b.io", "horizon": "7d"}
    answer = client.post(made.headers["location"].split("?")[0] + "/simulate", data=form)
    assert answer.status_code == 422, answer.text[:300]
