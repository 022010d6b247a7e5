"""``/api/v1/imports``: a CSV uploaded through the API becomes a job the worker works through in
chunks; its progress, rejected rows and warnings are readable; erasure reaches what it keeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.api.app import create_app
from leadflow.contacts import import_jobs
from leadflow.contacts.models import import_issues
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.facts import ContactsTouched
from leadflow.kernel.settings import Settings
from leadflow.runtime.context import build_context
from tests.support.contacts import all_contacts
from tests.support.http import bearer

CSV = (
    "E-Mail,Vorname,phone,country,company,company_domain,plan\n"
    "ann@example.com,Ann,030 1234567,DE,Acme,acme.example,basic\n"
    "bob@example.com,Bob,12,DE,,,\n"
    "ANN@example.com,,,,,,pro\n"
    "cy@example.com,Cy,(415) 555-0132,US,acme inc,,\n"
)


@pytest.fixture
def api(client: TestClient, admin_key: str) -> TestClient:
    client.headers.update(bearer(admin_key))
    return client


def _upload(api: TestClient, text: str, **data: object) -> dict[str, object]:
    answer = api.post("/api/v1/imports", files={"file": ("people.csv", text.encode(), "text/csv")}, data=data)
    assert answer.status_code == 202, answer.text
    return dict(answer.json())


def test_multipart_upload_is_queued_then_imported_with_its_report(api: TestClient, ctx: AppContext) -> None:
    job = _upload(api, CSV, map=["E-Mail=email", "Vorname=first_name"])
    assert (job["status"], job["filename"], job["processed"]) == ("queued", "people.csv", 0)
    assert all_contacts(ctx) == []
    assert import_jobs.run_due(ctx) == 1
    done = api.get(f"/api/v1/imports/{job['id']}").json()
    counts = [done[k] for k in ("status", "total", "processed", "created", "updated", "merged", "rejected")]
    assert counts == ["done", 4, 4, 2, 0, 1, 1]
    assert [(r["line"], r["code"], r["values"]) for r in done["rejected_rows"]] == [
        (3, "invalid_phone", {"E-Mail": "bob@example.com", "Vorname": "Bob", "phone": "12", "country": "DE"})
    ]
    assert [(w["lines"], w["code"]) for w in done["warnings"]] == [([2, 4], "duplicate_email")]
    people = {c["email"]: c for c in all_contacts(ctx)}
    assert (people["ann@example.com"]["phone"], people["ann@example.com"]["traits"]) == (
        "+49301234567",
        {"country": "DE", "plan": "pro"},
    )
    assert people["cy@example.com"]["phone"] == "+14155550132"
    assert people["ann@example.com"]["company_id"] is not None
    assert people["cy@example.com"]["company_id"] != people["ann@example.com"]["company_id"]  # "acme inc"
    assert import_jobs.run_due(ctx) == 0
    listed = api.get("/api/v1/imports").json()
    assert [j["id"] for j in listed["data"]] == [job["id"]]


def test_csv_body_with_query_mapping_into_a_list(api: TestClient, ctx: AppContext) -> None:
    listed = api.post("/api/v1/segments", json={"name": "Fair", "kind": "static"}).json()
    rows = "\n".join(f"p{i}@example.com,P{i}" for i in range(1100))
    answer = api.post(
        "/api/v1/imports",
        params={"map": ["mail=email", "name=first_name"], "list_id": listed["id"]},
        content=f"mail,name\n{rows}\n".encode(),
        headers={"content-type": "text/csv"},
    )
    assert answer.status_code == 202, answer.text
    import_jobs.run_due(ctx)
    done = api.get(f"/api/v1/imports/{answer.json()['id']}").json()
    assert (done["status"], done["created"], done["processed"], done["total"]) == ("done", 1100, 1100, 1100)
    assert api.get(f"/api/v1/segments/{listed['id']}").json()["member_count"] == 1100
    with ctx.db.read() as conn:
        source = conn.execute(sa.text("SELECT source FROM import_jobs")).scalar()
    assert source is None  # the file is not kept once the job has ended


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"params": {"map": "Nope=email"}}, "unknown_column"),
        ({"params": {"map": "email=mailbox"}}, "invalid_mapping"),
        ({"params": {"list_id": "none"}}, "segment_not_found"),
        ({"content": b"\xff\xfe", "headers": {"content-type": "text/csv"}}, "invalid_encoding"),
    ],
)
def test_refused_uploads_queue_nothing(api: TestClient, kwargs: dict[str, object], code: str) -> None:
    body = {"content": b"email\na@example.com\n", "headers": {"content-type": "text/csv"}}
    answer = api.post("/api/v1/imports", **{**body, **kwargs})  # type: ignore[arg-type]
    assert answer.status_code in (404, 422), answer.text
    assert answer.json()["error"]["code"] == code
    assert api.get("/api/v1/imports").json()["data"] == []


def test_other_media_types_are_refused(api: TestClient) -> None:
    answer = api.post("/api/v1/imports", json={"email": "a@example.com"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (415, "unsupported_media_type")


def test_a_file_larger_than_the_rest_limit_is_imported(api: TestClient, ctx: AppContext) -> None:
    """Uploads are limited by LEADFLOW_IMPORT_MAX_BYTES (50 MiB), not the 1 MiB of other REST bodies."""
    rows = "\n".join(
        f"person{i:05d}@example.com,First{i},Last{i},the plan named number {i:05d}" for i in range(15_000)
    )
    data = f"email,first_name,last_name,plan\n{rows}\n".encode()
    assert len(data) > ctx.settings.api_max_body_bytes
    answer = api.post("/api/v1/imports", content=data, headers={"content-type": "text/csv"})
    assert answer.status_code == 202, answer.text
    form = api.post("/api/v1/imports", files={"file": ("big.csv", data, "text/csv")})
    assert form.status_code == 202, form.text
    assert import_jobs.run_due(ctx) == 2
    for job in (answer.json(), form.json()):
        done = api.get(f"/api/v1/imports/{job['id']}").json()
        assert (done["status"], done["processed"], done["rejected"]) == ("done", 15_000, 0)
    assert (done["created"], done["unchanged"]) == (0, 15_000)  # the second run found them all
    with ctx.db.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM contacts")).scalar() == 15_000


@pytest.fixture
def small_imports(settings: Settings, clock: VirtualClock, admin_key: str) -> Iterator[TestClient]:
    """The app with LEADFLOW_IMPORT_MAX_BYTES at 64 KiB."""
    context = build_context(settings.model_copy(update={"import_max_bytes": 64 * 1024}), clock=clock)
    with TestClient(create_app(context, run_worker=False), headers=bearer(admin_key)) as client:
        yield client
    context.close()


def test_a_file_over_the_import_limit_is_413_and_stores_nothing(
    small_imports: TestClient, ctx: AppContext
) -> None:
    data = b"email\n" + b"".join(b"p%05d@example.com\n" % i for i in range(5_000))
    assert 64 * 1024 < len(data) < ctx.settings.api_max_body_bytes

    def streamed() -> Iterator[bytes]:
        yield from (data[i : i + 8192] for i in range(0, len(data), 8192))

    answers = [
        small_imports.post("/api/v1/imports", content=data, headers={"content-type": "text/csv"}),
        small_imports.post("/api/v1/imports", files={"file": ("big.csv", data, "text/csv")}),
        small_imports.post("/api/v1/imports", content=streamed(), headers={"content-type": "text/csv"}),
    ]
    for answer in answers:
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"]["code"] == "payload_too_large"
        assert "LEADFLOW_IMPORT_MAX_BYTES" in answer.json()["error"]["message"]
    with ctx.db.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM import_jobs")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM contacts")).scalar() == 0
    under = small_imports.post(
        "/api/v1/imports", content=data[:60_000].rsplit(b"\n", 1)[0], headers={"content-type": "text/csv"}
    )
    assert under.status_code == 202, under.text


def test_scopes(client: TestClient, make_key: Callable[..., str]) -> None:
    reader = bearer(make_key("read"))
    refused = client.post(
        "/api/v1/imports", content=b"email\na@b.co\n", headers={**reader, "content-type": "text/csv"}
    )
    assert refused.status_code == 403
    assert client.get("/api/v1/imports", headers=reader).status_code == 200


def test_issues_are_paginated_and_a_finished_job_can_be_deleted(api: TestClient, ctx: AppContext) -> None:
    job = _upload(api, "email\n" + "\n".join(f"bad{i}" for i in range(5)) + "\n")
    import_jobs.run_due(ctx)
    first = api.get(f"/api/v1/imports/{job['id']}/issues", params={"limit": 3}).json()
    rest = api.get(
        f"/api/v1/imports/{job['id']}/issues", params={"limit": 3, "cursor": first["next_cursor"]}
    ).json()
    assert [i["line"] for i in first["data"] + rest["data"]] == [2, 3, 4, 5, 6]
    assert api.delete(f"/api/v1/imports/{job['id']}").status_code == 204
    assert api.get(f"/api/v1/imports/{job['id']}").status_code == 404
    with ctx.db.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(import_issues)).scalar() == 0


def test_a_job_left_running_by_a_dead_worker_is_taken_over(
    api: TestClient, ctx: AppContext, clock: VirtualClock
) -> None:
    job = _upload(api, "email\na@example.com\n")
    assert import_jobs._claim(ctx) is not None  # a worker took it and died
    assert import_jobs.run_due(ctx) == 0  # its lease still holds
    clock.advance(import_jobs.LEASE + timedelta(seconds=1))
    assert import_jobs.run_due(ctx) == 1
    assert api.get(f"/api/v1/imports/{job['id']}").json()["status"] == "done"


def test_erasure_reaches_rejected_rows_warnings_and_waiting_files(api: TestClient, ctx: AppContext) -> None:
    ann = api.post("/api/v1/contacts", json={"email": "ann@example.com", "user_id": "u-ann"}).json()
    done = _upload(api, "email,user_id\nann@example.com,u-other\nann@example.com,\nzed@example.com,\n")
    import_jobs.run_due(ctx)
    report = api.get(f"/api/v1/imports/{done['id']}").json()
    assert [r["line"] for r in report["rejected_rows"]] == [2]
    assert len(report["warnings"]) == 1
    held = api.get(f"/api/v1/contacts/{ann['id']}/export").json()["import_issues"]
    assert sorted((i["kind"], i["line"], i["code"]) for i in held) == [
        ("rejected", 2, "user_id_conflict"),
        ("warning", 2, "duplicate_email"),
    ]
    waiting = _upload(api, "email,first_name\nann@example.com,Ann again\nkim@example.com,Kim\n")
    assert api.delete(f"/api/v1/contacts/{ann['id']}").status_code == 200
    report = api.get(f"/api/v1/imports/{done['id']}").json()
    assert (report["rejected_rows"], report["warnings"]) == ([], [])
    import_jobs.run_due(ctx)
    later = api.get(f"/api/v1/imports/{waiting['id']}").json()
    assert (later["created"], later["rejected"], later["processed"]) == (1, 0, 2)
    assert sorted(c["email"] for c in all_contacts(ctx)) == ["kim@example.com", "zed@example.com"]


class WorkerKilled(BaseException):
    """Stands for the worker process dying mid-transaction (not an error the job could record)."""


def test_a_job_killed_mid_file_resumes_after_its_last_committed_chunk(
    api: TestClient, ctx: AppContext, clock: VirtualClock
) -> None:
    rows = "\n".join(f"p{i}@example.com" for i in range(1100))
    job = _upload(api, f"email\n{rows}\n")
    chunks = {"seen": 0, "armed": True}

    def die_in_the_second_chunk(_: object, message: ContactsTouched) -> None:
        if len(message.changes) >= 500:
            chunks["seen"] += 1
            if chunks["armed"] and chunks["seen"] == 2:
                raise WorkerKilled

    ctx.bus.subscribe(ContactsTouched, die_in_the_second_chunk)
    with pytest.raises(WorkerKilled):
        import_jobs.run_due(ctx)
    midway = api.get(f"/api/v1/imports/{job['id']}").json()
    assert [midway[k] for k in ("status", "total", "processed", "created")] == ["running", 1100, 500, 500]
    assert len(all_contacts(ctx)) == 500  # the second chunk rolled back whole
    chunks["armed"] = False
    clock.advance(import_jobs.LEASE + timedelta(seconds=1))
    assert import_jobs.run_due(ctx) == 1
    done = api.get(f"/api/v1/imports/{job['id']}").json()
    assert [done[k] for k in ("status", "processed", "created", "updated", "unchanged")] == [
        "done",
        1100,
        1100,
        0,
        0,
    ]
    assert len(all_contacts(ctx)) == 1100


def test_the_worker_thread_runs_an_upload_when_woken(api: TestClient, ctx: AppContext) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=import_jobs.run, args=(ctx, stop), daemon=True)
    thread.start()
    try:
        job = _upload(api, "email\nw1@example.com\nw2@example.com\n")
        status = job["status"]
        for _ in range(600):  # a bound on waiting, not a timing assertion
            status = api.get(f"/api/v1/imports/{job['id']}").json()["status"]
            if status == "done":
                break
            time.sleep(0.05)
    finally:
        stop.set()
        ctx.signals.wake(import_jobs.CHANNEL)
        thread.join(10)
    assert status == "done"
    assert not thread.is_alive()
    assert sorted(c["email"] for c in all_contacts(ctx)) == ["w1@example.com", "w2@example.com"]


def test_a_person_erased_while_a_worker_runs_the_file_is_not_brought_back(
    api: TestClient, ctx: AppContext
) -> None:
    ann = api.post("/api/v1/contacts", json={"email": "ann@example.com"}).json()
    job = _upload(api, "email,first_name\nkim@example.com,Kim\nann@example.com,Ann again\n")
    running = import_jobs._claim(ctx)  # the worker has read the file, ann's row included
    assert running is not None
    assert api.delete(f"/api/v1/contacts/{ann['id']}").status_code == 200
    import_jobs._run(ctx, running)
    assert [c["email"] for c in all_contacts(ctx)] == ["kim@example.com"]
    progress = api.get(f"/api/v1/imports/{job['id']}").json()
    assert (progress["processed"], progress["created"], progress["rejected"]) == (2, 1, 0)
