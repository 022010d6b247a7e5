"""The Pipedrive peer as httpx meets it: persons found by exact email then created or updated, organisations,
deals in a pipeline stage, v1 notes and custom fields, pulls by update_time, and the 2-second windows with
their headers, the search limit, the daily budget and the penalty after a 429."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from leadflow.kernel.clock import VirtualClock
from tests.peers.pipedrive import TOKEN, PipedrivePeer

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture(scope="module")
def running(clock: VirtualClock) -> Iterator[PipedrivePeer]:
    with PipedrivePeer(seed=2, clock=clock.monotonic, now=clock.now) as peer:
        yield peer


@pytest.fixture
def peer(running: PipedrivePeer, clock: VirtualClock) -> Iterator[PipedrivePeer]:
    running.reset()
    running.faults.clear()
    tomorrow = clock.now().date() + timedelta(days=1)
    clock.set(
        datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, 0, tzinfo=UTC)
    )  # a fresh window and day
    yield running
    running.faults.clear()
    running.limit, running.search_limit, running.daily_limit, running.search_lag_s = 80, 10, 10_000, 0.0


@pytest.fixture
def http(peer: PipedrivePeer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=peer.url, headers={"x-api-token": TOKEN}, timeout=5) as client:
        yield client


def search(http: httpx.Client, email: str) -> list[dict[str, Any]]:
    answer = http.get(
        "/api/v2/persons/search", params={"term": email, "fields": "email", "exact_match": "true"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["success"] is True
    items: list[dict[str, Any]] = answer.json()["data"]["items"]
    return items


def test_a_person_is_found_by_exact_email_then_updated_in_place(
    peer: PipedrivePeer, http: httpx.Client, clock: VirtualClock
) -> None:
    assert search(http, "ann@example.com") == []
    start = clock.now()
    created = http.post(
        "/api/v2/persons",
        json={"name": "Ann Lee", "emails": [{"value": "ann@example.com", "primary": True, "label": "work"}]},
    )
    assert created.status_code == 200
    person = created.json()["data"]
    assert person["update_time"] == person["add_time"] == start.strftime("%Y-%m-%dT09:00:00Z")
    found = search(http, "ANN@example.com")
    assert [item["item"]["id"] for item in found] == [person["id"]]
    assert found[0]["item"]["emails"] == ["ann@example.com"]
    assert found[0]["result_score"] > 0
    assert search(http, "ann@example") == []  # exact means the whole value
    clock.advance(timedelta(minutes=1))
    changed = http.patch(
        f"/api/v2/persons/{person['id']}",
        json={"emails": [{"value": "ann.lee@example.com", "primary": True}]},
    )
    assert changed.json()["data"]["update_time"] == start.strftime("%Y-%m-%dT09:01:00Z")
    assert search(http, "ann@example.com") == []
    assert [i["item"]["id"] for i in search(http, "ann.lee@example.com")] == [person["id"]]
    assert peer.count("person") == 1
    assert peer.count("person", email="ANN.LEE@example.com") == 1
    missing = http.patch("/api/v2/persons/999", json={"name": "X"})
    assert missing.status_code == 404
    assert missing.json()["success"] is False


def test_bad_bodies_are_refused_in_pipedrives_shape(http: httpx.Client) -> None:
    for body in [
        {"emails": [{"value": "x@example.com"}]},
        {"name": "X", "shoe": 1},
        {"name": "X", "emails": "x"},
    ]:
        answer = http.post("/api/v2/persons", json=body)
        assert answer.status_code == 400
        assert answer.json()["success"] is False
        assert answer.json()["error"]
        assert answer.json()["error_info"].startswith("Please check developers.pipedrive.com")


def test_organisations_deals_in_a_stage_and_notes(
    peer: PipedrivePeer, http: httpx.Client, clock: VirtualClock
) -> None:
    org = http.post("/api/v2/organizations", json={"name": "Acme"}).json()["data"]
    person = http.post("/api/v2/persons", json={"name": "Bo", "org_id": org["id"]}).json()["data"]
    orgs = http.get("/api/v2/organizations/search", params={"term": "acme"}).json()["data"]["items"]
    assert [i["item"]["id"] for i in orgs] == [org["id"]]
    stages = http.get("/api/v2/stages", params={"pipeline_id": 1}).json()["data"]
    deal = http.post(
        "/api/v2/deals",
        json={
            "title": "Deal",
            "person_id": person["id"],
            "org_id": org["id"],
            "stage_id": stages[2]["id"],
            "value": 500,
        },
    ).json()["data"]
    assert (deal["pipeline_id"], deal["stage_id"], deal["status"]) == (1, stages[2]["id"], "open")
    won = http.patch(f"/api/v2/deals/{deal['id']}", json={"status": "won"}).json()["data"]
    assert won["status"] == "won"
    assert http.post("/api/v2/deals", json={"title": "X", "stage_id": 99}).status_code == 400
    assert http.post("/api/v2/deals", json={"title": "X", "person_id": 99}).status_code == 400
    note = http.post("/api/v1/notes", json={"content": "<p>Met at the fair</p>", "person_id": person["id"]})
    assert note.status_code == 201
    assert note.json()["data"]["add_time"] == clock.now().strftime("%Y-%m-%d 09:00:00")
    assert http.post("/api/v1/notes", json={"content": "orphan"}).status_code == 400
    notes = http.get("/api/v1/notes", params={"person_id": person["id"]}).json()["data"]
    assert [n["content"] for n in notes] == ["<p>Met at the fair</p>"]
    assert peer.count("deal", status="won") == 1
    assert http.delete(f"/api/v2/persons/{person['id']}").json() == {
        "success": True,
        "data": {"id": person["id"]},
    }
    assert peer.count("person") == 0


def test_custom_fields_by_key(peer: PipedrivePeer, http: httpx.Client) -> None:
    field = http.post("/api/v1/personFields", json={"name": "Dietary", "field_type": "varchar"}).json()[
        "data"
    ]
    assert len(field["key"]) == 40
    listed = http.get("/api/v1/personFields").json()["data"]
    assert [f["name"] for f in listed] == ["Dietary"]
    person = http.post(
        "/api/v2/persons", json={"name": "Cy", "custom_fields": {field["key"]: "vegan"}}
    ).json()
    assert person["data"]["custom_fields"] == {field["key"]: "vegan"}
    refused = http.post("/api/v2/persons", json={"name": "Cy", "custom_fields": {"nope": 1}})
    assert refused.status_code == 400
    assert "nope" in refused.json()["error"]


def test_a_pull_lists_what_changed_since_a_time(
    peer: PipedrivePeer, http: httpx.Client, clock: VirtualClock
) -> None:
    ids = [http.post("/api/v2/persons", json={"name": f"P{i}"}).json()["data"]["id"] for i in range(3)]
    clock.advance(timedelta(hours=1))
    since = clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    peer.remote_update("person", ids[1], name="P1 (edited)")
    listed = http.get("/api/v2/persons", params={"updated_since": since, "sort_by": "update_time"}).json()
    assert [p["name"] for p in listed["data"]] == ["P1 (edited)"]
    assert listed["additional_data"]["next_cursor"] is None
    first = http.get("/api/v2/persons", params={"limit": 2}).json()
    rest = http.get(
        "/api/v2/persons", params={"limit": 2, "cursor": first["additional_data"]["next_cursor"]}
    ).json()
    assert [p["id"] for p in first["data"] + rest["data"]] == ids


def test_the_two_second_window_headers_429_and_penalty(
    peer: PipedrivePeer, http: httpx.Client, clock: VirtualClock
) -> None:
    peer.limit = 3
    answers = [http.get("/api/v2/pipelines") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["x-ratelimit-limit"] == "3"
    assert answers[0].headers["x-ratelimit-reset"] == "2"
    assert answers[3].headers["retry-after"] == "10"
    assert answers[3].json()["success"] is False
    clock.advance(timedelta(seconds=3))  # the window passed, the penalty did not
    assert http.get("/api/v2/pipelines").status_code == 429
    clock.advance(timedelta(seconds=8))
    assert http.get("/api/v2/pipelines").status_code == 200


def test_search_has_its_own_lower_limit(peer: PipedrivePeer, http: httpx.Client) -> None:
    peer.search_limit = 2
    statuses = [
        http.get("/api/v2/persons/search", params={"term": "x@y.z", "exact_match": "true"}).status_code
        for _ in range(3)
    ]
    assert statuses == [200, 200, 429]


def test_the_daily_budget_counts_writes(peer: PipedrivePeer, http: httpx.Client, clock: VirtualClock) -> None:
    peer.daily_limit = 2
    first = http.post("/api/v2/persons", json={"name": "A"})
    assert first.headers["x-daily-requests-left"] == "1"
    assert http.get("/api/v2/persons").headers["x-daily-requests-left"] == "1"  # reads are free
    assert http.post("/api/v2/persons", json={"name": "B"}).headers["x-daily-requests-left"] == "0"
    refused = http.post("/api/v2/persons", json={"name": "C"})
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == str(15 * 3600)  # until midnight UTC
    assert peer.count("person") == 2
    clock.advance(timedelta(hours=15))
    assert http.post("/api/v2/persons", json={"name": "C"}).status_code == 200


def test_a_bad_token_gets_401_and_oauth_bearer_tokens_work(peer: PipedrivePeer) -> None:
    answer = httpx.get(f"{peer.url}/api/v2/persons", headers={"x-api-token": "nope"})
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized access"
    assert answer.json()["success"] is False
    peer.oauth_tokens.add("oauth-1")
    me = httpx.get(f"{peer.url}/api/v1/users/me", headers={"Authorization": "Bearer oauth-1"})
    assert me.status_code == 200
    assert "x-daily-requests-left" not in me.headers  # api_token requests only
    assert httpx.get(f"{peer.url}/api/v1/users/me", params={"api_token": TOKEN}).status_code == 200


def test_search_lags_behind_writes_when_asked(
    peer: PipedrivePeer, http: httpx.Client, clock: VirtualClock
) -> None:
    peer.search_lag_s = 5
    http.post("/api/v2/persons", json={"name": "D", "emails": [{"value": "d@example.com"}]})
    assert search(http, "d@example.com") == []
    clock.advance(timedelta(seconds=5))
    assert len(search(http, "d@example.com")) == 1


def test_injected_faults_take_pipedrives_shape(peer: PipedrivePeer, http: httpx.Client) -> None:
    peer.faults.burst_429(1, retry_after=3)
    limited = http.get("/api/v2/pipelines")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert limited.json()["success"] is False
    peer.faults.error_rate = 1.0
    failed = http.get("/api/v2/pipelines")
    assert failed.status_code in (500, 502, 503)
    assert failed.json()["success"] is False


def test_a_remote_email_change_is_what_search_finds(peer: PipedrivePeer, http: httpx.Client) -> None:
    person = http.post("/api/v2/persons", json={"name": "E", "emails": [{"value": "e@example.com"}]}).json()[
        "data"
    ]
    peer.remote_update("person", person["id"], emails=[{"value": "e.new@example.com"}])
    assert search(http, "e@example.com") == []
    assert [i["item"]["primary_email"] for i in search(http, "E.NEW@example.com")] == ["e.new@example.com"]
    http.delete(f"/api/v2/persons/{person['id']}")
    assert search(http, "e.new@example.com") == []
