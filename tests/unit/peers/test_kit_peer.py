"""The local Kit peer speaks API v4 as documented: subscribers created or updated by e-mail (unknown fields
named in warnings, state never changed by the upsert), unsubscribes, tags by e-mail, custom fields, its
{"errors": [...]} shape and 120 requests per rolling minute per API key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from leadflow.kernel.clock import VirtualClock
from tests.peers.kit import API_KEY, OAUTH_TOKEN, KitPeer


@pytest.fixture(scope="module")
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture(scope="module")
def peer(clock: VirtualClock) -> Iterator[KitPeer]:
    with KitPeer(clock=clock.monotonic, now=clock.now) as running:
        running.seed_fields("Last Name", "Badge Name")
        yield running


@pytest.fixture
def api(peer: KitPeer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{peer.url}/v4", headers={"X-Kit-Api-Key": API_KEY}, timeout=5) as client:
        yield client


def test_create_or_update_by_email(api: httpx.Client, peer: KitPeer) -> None:
    created = api.post("/subscribers", json={"email_address": "Ada@Example.com", "first_name": "Ada"})
    assert created.status_code == 201
    subscriber = created.json()["subscriber"]
    assert (subscriber["state"], subscriber["fields"]) == ("active", {"last_name": None, "badge_name": None})
    assert "warnings" not in created.json()

    fields = {"last_name": "Lovelace", "shoe_size": "38"}
    updated = api.post(
        "/subscribers", json={"email_address": "ada@example.com", "fields": fields, "state": "inactive"}
    )
    assert updated.status_code == 200
    assert updated.json()["subscriber"]["id"] == subscriber["id"]
    assert updated.json()["subscriber"]["state"] == "active"  # the upsert never changes a state
    assert updated.json()["subscriber"]["fields"]["last_name"] == "Lovelace"
    assert len(updated.json()["warnings"]) == 1
    assert "shoe_size" in updated.json()["warnings"][0]
    assert peer.count() == 1

    bad = api.post("/subscribers", json={"email_address": "not an email"})
    assert (bad.status_code, bad.json()) == (422, {"errors": ["Email address is invalid"]})


def test_unsubscribe_search_by_status_and_email_change(
    api: httpx.Client, peer: KitPeer, clock: VirtualClock
) -> None:
    subscriber_id = api.post("/subscribers", json={"email_address": "grace@example.com"}).json()[
        "subscriber"
    ]["id"]
    api.post("/subscribers", json={"email_address": "alan@example.com"})
    mark = clock.now()
    clock.advance(timedelta(minutes=1))
    assert api.post(f"/subscribers/{subscriber_id}/unsubscribe", json={}).status_code == 204

    by_email = {"email_address": "grace@example.com"}
    assert api.get("/subscribers", params=by_email).json()["subscribers"] == []  # status defaults to active
    cancelled = api.get("/subscribers", params={**by_email, "status": "cancelled"}).json()["subscribers"]
    assert [s["state"] for s in cancelled] == ["cancelled"]
    changed = api.get("/subscribers", params={"status": "all", "updated_after": mark.isoformat()}).json()
    assert [s["email_address"] for s in changed["subscribers"]] == ["grace@example.com"]
    again = api.post("/subscribers", json={"email_address": "grace@example.com"})
    assert again.json()["subscriber"]["state"] == "cancelled"

    moved = api.put(f"/subscribers/{subscriber_id}", json={"email_address": "grace@navy.example"})
    assert moved.json()["subscriber"]["email_address"] == "grace@navy.example"
    taken = api.put(f"/subscribers/{subscriber_id}", json={"email_address": "alan@example.com"})
    assert (taken.status_code, taken.json()) == (422, {"errors": ["Email address has already been taken"]})
    assert api.put("/subscribers/999999", json={"email_address": "x@example.com"}).json() == {
        "errors": ["Not Found"]
    }


def test_tags_and_custom_fields(api: httpx.Client, peer: KitPeer) -> None:
    api.post("/subscribers", json={"email_address": "tim@example.com"})
    tag = api.post("/tags", json={"name": "Speaker"})
    assert tag.status_code == 201
    assert api.post("/tags", json={"name": "speaker"}).status_code == 200
    tag_id = tag.json()["tag"]["id"]
    statuses = [
        api.post(f"/tags/{tag_id}/subscribers", json={"email_address": "tim@example.com"}).status_code
        for _ in range(2)
    ]
    assert statuses == [201, 200]
    assert (
        api.post(f"/tags/{tag_id}/subscribers", json={"email_address": "nobody@example.com"}).status_code
        == 404
    )
    assert api.post(f"/tags/{tag_id}/subscribers", json={}).status_code == 422
    assert peer.tags_of("tim@example.com") == {"Speaker"}
    assert [t["name"] for t in api.get("/tags").json()["tags"]] == ["Speaker"]

    created = api.post("/custom_fields", json={"label": "Dietary Preferences"})
    assert created.status_code == 201
    assert created.json()["custom_field"]["key"] == "dietary_preferences"
    assert api.post("/custom_fields", json={"label": "dietary preferences"}).status_code == 422
    keys = [f["key"] for f in api.get("/custom_fields").json()["custom_fields"]]
    assert keys == ["last_name", "badge_name", "dietary_preferences"]


def test_auth_rolling_window_and_faults(clock: VirtualClock) -> None:
    with (
        KitPeer(api_key_limit=3, oauth_limit=4, clock=clock.monotonic, now=clock.now) as peer,
        httpx.Client(base_url=f"{peer.url}/v4", timeout=5) as client,
    ):
        bad = client.get("/tags", headers={"X-Kit-Api-Key": "wrong"})
        assert (bad.status_code, bad.json()) == (401, {"errors": ["The access token is invalid"]})
        key = {"X-Kit-Api-Key": API_KEY}
        assert [client.get("/tags", headers=key).status_code for _ in range(4)] == [200, 200, 200, 429]
        bearer = {"Authorization": f"Bearer {OAUTH_TOKEN}"}
        assert client.get("/tags", headers=bearer).status_code == 200  # its own, larger window
        clock.advance(timedelta(seconds=59))
        assert client.get("/tags", headers=key).status_code == 429  # rolling: still 3 in the last 60 s
        clock.advance(timedelta(seconds=1))
        assert client.get("/tags", headers=key).status_code == 200

        bulk = {
            "subscribers": [{"email_address": "b1@example.com", "first_name": "B"}, {"email_address": "x"}]
        }
        assert client.post("/bulk/subscribers", headers=key, json=bulk).status_code == 401  # OAuth only
        answer = client.post("/bulk/subscribers", headers=bearer, json=bulk).json()
        assert [s["email_address"] for s in answer["subscribers"]] == ["b1@example.com"]
        assert answer["failures"][0]["errors"] == ["Email address is invalid"]
        many = {"subscribers": [{"email_address": f"m{i}@example.com"} for i in range(101)]}
        assert client.post("/bulk/subscribers", headers=bearer, json=many).status_code == 202
        assert peer.count() == 102

        peer.faults.error_rate = 1.0
        failed = client.get("/tags", headers=key)
        assert failed.status_code in (500, 502, 503)
        assert list(failed.json()) == ["errors"]
        peer.faults.clear()
        peer.faults.burst_429(1)
        assert client.get("/tags", headers=key).status_code == 429
