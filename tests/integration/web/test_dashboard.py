"""The dashboard: its numbers are the analytics service's for the same period (contacts moved through
the lifecycle by the real pipeline), the previous period beside them, the period picker (bad input is a
422 page with the reason), the charts' text alternatives, and who sees it."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadflow.analytics import service as analytics
from leadflow.crm import service as crm
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.web.conftest import sign_in
from tests.support import journeys as j
from tests.support.contacts import by_user
from tests.support.events import send
from tests.support.http import bearer

DAY = date(2026, 3, 2)  # the clock's day
URL = "https://site.example/?utm_source=google&utm_medium=cpc&utm_campaign=spring"
LIFECYCLE = ("visitors", "leads", "mql", "sql", "customers", "advocates")


def _kpi(html: str, name: str, attribute: str = "data-kpi") -> float:
    found = re.search(rf'{attribute}="{name}">(?:<a [^>]*>)?([^<]+)<', html)
    assert found, f"{name} not on the page"
    return float(found.group(1).replace(",", ""))


@pytest.fixture
def moved(client: TestClient, ctx: AppContext, clock: VirtualClock, make_key: Any) -> None:
    """Three visitors (one from a Google ad), two leads; one goes MQL → SQL → customer, the other MQL."""
    headers = bearer(make_key("read", "write"))
    send(
        ctx,
        {"type": "page", "anonymousId": "a1", "properties": {"url": URL}},
        {"type": "identify", "anonymousId": "a1", "userId": "u1", "traits": {"email": "one@example.com"}},
        {"type": "identify", "userId": "u2", "traits": {"email": "two@example.com"}},
        {"type": "page", "anonymousId": "a3", "properties": {"url": "https://site.example/"}},
    )
    j.settle(ctx)
    one, two = by_user(ctx, "u1")["id"], by_user(ctx, "u2")["id"]
    for contact, stage, hours in ((one, "mql", 2), (two, "mql", 0), (one, "sql", 4), (one, "customer", 1)):
        clock.advance(timedelta(hours=hours))
        answer = client.patch(f"/api/v1/contacts/{contact}", json={"lifecycle_stage": stage}, headers=headers)
        assert answer.status_code == 200, answer.text
    j.settle(ctx)
    analytics.maintain(ctx, settle=timedelta(0))


def test_the_numbers_are_the_analytics_kpis_with_the_previous_period(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User], moved: None
) -> None:
    user_of("admin")
    sign_in(client, "admin@example.com")
    page = client.get("/app/", params={"days": "", "from": DAY.isoformat(), "to": DAY.isoformat()})
    assert page.status_code == 200, page.text
    kpis = analytics.kpis(ctx, DAY, DAY)
    shown = {name: _kpi(page.text, name) for name in LIFECYCLE}
    assert shown == {name: kpis.figures[name].current for name in LIFECYCLE}
    assert shown == {"visitors": 3, "leads": 2, "mql": 2, "sql": 1, "customers": 1, "advocates": 0}
    assert _kpi(page.text, "emails_sent") == kpis.figures["emails_sent"].current
    assert _kpi(page.text, "leads_qualified") == kpis.figures["leads_qualified"].current
    assert 'data-period="2026-03-02/2026-03-02"' in page.text
    # numbers that count contacts link to exactly those contacts; the others are plain or the CRM list
    period = "from=2026-03-02&amp;to=2026-03-02"
    assert f'data-kpi="leads"><a href="/app/contacts?entered=lead&amp;{period}"' in page.text
    assert f'data-kpi="customers"><a href="/app/contacts?entered=customer&amp;{period}"' in page.text
    assert 'data-kpi="leads_qualified"><a href="/app/crm/leads?status=qualified"' in page.text
    assert 'data-kpi="emails_sent">0<' in page.text
    # funnel and sources come from analytics too, with charts that carry a title and description
    assert "<td>google</td><td>cpc</td><td>spring</td><td><a href=" in page.text
    for chart in ("c-funnel", "c-sources", "c-email"):
        assert f'aria-labelledby="{chart}-t {chart}-d"' in page.text
    assert "<desc id=" in page.text

    # the next day: nothing new, the previous period holds what happened on DAY, with a ▼
    later = DAY + timedelta(days=1)
    page = client.get("/app/", params={"from": later.isoformat(), "to": later.isoformat()})
    kpis = analytics.kpis(ctx, later, later)
    assert {n: _kpi(page.text, n, "data-previous") for n in LIFECYCLE} == {
        n: kpis.figures[n].previous for n in LIFECYCLE
    }
    assert _kpi(page.text, "leads", "data-previous") == 2
    assert _kpi(page.text, "leads") == 0
    assert '<span aria-hidden="true">▼</span> <span class="sr-only">down</span> 100%' in page.text

    # a preset ends today and equals the service's period of the same days
    page = client.get("/app/", params={"days": "7"})
    kpis = analytics.kpis(ctx, DAY - timedelta(days=6), DAY)
    assert {n: _kpi(page.text, n) for n in LIFECYCLE} == {n: kpis.figures[n].current for n in LIFECYCLE}
    assert 'data-period="2026-02-24/2026-03-02"' in page.text


BAD = [
    ({"from": "2026-13-01"}, "must be a date as YYYY-MM-DD"),
    ({"from": "2026-03-05", "to": "2026-03-01"}, "&#39;from&#39; is after &#39;to&#39;"),
    ({"from": "2020-01-01", "to": "2026-03-01"}, "a period is at most"),
    ({"days": "12"}, "&#39;days&#39; is one of 7, 30, 90"),
]


def test_a_bad_period_is_a_clear_message(client: TestClient, user_of: Callable[..., crm.User]) -> None:
    user_of("marketer")
    sign_in(client, "marketer@example.com")
    for params, message in BAD:
        page = client.get("/app/", params=params)
        assert page.status_code == 422, params
        assert 'data-error="period"' in page.text
        assert message in page.text
        assert 'id="p-from"' in page.text  # the picker is still there to fix it


def test_who_sees_the_dashboard(client: TestClient, user_of: Callable[..., crm.User]) -> None:
    for role in ("sales", "marketer", "viewer"):
        user_of(role)
    sign_in(client, "sales@example.com")
    answer = client.get("/app/", follow_redirects=False)
    assert (answer.status_code, answer.headers["location"]) == (303, "/app/crm/leads")
    client.cookies.clear()
    sign_in(client, "marketer@example.com")
    page = client.get("/app/")
    assert page.status_code == 200
    assert 'data-kpi="leads"><a href="/app/contacts?entered=lead' in page.text  # the contacts page
    client.cookies.clear()
    sign_in(client, "viewer@example.com")
    page = client.get("/app/")
    assert page.status_code == 200
    assert 'data-kpi="leads"><a href="/app/contacts?entered=lead' in page.text
    assert 'method="post"' not in page.text.split("</header>", 1)[1]  # read-only: no form that changes


def test_each_contact_number_links_to_exactly_its_contacts(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User], moved: None
) -> None:
    """Following a lifecycle number, a funnel entry or a source row's leads lists as many contacts as
    the number says, and exactly the ones that entered the stage in the period (the previous period's
    links too)."""
    user_of("marketer")
    sign_in(client, "marketer@example.com")
    page = client.get("/app/", params={"from": DAY.isoformat(), "to": DAY.isoformat()}).text
    one, two = by_user(ctx, "u1")["id"], by_user(ctx, "u2")["id"]
    expected = {"leads": {one, two}, "mql": {one, two}, "sql": {one}, "customers": {one}, "advocates": set()}
    for name in LIFECYCLE:
        found = re.search(rf'data-kpi="{name}"><a href="([^"]+)"', page)
        assert found, name
        listed = client.get(found.group(1).replace("&amp;", "&")).text
        ids = set(re.findall(r'href="/app/contacts/([^"?#]+)"', listed))
        assert len(ids) == _kpi(page, name), name
        if name in expected:
            assert ids == expected[name], name
        assert f"data-total>{len(ids)}<" in listed
    source = re.search(r'<td>google</td><td>cpc</td><td>spring</td><td><a href="([^"]+)"', page)
    assert source
    listed = client.get(source.group(1).replace("&amp;", "&")).text
    assert set(re.findall(r'href="/app/contacts/([^"?#]+)"', listed)) == {one}
    later = (DAY + timedelta(days=1)).isoformat()
    page = client.get("/app/", params={"from": later, "to": later}).text
    found = re.search(r'data-previous="leads"><a href="([^"]+)"', page)
    assert found
    listed = client.get(found.group(1).replace("&amp;", "&")).text
    assert set(re.findall(r'href="/app/contacts/([^"?#]+)"', listed)) == {one, two}
