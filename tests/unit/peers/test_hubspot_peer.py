"""The HubSpot peer keeps HubSpot's documented habits (tests/peers/hubspot.py), checked with a plain
HTTP client so the connector tests rest on them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from leadflow.kernel.clock import VirtualClock
from tests.peers.hubspot import TOKEN, HubSpotPeer

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def peer(clock: VirtualClock) -> Iterator[HubSpotPeer]:
    with HubSpotPeer(limit=5, window_s=10, daily=8, clock=clock.monotonic, now=clock.now) as running:
        yield running


def test_batches_conflicts_search_and_gdpr_delete(peer: HubSpotPeer, clock: VirtualClock) -> None:
    with httpx.Client(base_url=peer.url, headers=AUTH) as http:
        too_many = [{"idProperty": "email", "id": f"p{i}@x.example", "properties": {}} for i in range(101)]
        refused = http.post("/crm/v3/objects/contacts/batch/upsert", json={"inputs": too_many})
        assert refused.status_code == 400
        assert refused.json()["category"] == "VALIDATION_ERROR"
        assert "maximum number of inputs supported in a batch is 100" in refused.json()["message"]
        upserted = http.post(
            "/crm/v3/objects/contacts/batch/upsert",
            json={
                "inputs": [{"idProperty": "email", "id": "Ann@X.example", "properties": {"firstname": "Ann"}}]
            },
        ).json()["results"]
        assert [(r["new"], r["properties"]["email"]) for r in upserted] == [(True, "ann@x.example")]
        again = http.post("/crm/v3/objects/contacts", json={"properties": {"email": "ann@x.example"}})
        assert again.status_code == 409
        assert again.json()["message"] == f"Contact already exists. Existing ID: {upserted[0]['id']}"
        clock.advance(timedelta(minutes=1))
        since = int((clock.now() - timedelta(seconds=1)).timestamp() * 1000)
        peer.edit(upserted[0]["id"], {"firstname": "Anne"})
        found = http.post(
            "/crm/v3/objects/contacts/search",
            json={
                "filterGroups": [
                    {"filters": [{"propertyName": "lastmodifieddate", "operator": "GT", "value": since}]}
                ],
                "properties": ["firstname"],
            },
        ).json()["results"]
        assert [r["properties"]["firstname"] for r in found] == ["Anne"]
        assert (
            http.post(
                "/crm/v3/objects/contacts/gdpr-delete", json={"objectId": upserted[0]["id"]}
            ).status_code
            == 204
        )
        gone = http.post("/crm/v3/objects/contacts/gdpr-delete", json={"objectId": upserted[0]["id"]})
        assert gone.status_code == 404
        assert peer.records() == []


def test_rate_headers_secondly_and_daily_limits_and_auth(peer: HubSpotPeer, clock: VirtualClock) -> None:
    with httpx.Client(base_url=peer.url, headers=AUTH) as http:
        assert httpx.get(f"{peer.url}/crm/v3/objects/contacts").json()["category"] == "INVALID_AUTHENTICATION"
        answers = [http.get("/crm/v3/objects/contacts") for _ in range(6)]
        assert [a.headers["x-hubspot-ratelimit-remaining"] for a in answers[:5]] == ["4", "3", "2", "1", "0"]
        assert answers[0].headers["x-hubspot-ratelimit-max"] == "5"
        assert answers[0].headers["x-hubspot-ratelimit-interval-milliseconds"] == "10000"
        assert answers[5].status_code == 429
        assert answers[5].json()["policyName"] == "SECONDLY"
        assert answers[5].json()["errorType"] == "RATE_LIMIT"
        assert int(answers[5].headers["retry-after"]) >= 1
        clock.advance(timedelta(seconds=10))
        assert [http.get("/crm/v3/objects/contacts").status_code for _ in range(3)] == [200, 200, 200]
        daily = http.get("/crm/v3/objects/contacts")  # the daily cap of 8 is spent
        assert daily.status_code == 429
        assert daily.json()["policyName"] == "DAILY"
        peer.faults.burst_429(1, retry_after=7)
        burst = http.get("/crm/v3/owners/")
        assert (burst.status_code, burst.headers["retry-after"], burst.json()["policyName"]) == (
            429,
            "7",
            "SECONDLY",
        )
