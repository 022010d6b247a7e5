"""The local Mailchimp peer speaks the Marketing API v3 as documented: members upserted by PUT on the MD5 of
the lower-cased e-mail, Member Exists on a second POST, tags, batch subscribe (at most 500), pulls with
since_last_changed, archive and permanent delete, problem+json errors and 10 simultaneous connections."""

from __future__ import annotations

import base64
import http.client
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import httpx
import pytest

from leadflow.kernel.clock import VirtualClock
from tests.peers.mailchimp import API_KEY, LIST_ID, MailchimpPeer, subscriber_hash

MEMBERS = f"/3.0/lists/{LIST_ID}/members"


@pytest.fixture(scope="module")
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture(scope="module")
def peer(clock: VirtualClock) -> Iterator[MailchimpPeer]:
    with MailchimpPeer(clock=clock.monotonic, now=clock.now) as running:
        yield running


@pytest.fixture
def api(peer: MailchimpPeer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=peer.url, auth=("anystring", API_KEY), timeout=5) as client:
        yield client


def put(api: httpx.Client, email: str, **body: object) -> httpx.Response:
    return api.put(f"{MEMBERS}/{subscriber_hash(email)}", json={"email_address": email, **body})


def test_put_upserts_on_the_hash_and_post_of_a_member_is_refused(
    api: httpx.Client, peer: MailchimpPeer
) -> None:
    assert subscriber_hash("Ada@Example.com ") == subscriber_hash("ada@example.com")
    created = put(
        api, "Ada@Example.com", status_if_new="subscribed", merge_fields={"FNAME": "Ada", "NOPE": 1}
    )
    assert created.status_code == 200
    assert created.json()["id"] == subscriber_hash("ada@example.com")
    # every audience merge field, "" when unset; NOPE is not one of them: dropped
    assert created.json()["merge_fields"] == {"FNAME": "Ada", "LNAME": "", "PHONE": ""}
    updated = put(api, "ada@example.com", status_if_new="subscribed", merge_fields={"LNAME": "Lovelace"})
    assert updated.json()["full_name"] == "Ada Lovelace"
    assert peer.count() == 1

    again = api.post(MEMBERS, json={"email_address": "ada@example.com", "status": "subscribed"})
    assert again.status_code == 400
    assert again.headers["content-type"] == "application/problem+json"
    problem = again.json()
    assert problem["title"] == "Member Exists"
    assert set(problem) >= {"type", "title", "status", "detail", "instance"}
    no_status = put(api, "newcomer@example.com", merge_fields={"FNAME": "N"})
    assert (no_status.status_code, no_status.json()["title"]) == (400, "Invalid Resource")
    assert no_status.json()["errors"][0]["field"] == "status_if_new"


def test_email_change_keeps_the_member_and_tags(api: httpx.Client, peer: MailchimpPeer) -> None:
    put(api, "grace@example.com", status_if_new="subscribed", tags=["speaker"])
    moved = api.put(
        f"{MEMBERS}/{subscriber_hash('grace@example.com')}", json={"email_address": "grace@navy.example"}
    )
    assert moved.json()["id"] == subscriber_hash("grace@navy.example")
    assert api.get(f"{MEMBERS}/{subscriber_hash('grace@example.com')}").status_code == 404
    member = peer.member("grace@navy.example")
    assert member is not None
    assert set(member.tags) == {"speaker"}

    tags = {"tags": [{"name": "vip", "status": "active"}, {"name": "speaker", "status": "inactive"}]}
    assert api.post(f"{MEMBERS}/{subscriber_hash('grace@navy.example')}/tags", json=tags).status_code == 204
    unwrapped = {"name": "ignored", "status": "active"}  # not in "tags": the vendor says 204, does nothing
    assert (
        api.post(f"{MEMBERS}/{subscriber_hash('grace@navy.example')}/tags", json=unwrapped).status_code == 204
    )
    read = api.get(f"{MEMBERS}/{subscriber_hash('grace@navy.example')}/tags").json()
    assert [t["name"] for t in read["tags"]] == ["vip"]


def test_batch_subscribe(api: httpx.Client, peer: MailchimpPeer) -> None:
    too_many = [{"email_address": f"p{i}@example.com", "status": "subscribed"} for i in range(501)]
    assert api.post(f"/3.0/lists/{LIST_ID}", json={"members": too_many}).status_code == 400
    put(api, "old@example.com", status_if_new="subscribed")
    members = [
        {"email_address": "b1@example.com", "status": "subscribed", "merge_fields": {"FNAME": "B"}},
        {"email_address": "old@example.com", "status": "unsubscribed"},
        {"email_address": "not-an-email", "status": "subscribed"},
    ]
    first = api.post(f"/3.0/lists/{LIST_ID}", json={"members": members, "update_existing": False}).json()
    assert [m["email_address"] for m in first["new_members"]] == ["b1@example.com"]
    assert [(e["email_address"], e["error_code"]) for e in first["errors"]] == [
        ("old@example.com", "ERROR_CONTACT_EXISTS"),
        ("not-an-email", "ERROR_GENERIC"),
    ]
    second = api.post(f"/3.0/lists/{LIST_ID}", json={"members": members[1:2], "update_existing": True}).json()
    assert (second["total_updated"], second["error_count"]) == (1, 0)
    old = peer.member("old@example.com")
    assert old is not None
    assert old.status == "unsubscribed"


def test_pull_since_last_changed_archive_and_permanent_delete(
    api: httpx.Client, peer: MailchimpPeer, clock: VirtualClock
) -> None:
    put(api, "linus@example.com", status_if_new="subscribed")
    mark = clock.now()
    clock.advance(timedelta(minutes=1))
    peer.change_remotely("linus@example.com", status="unsubscribed", FNAME="Linus")
    pulled = api.get(MEMBERS, params={"since_last_changed": mark.isoformat(), "count": 1000}).json()
    assert [(m["email_address"], m["status"]) for m in pulled["members"]] == [
        ("linus@example.com", "unsubscribed")
    ]
    assert pulled["total_items"] == 1

    assert api.delete(f"{MEMBERS}/{subscriber_hash('linus@example.com')}").status_code == 204
    assert api.get(f"{MEMBERS}/{subscriber_hash('linus@example.com')}").json()["status"] == "archived"
    listed = api.get(MEMBERS, params={"count": 1000}).json()["members"]
    assert "linus@example.com" not in {m["email_address"] for m in listed}
    assert put(api, "linus@example.com", status_if_new="subscribed").json()["status"] == "subscribed"

    forget = f"{MEMBERS}/{subscriber_hash('linus@example.com')}/actions/delete-permanent"
    assert api.post(forget).status_code == 204
    assert peer.member("linus@example.com") is None
    refused = put(api, "linus@example.com", status_if_new="subscribed")
    assert (refused.status_code, refused.json()["title"]) == (400, "Forgotten Email Not Subscribed")


def test_auth_and_ten_simultaneous_connections(clock: VirtualClock) -> None:
    with MailchimpPeer(clock=clock.monotonic, now=clock.now) as peer:
        with httpx.Client(base_url=peer.url, timeout=5) as anonymous:
            bad = anonymous.get("/3.0/ping", auth=("anystring", "wrong-us21"))
            assert (bad.status_code, bad.json()["title"]) == (401, "API Key Invalid")
            assert (
                anonymous.get("/3.0/ping", auth=("x", API_KEY)).json()["health_status"]
                == "Everything's Chimpy!"
            )

        # ten slow requests hold their connections (the peer hangs them), the eleventh is refused
        peer.faults.timeout_rate, peer.faults.hang_s = 1.0, 1.5
        threads = [threading.Thread(target=hang, args=(peer.port,)) for _ in range(10)]
        for thread in threads:
            thread.start()
        assert wait_until(lambda: peer.faults.counts["timeout"] == 10 and peer.in_flight == 10)
        peer.faults.timeout_rate = 0.0
        with httpx.Client(base_url=peer.url, auth=("x", API_KEY), timeout=5) as api:
            refused = api.get("/3.0/ping")
            assert refused.status_code == 429
            assert refused.json()["title"] == "Too Many Requests"
            assert "Retry-After" not in refused.headers
            for thread in threads:
                thread.join(timeout=5)
            assert api.get("/3.0/ping").status_code == 200


def hang(port: int) -> None:
    """One request the peer hangs up on (a plain stdlib client: cheap to start ten at once)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    token = base64.b64encode(f"x:{API_KEY}".encode()).decode()
    try:
        connection.request("GET", "/3.0/ping", headers={"Authorization": f"Basic {token}"})
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            connection.getresponse()
    finally:
        connection.close()


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    done = threading.Event()
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return condition()
