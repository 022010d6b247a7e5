"""``group`` calls: the company's domain is the domain of what was sent, the URL stays a trait."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.context import AppContext
from tests.support.contacts import all_companies
from tests.support.events import send


def _group(ctx: AppContext, processor: EventProcessor, **traits: Any) -> dict[str, Any]:
    send(ctx, {"type": "group", "userId": "u1", "groupId": "acme", "traits": traits})
    processor.drain()
    [company] = all_companies(ctx)
    return company


def test_a_website_url_gives_the_domain_and_stays_a_trait(
    ctx: AppContext, processor: EventProcessor, client: TestClient, admin_key: str
) -> None:
    company = _group(ctx, processor, name="Acme", website="https://www.Acme.example/about?x")
    assert company["domain"] == "acme.example"
    assert company["traits"]["website"] == "https://www.Acme.example/about?x"
    answer = client.get("/api/v1/companies/acme", headers={"Authorization": f"Bearer {admin_key}"})
    assert answer.json()["domain"] == "acme.example"


def test_domain_wins_over_website_and_a_non_domain_changes_nothing(
    ctx: AppContext, processor: EventProcessor
) -> None:
    assert (
        _group(ctx, processor, domain="HTTP://Acme.Example:8080/", website="https://other.example")["domain"]
        == "acme.example"
    )
    company = _group(ctx, processor, website="not a website")
    assert (company["domain"], company["traits"]["website"]) == ("acme.example", "not a website")
    assert _group(ctx, processor, domain="bad value", website="https://www.globex.example")["domain"] == (
        "globex.example"
    )
    assert _group(ctx, processor, domain=None, website=None)["domain"] is None
