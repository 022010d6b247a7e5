"""The reports page: every report of analytics' catalogue listed with the period and a CSV download;
each CSV equals the API's for the same period (the same catalogue); bad input is a 4xx page; a sales
user is kept out; a viewer may read and download."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from leadflow.analytics import service as analytics
from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from leadflow.messaging import service as messaging
from tests.integration.web.conftest import sign_in
from tests.support import journeys as j
from tests.support.http import bearer

DEFINITION = {
    "name": "Welcome",
    "trigger": {"type": "event", "event": "Signed Up"},
    "steps": [{"id": "tag", "type": "add_tag", "tags": ["welcomed"]}],
}
PERIOD = {"from": "2026-02-01", "to": "2026-03-02"}


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_every_report_is_listed_and_downloads_the_api_csv(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User], make_key: Any
) -> None:
    journey = j.publish(ctx, DEFINITION, key="welcome")
    j.template(ctx, "hello")
    user_of("viewer")
    sign_in(client, "viewer@example.com")
    listing = client.get("/app/reports", params={"days": "", **PERIOD})
    assert listing.status_code == 200, listing.text
    assert 'data-period="2026-02-01/2026-03-02"' in listing.text
    for name in analytics.REPORTS:
        assert f'data-report="{name}"' in listing.text
    assert 'href="/app/reports/kpis.csv?from=2026-02-01&amp;to=2026-03-02"' in listing.text
    assert f'<option value="{journey}">Welcome</option>' in listing.text
    template_id = messaging.templates(ctx, after=None, limit=10)[0].id
    api = {
        "kpis": "/api/v1/analytics/kpis",
        "funnel": "/api/v1/analytics/funnel",
        "sources": "/api/v1/analytics/sources",
        "email": "/api/v1/analytics/email",
        "email-links": f"/api/v1/analytics/email/templates/{template_id}/links",
        "journey-funnel": f"/api/v1/analytics/journeys/{journey}/funnel",
        "attribution": "/api/v1/analytics/attribution",
        "experiments": "/api/v1/analytics/experiments",
        "health": "/api/v1/analytics/health",
    }
    params = {
        "email": {"by": "journey"},
        "email-links": {"template_id": template_id},
        "journey-funnel": {"journey_id": journey},
        "attribution": {"conversion": "Signed Up"},
        "health": {"window_hours": "6"},
    }
    assert set(api) == set(analytics.REPORTS)
    key = bearer(make_key("read"))
    for name, path in api.items():
        page = client.get(f"/app/reports/{name}.csv", params={**PERIOD, **params.get(name, {})})
        assert page.status_code == 200, (name, page.text)
        assert page.headers["content-type"].startswith("text/csv")
        assert page.headers["content-disposition"] == f'attachment; filename="{name}.csv"'
        asked = {k: v for k, v in params.get(name, {}).items() if not k.endswith("_id")}
        answer = client.get(path, params={**PERIOD, **asked, "format": "csv"}, headers=key)
        assert answer.status_code == 200, (name, answer.text)
        assert answer.headers["content-type"].startswith("text/csv")
        assert page.text == answer.text, name
    kpis = _rows(client.get("/app/reports/kpis.csv", params=PERIOD).text)
    assert {row["figure"] for row in kpis} >= {"visitors", "leads", "emails_sent"}
    asked = {**PERIOD, "journey_id": journey}
    steps = _rows(client.get("/app/reports/journey-funnel.csv", params=asked).text)
    assert [row["step"] for row in steps] == ["entered", "converted"]


def test_bad_input_is_a_4xx_page_and_sales_is_kept_out(
    client: TestClient, user_of: Callable[..., crm.User]
) -> None:
    user_of("marketer")
    sign_in(client, "marketer@example.com")
    assert client.get("/app/reports", params={"days": "", "from": "soon"}).status_code == 422
    assert client.get("/app/reports/nothing.csv").status_code == 404
    missing = client.get("/app/reports/journey-funnel.csv", params=PERIOD)
    assert missing.status_code == 422
    assert "journey_id" in missing.text
    assert client.get("/app/reports/journey-funnel.csv", params={"journey_id": "jrn_none"}).status_code == 404
    assert client.get("/app/reports/health.csv", params={"window_hours": "x"}).status_code == 422
    client.cookies.clear()
    user_of("sales")
    sign_in(client, "sales@example.com")
    assert client.get("/app/reports").status_code == 403
    assert client.get("/app/reports/kpis.csv").status_code == 403


def test_the_api_lists_the_reports(client: TestClient, make_key: Any) -> None:
    found = client.get("/api/v1/analytics/reports", headers=bearer(make_key("read"))).json()
    assert [r["name"] for r in found] == list(analytics.REPORTS)
    assert next(r for r in found if r["name"] == "journey-funnel")["params"] == ["journey_id"]
