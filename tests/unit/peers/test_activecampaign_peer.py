"""The local ActiveCampaign peer speaks API v3 as documented: upserts by e-mail, custom field values by id,
tags, lists, deals, notes, asynchronous bulk imports, its 403/404/422 shapes and its 5-per-second limit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from leadflow.kernel.clock import VirtualClock
from tests.peers.activecampaign import EVENT_PROFILE_FIELDS, TOKEN, ActiveCampaignPeer

PROFILE = {
    "Date of Birth": "1990-04-12",
    "Event Participation": "Berlin Summit 2026||Lisbon Meetup",
    "Dietary Preferences": "vegetarian, no nuts",
    "Volunteering Interests": "registration desk",
    "Social Media Handles": "@ada (X), ada.dev (Bluesky)",
    "Badge Name": "Ada L.",
    "Profile Image URL": "https://cdn.example.com/ada.png",
    "Emergency Contact Name": "Charles Babbage",
    "Emergency Contact Phone": "+44 20 7946 0958",
}


@pytest.fixture(scope="module")
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture(scope="module")
def peer(clock: VirtualClock) -> Iterator[ActiveCampaignPeer]:
    with ActiveCampaignPeer(rate=10_000, clock=clock.monotonic, now=clock.now, import_delay_s=5.0) as running:
        yield running


@pytest.fixture(scope="module")
def field_ids(peer: ActiveCampaignPeer) -> dict[str, int]:
    return peer.seed_fields()


@pytest.fixture
def api(peer: ActiveCampaignPeer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{peer.url}/api/3", headers={"Api-Token": TOKEN}, timeout=5) as client:
        yield client


def sync(api: httpx.Client, email: str, **contact: object) -> httpx.Response:
    return api.post("/contact/sync", json={"contact": {"email": email, **contact}})


def test_sync_upserts_by_email_with_the_whole_event_profile(
    api: httpx.Client, peer: ActiveCampaignPeer, field_ids: dict[str, int]
) -> None:
    fields = api.get("/fields").json()["fields"]
    assert {f["title"] for f in fields} == {title for title, _ in EVENT_PROFILE_FIELDS}
    page = api.get("/fields", params={"limit": 4, "offset": 8}).json()
    assert (len(page["fields"]), page["meta"]["total"]) == (1, str(len(EVENT_PROFILE_FIELDS)))
    values = [{"field": str(field_ids[title]), "value": value} for title, value in PROFILE.items()]
    first = sync(
        api, "Ada@Example.com", firstName="Ada", lastName="Lovelace", phone="+441", fieldValues=values
    )
    assert first.status_code == 201
    contact_id = first.json()["contact"]["id"]
    assert {v["value"] for v in first.json()["fieldValues"]} == set(PROFILE.values())

    again = sync(api, "ada@example.com", firstName="Augusta", fieldValues=[{"field": "999999", "value": "x"}])
    assert again.status_code == 200
    assert again.json()["contact"]["id"] == contact_id
    assert again.json()["contact"]["lastName"] == "Lovelace"
    assert peer.field_values("ada@example.com") == PROFILE  # the unknown field id was dropped
    found = api.get("/contacts", params={"email": "ada@example.com"}).json()
    assert found["meta"]["total"] == "1"
    assert found["contacts"][0]["firstName"] == "Augusta"


def test_pull_by_udate_and_email_change_by_id(
    api: httpx.Client, peer: ActiveCampaignPeer, clock: VirtualClock
) -> None:
    contact_id = sync(api, "grace@example.com", firstName="Grace").json()["contact"]["id"]
    sync(api, "alan@example.com", firstName="Alan")
    mark = clock.now()
    clock.advance(timedelta(minutes=5))
    peer.change_remotely("grace@example.com", first_name="Rear Admiral Grace")
    changed = api.get("/contacts", params={"filters[updated_after]": mark.isoformat()}).json()["contacts"]
    assert [(c["email"], c["firstName"]) for c in changed] == [("grace@example.com", "Rear Admiral Grace")]

    moved = api.put(f"/contacts/{contact_id}", json={"contact": {"email": "grace@navy.example"}})
    assert moved.status_code == 200
    assert peer.contact("grace@example.com") is None
    taken = api.put(f"/contacts/{contact_id}", json={"contact": {"email": "alan@example.com"}})
    assert taken.status_code == 422
    assert taken.json()["errors"][0]["code"] == "duplicate"


def test_tags_lists_deals_and_notes(api: httpx.Client, peer: ActiveCampaignPeer) -> None:
    contact_id = sync(api, "tim@example.com").json()["contact"]["id"]
    assert api.get("/tags", params={"search": "speaker"}).json()["tags"] == []
    tag = api.post("/tags", json={"tag": {"tag": "speaker", "tagType": "contact"}})
    assert tag.status_code == 201
    assert api.post("/tags", json={"tag": {"tag": "Speaker"}}).status_code == 422
    for _ in range(2):
        tagged = api.post(
            "/contactTags", json={"contactTag": {"contact": contact_id, "tag": tag.json()["tag"]["id"]}}
        )
        assert tagged.status_code == 201
    assert len(api.get(f"/contacts/{contact_id}/contactTags").json()["contactTags"]) == 1
    assert (
        api.post("/contactTags", json={"contactTag": {"contact": contact_id, "tag": "424242"}}).status_code
        == 404
    )

    list_id = peer.seed_list("Attendees 2026")
    for status in (1, 2):
        body = {"contactList": {"contact": contact_id, "list": list_id, "status": status}}
        assert api.post("/contactLists", json=body).status_code == 200
    assert peer.tags_of("tim@example.com") == {"speaker"}
    assert peer.lists_of("tim@example.com") == {"Attendees 2026": 2}

    assert [u["email"] for u in api.get("/users").json()["users"]] == ["admin@example.com"]  # deal owners
    incomplete = api.post("/deals", json={"deal": {"title": "Booth", "value": 45000, "contact": contact_id}})
    assert incomplete.status_code == 422
    assert incomplete.json()["errors"][0]["source"]["pointer"] == "/data/attributes/currency"
    deal = {
        "title": "Booth",
        "value": 45000,
        "currency": "EUR",
        "contact": contact_id,
        "group": "1",
        "stage": "1",
    }
    created = api.post("/deals", json={"deal": deal})
    assert created.status_code == 201
    assert created.json()["deal"]["currency"] == "eur"
    note = {"note": {"note": "Asked for a corner booth", "relid": contact_id, "reltype": "Subscriber"}}
    assert api.post("/notes", json=note).status_code == 201
    assert [n["note"] for n in api.get(f"/contacts/{contact_id}/notes").json()["notes"]] == [
        "Asked for a corner booth"
    ]

    assert api.delete(f"/contacts/{contact_id}").status_code == 200
    gone = api.get(f"/contacts/{contact_id}")
    assert gone.status_code == 404
    assert gone.json() == {"message": f"No Result found for Subscriber with id {contact_id}"}


def test_bulk_import_is_asynchronous_and_bounded(
    api: httpx.Client, peer: ActiveCampaignPeer, clock: VirtualClock, field_ids: dict[str, int]
) -> None:
    too_many = [{"email": f"p{i}@example.com"} for i in range(251)]
    assert api.post("/import/bulk_import", json={"contacts": too_many}).status_code == 400
    bad = api.post("/import/bulk_import", json={"contacts": [{"email": "ok@example.com"}, {"email": "nope"}]})
    assert bad.status_code == 400
    assert bad.json()["failureReasons"] == [{"contact": 1, "failureReason": "Field 'email' incorrect format"}]

    list_id = peer.seed_list("Volunteers")
    sync(api, "existing@example.com", firstName="Old")
    peer.fail_import_emails.add("bounce@example.com")
    contacts = [
        {
            "email": "new@example.com",
            "first_name": "New",
            "tags": ["volunteer"],
            "subscribe": [{"listid": list_id}],
        },
        {
            "email": "existing@example.com",
            "first_name": "Renamed",
            "fields": [{"id": field_ids["Badge Name"], "value": "Ex"}],
        },
        {"email": "bounce@example.com"},
    ]
    queued = api.post("/import/bulk_import", json={"contacts": contacts}).json()
    assert queued["success"] == 1
    assert queued["queued_contacts"] == 3
    waiting = api.get("/import/info", params={"batchId": queued["batchId"]}).json()
    assert waiting["status"] is False
    assert peer.contact("new@example.com") is None

    clock.advance(timedelta(seconds=5))
    done = api.get("/import/info", params={"batchId": queued["batchId"]}).json()
    new = peer.contact("new@example.com")
    assert new is not None
    assert done == {"status": "completed", "success": [str(new.id)], "failure": ["bounce@example.com"]}
    assert peer.tags_of("new@example.com") == {"volunteer"}
    assert peer.lists_of("new@example.com") == {"Volunteers": 1}
    assert peer.field_values("existing@example.com")["Badge Name"] == "Ex"
    assert api.get("/import/info").status_code == 400


def test_auth_rate_limit_and_injected_faults(clock: VirtualClock) -> None:
    with (
        ActiveCampaignPeer(clock=clock.monotonic, now=clock.now) as peer,
        httpx.Client(base_url=f"{peer.url}/api/3", timeout=5) as client,
    ):
        assert client.get("/fields", headers={"Api-Token": "wrong"}).status_code == 403
        answers = [client.get("/fields", headers={"Api-Token": TOKEN}) for _ in range(6)]
        assert [a.status_code for a in answers] == [200] * 5 + [429]
        assert [a.headers["RateLimit-Remaining"] for a in answers[:5]] == ["4", "3", "2", "1", "0"]
        assert answers[5].headers["Retry-After"] == "1"
        assert answers[5].headers["RateLimit-Limit"] == "5"
        clock.advance(timedelta(seconds=1))
        assert client.get("/fields", headers={"Api-Token": TOKEN}).status_code == 200

        peer.faults.burst_429(1, retry_after=30)
        burst = client.get("/fields", headers={"Api-Token": TOKEN})
        assert (burst.status_code, burst.headers["Retry-After"]) == (429, "30")
        peer.faults.error_rate = 1.0
        assert client.get("/fields", headers={"Api-Token": TOKEN}).status_code in (500, 502, 503)
        peer.faults.clear()
        peer.faults.timeout_rate, peer.faults.hang_s = 1.0, 0.05
        with pytest.raises(httpx.TransportError):
            client.get("/fields", headers={"Api-Token": TOKEN})
