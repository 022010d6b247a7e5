"""The hot reads (:mod:`leadflow.kernel.hot_reads`) answer exactly what FastAPI's routes answer: the same
requests asked both ways — found, merged, missing, odd emails, other parameters, every kind of bad or
missing key — give the same status and body, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import Request, Response
from fastapi.testclient import TestClient

from leadflow.contacts import api as contacts_api
from leadflow.contacts.models import contact_merges
from leadflow.kernel import hot_reads
from leadflow.kernel.context import AppContext
from leadflow.kernel.ratelimit import RateLimiter


@pytest.fixture
def people(client: TestClient, ctx: AppContext, make_key: Callable[..., str]) -> dict[str, str]:
    admin = {"Authorization": f"Bearer {make_key('admin')}"}
    ann = client.post(
        "/api/v1/contacts", json={"email": "Ann@Example.com", "first_name": "Ann"}, headers=admin
    )
    bob = client.post("/api/v1/contacts", json={"email": "bob@example.com"}, headers=admin)
    with ctx.db.write() as conn:  # an id merged into Ann's
        conn.execute(
            contact_merges.insert(),
            {"merged_id": "C-merged-into-ann", "survivor_id": ann.json()["id"], "merged_at": ctx.clock.now()},
        )
    return {"ann": ann.json()["id"], "bob": bob.json()["id"], "reader": make_key("read", name="reader"),
            "ingest": make_key("ingest", name="ingest-only")}  # fmt: skip


def paths(people: dict[str, str]) -> list[str]:
    return [
        f"/api/v1/contacts/{people['ann']}",
        f"/api/v1/contacts/{people['bob']}",
        "/api/v1/contacts/C-merged-into-ann",
        "/api/v1/contacts/C-nobody",
        "/api/v1/contacts/%20",
        "/api/v1/contacts?email=ann@example.com",
        "/api/v1/contacts?email=%20ANN@Example.COM%20",
        "/api/v1/contacts?email=not-an-email",
        "/api/v1/contacts?email=",
        "/api/v1/contacts?email=nobody@example.com",
        "/api/v1/contacts?email=ann@example.com&email=bob@example.com",
        "/api/v1/contacts?email=ann@example.com&limit=1",
        "/api/v1/contacts?email=ann@example.com&limit=0",
        "/api/v1/contacts?email=ann@example.com&q=ann",
        "/api/v1/contacts?Email=ann@example.com",
        "/api/v1/contacts",
    ]


def headers(people: dict[str, str]) -> list[dict[str, str]]:
    return [
        {"Authorization": f"Bearer {people['reader']}"},
        {"Authorization": f"bearer   {people['reader']}"},
        {"Authorization": f"Bearer {people['ingest']}"},  # 403: no read scope
        {"Authorization": "Bearer lf_not_a_key"},
        {"Authorization": f"Basic {people['reader']}"},
        {"Authorization": "Bearer"},
        {},
    ]


def answer(client: TestClient, path: str, header: dict[str, str], hot: bool) -> tuple[int, Any]:
    hot_reads.SERVE_HOT = hot
    try:
        got = client.get(path, headers=header)
    finally:
        hot_reads.SERVE_HOT = True
    return got.status_code, got.json()


@pytest.fixture
def served_hot(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the twins answered (each twin wrapped to note its request)."""
    served: list[str] = []
    for endpoint in (contacts_api.get_contact, contacts_api.list_contacts):
        twin = hot_reads.twin_of(endpoint)
        assert twin is not None

        def noting(request: Request, ctx: AppContext, read: Any = twin.read) -> Response:
            served.append(request.url.path + ("?" + request.url.query if request.url.query else ""))
            response: Response = read(request, ctx)
            return response

        monkeypatch.setattr(endpoint, hot_reads.TWIN, hot_reads.Twin(twin.scope, noting, twin.accepts))
    return served


def test_hot_reads_answer_as_the_routes_do(
    client: TestClient, people: dict[str, str], served_hot: list[str]
) -> None:
    statuses = set()
    for path in paths(people):
        for header in headers(people):
            slow = answer(client, path, header, hot=False)
            fast = answer(client, path, header, hot=True)
            assert fast == slow, (path, header)
            statuses.add(slow[0])
    assert statuses >= {200, 401, 403, 404, 422}
    reader = {"Authorization": f"Bearer {people['reader']}"}
    assert answer(client, "/api/v1/contacts/C-merged-into-ann", reader, hot=True)[1]["id"] == people["ann"]
    [found] = answer(client, "/api/v1/contacts?email=%20ANN@Example.COM%20", reader, hot=True)[1]["data"]
    assert found["id"] == people["ann"]
    # the twins answered the requests they take, and only those
    assert "/api/v1/contacts/C-nobody" in served_hot
    assert "/api/v1/contacts?email=ann@example.com" in served_hot
    assert not [p for p in served_hot if "limit=" in p or "q=" in p or "Email=" in p or p.count("email=") > 1]
    assert "/api/v1/contacts" not in served_hot


@pytest.mark.parametrize("hot", [True, False])
def test_a_hot_read_counts_once_against_the_rate_limit(
    client: TestClient, people: dict[str, str], ctx: AppContext, monkeypatch: pytest.MonkeyPatch, hot: bool
) -> None:
    """A burst of 4 on a frozen clock: the 5th read is the key's first 429, whichever way it is served
    (a twin falling through to the route would check the key twice, and refuse the 3rd)."""
    monkeypatch.setattr(client.app.state.api, "api_limiter", RateLimiter(2, clock=ctx.clock))  # type: ignore[attr-defined]
    reader = {"Authorization": f"Bearer {people['reader']}"}
    got = [answer(client, f"/api/v1/contacts/{people['ann']}", reader, hot=hot)[0] for _ in range(5)]
    got += [answer(client, "/api/v1/contacts?email=ann@example.com", reader, hot=hot)[0]]
    assert got == [200, 200, 200, 200, 429, 429]
