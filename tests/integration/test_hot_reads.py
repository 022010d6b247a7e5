"""The hot reads (:mod:`leadflow.kernel.hot_reads`) answer exactly what FastAPI's routes answer: the same
requests asked both ways — found, merged, missing, odd emails, other parameters, every kind of bad or
missing key — give the same status and body, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import Request, Response
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection

from leadflow.contacts import api as contacts_api
from leadflow.contacts.models import contact_merges
from leadflow.kernel import hot_reads
from leadflow.kernel.context import AppContext
from leadflow.kernel.db import LOOP_STATEMENT_TIMEOUT_MS
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
        "/api/v1/contacts?q=ann",
        "/api/v1/contacts?q=EXAMPLE.COM",
        "/api/v1/contacts?q=%25",
        "/api/v1/contacts?q=_",
        "/api/v1/contacts?q=%09",
        "/api/v1/contacts?q=",
        "/api/v1/contacts?q=nobody",
        "/api/v1/contacts?q=" + "a" * 200,
        "/api/v1/contacts?q=" + "a" * 201,
        "/api/v1/contacts?q=ann&q=bob",
        "/api/v1/contacts?q=ann&limit=1",
        "/api/v1/contacts?Q=ann",
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

        def noting(request: Request, conn: Connection, read: Any = twin.read) -> Response:
            served.append(request.url.path + ("?" + request.url.query if request.url.query else ""))
            response: Response = read(request, conn)
            return response

        monkeypatch.setattr(endpoint, hot_reads.TWIN, hot_reads.Twin(twin.scope, noting, twin.accepts))
    return served


@pytest.mark.parametrize("in_loop", [True, False], ids=["in-loop", "in-thread"])
def test_hot_reads_answer_as_the_routes_do(
    client: TestClient,
    people: dict[str, str],
    served_hot: list[str],
    monkeypatch: pytest.MonkeyPatch,
    in_loop: bool,
) -> None:
    monkeypatch.setattr(hot_reads, "IN_LOOP", in_loop)
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
    assert "/api/v1/contacts?q=ann" in served_hot
    assert "/api/v1/contacts?q=" + "a" * 200 in served_hot
    declined = ("limit=", "&q=", "Email=", "Q=", "a" * 201)
    assert not [p for p in served_hot if any(d in p for d in declined) or p.count("email=") > 1]
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


def test_on_postgresql_a_hot_read_is_made_in_the_loop_with_a_statement_timeout(
    client: TestClient, people: dict[str, str], ctx: AppContext
) -> None:
    """PostgreSQL: the process's loop connection serves the read (the statement timeout set on it);
    while it is in use elsewhere, the read goes to a worker thread and answers the same. SQLite: never."""
    reader = {"Authorization": f"Bearer {people['reader']}"}
    path = f"/api/v1/contacts/{people['ann']}"
    first = client.get(path, headers=reader)
    assert first.status_code == 200
    if ctx.db.is_sqlite:
        assert ctx.db._loop_conn is None
        with ctx.db.read_in_loop() as conn:
            assert conn is None
        return
    assert ctx.db._loop_conn is not None
    with ctx.db.read_in_loop() as conn:
        assert conn is not None
        assert (
            conn.exec_driver_sql("SHOW statement_timeout").scalar() == f"{LOOP_STATEMENT_TIMEOUT_MS // 1000}s"
        )
        busy = client.get(path, headers=reader)  # the loop connection is taken: a worker thread reads
    assert busy.status_code == 200
    assert busy.json() == first.json()


@pytest.mark.internal_errors
def test_the_loop_connection_is_replaced_after_the_server_drops_it(
    client: TestClient, people: dict[str, str], ctx: AppContext
) -> None:
    """PostgreSQL ends the loop connection's session: the read that finds it gone fails (``500``, as
    any read on a dropped connection), and the next one runs on a new connection."""
    if ctx.db.is_sqlite:
        pytest.skip("SQLite reads in a worker thread: no loop connection")
    reader = {"Authorization": f"Bearer {people['reader']}"}
    path = f"/api/v1/contacts/{people['ann']}"
    assert client.get(path, headers=reader).status_code == 200
    with ctx.db.read_in_loop() as conn:
        assert conn is not None
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with ctx.db.write() as conn:
        conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")  # type: ignore[arg-type]
    statuses = [client.get(path, headers=reader).status_code for _ in range(3)]
    assert statuses[-2:] == [200, 200]
    with ctx.db.read_in_loop() as conn:
        assert conn is not None
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar() != pid
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "2s"


def test_a_search_is_made_in_a_worker_thread_an_email_look_up_in_the_loop(
    client: TestClient, people: dict[str, str], ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text search's cost depends on the text: its twin never holds the event loop (no loop
    connection asked for), while a look-up by email is made on it."""
    asked: list[str] = []
    real = type(ctx.db).read_in_loop

    def noting(db: Any) -> Any:
        asked.append("loop")
        return real(db)

    monkeypatch.setattr(type(ctx.db), "read_in_loop", noting)
    reader = {"Authorization": f"Bearer {people['reader']}"}
    found = client.get("/api/v1/contacts?q=ANN", headers=reader)
    assert [c["id"] for c in found.json()["data"]] == [people["ann"]]
    assert asked == []
    assert client.get("/api/v1/contacts?email=ann@example.com", headers=reader).status_code == 200
    assert asked == ["loop"]
