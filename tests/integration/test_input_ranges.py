"""Numbers stay within what their columns hold, and no refusal (nor an unexpected error) drops a
keep-alive connection: checked against a live uvicorn server."""

from __future__ import annotations

import dataclasses
import http.client
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadflow.api.app import create_app
from leadflow.contacts.models import companies
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel import inputs, jsonutil
from leadflow.kernel.context import AppContext
from tests.support.http import basic, bearer
from tests.support.server import free_port


def _integer_schemas(schema: Any, components: dict[str, Any], path: str, seen: set[str]) -> Iterator[Any]:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return
        seen = seen | {name}
        schema = components[name]
    if schema.get("type") == "integer":
        yield path, schema
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key, []):
            yield from _integer_schemas(option, components, path, seen)
    for name, child in schema.get("properties", {}).items():
        yield from _integer_schemas(child, components, f"{path}.{name}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _integer_schemas(schema[key], components, f"{path}[]", seen)


def test_every_integer_a_request_sends_is_bounded_to_32_bits(client: TestClient) -> None:
    """Request bodies, query and path parameters: an integer has a minimum and a maximum within int32
    (``sa.Integer`` is ``int4`` on PostgreSQL), so an out-of-range value is a 422, never an overflow."""
    document = client.get("/openapi.json").json()
    components = document.get("components", {}).get("schemas", {})
    found: list[tuple[str, Any]] = []
    bigint_ids: list[tuple[str, Any]] = []  # a row's id in the path: a BIGINT key (crm activities)
    for route, operations in document["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {route}"
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"].endswith("_id"):
                    bigint_ids += _integer_schemas(parameter.get("schema", {}), components, where, set())
                    continue
                found += _integer_schemas(parameter.get("schema", {}), components, where, set())
            for content in operation.get("requestBody", {}).get("content", {}).values():
                found += _integer_schemas(content.get("schema", {}), components, where, set())
    assert found  # the walk does reach integers (page sizes, per_minute, max_occurrences...)
    for where, schema in found:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        assert low is not None, where
        assert high is not None, where
        assert inputs.INT32_MIN <= low <= high <= inputs.INT32_MAX, where
    for where, schema in bigint_ids:
        low, high = schema.get("minimum"), schema.get("maximum")
        assert low is not None, where
        assert high is not None, where
        assert 1 <= low <= high <= inputs.INT_MAX, where


@pytest.mark.parametrize(
    ("per_minute", "code"),
    [(2**31, "validation_error"), (2**63 - 1, "validation_error"), (2**31 - 1, "unknown_segment")],
)
def test_a_broadcast_throttle_fits_its_column(
    client: TestClient, admin_key: str, per_minute: int, code: str
) -> None:
    body = {"name": "B", "segment": "missing", "template": "missing", "per_minute": per_minute}
    response = client.post("/api/v1/broadcasts", json=body, headers=bearer(admin_key))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code  # unknown_segment: the throttle itself was fine


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    number=st.integers(min_value=inputs.INT_MIN, max_value=inputs.INT_MAX)
    | st.sampled_from([inputs.INT_MIN, inputs.INT_MAX, inputs.INT32_MAX + 1, inputs.INT32_MIN - 1]),
    rule=st.sampled_from(
        [
            lambda n: {"field": "score", "op": "gte", "value": n},
            lambda n: {"field": "sessions", "op": "lt", "value": n},
            lambda n: {"field": "company.size", "op": "eq", "value": n},
            lambda n: {"field": "traits.seats", "op": "between", "value": [n, inputs.INT_MAX]},
            lambda n: {"field": "traits.seats", "op": "in", "value": [n, 1]},
            lambda n: {"event": "Signed Up", "count": {"gte": min(abs(n), inputs.INT_MAX)}},
            lambda n: {"event": "Paid", "total": {"property": "amount", "gt": n}},
        ]
    ),
)
def test_rule_values_within_64_bits_never_overflow(
    client: TestClient, admin_key: str, number: int, rule: Any
) -> None:
    response = client.post(
        "/api/v1/segments/preview", json={"rules": rule(number)}, headers=bearer(admin_key)
    )
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["error"]["code"] == "invalid_rule"


@pytest.mark.parametrize("size", [2**31, 10**12, 1e300, "99999999999999999999", "²"])
def test_a_head_count_beyond_the_column_stays_a_trait(
    client: TestClient, ctx: AppContext, processor: EventProcessor, write_key: str, size: Any
) -> None:
    group = {"userId": "u-1", "groupId": "g-1", "traits": {"name": "Acme", "employees": size}}
    assert client.post("/v1/group", json=group, headers=basic(write_key)).status_code == 200
    processor.drain()
    with ctx.db.read() as conn:
        row = conn.execute(sa.select(companies.c.size, companies.c.traits)).one()
    assert row.size is None
    assert row.traits["employees"] == size


# --- keep-alive ----------------------------------------------------------------------------------


@pytest.fixture
def live(ctx: AppContext, request: pytest.FixtureRequest) -> Iterator[int]:
    """The real app, plus one route that fails unexpectedly, served by uvicorn in this process (with the
    HTTP implementation the test names, else uvicorn's choice). CSV imports are limited to 64 KiB."""
    settings = ctx.settings.model_copy(update={"import_max_bytes": IMPORT_LIMIT})
    app: FastAPI = create_app(dataclasses.replace(ctx, settings=settings), run_worker=False)

    def boom() -> None:
        raise RuntimeError("an unexpected failure")

    app.add_api_route("/api/v1/boom", boom, methods=["GET"])
    port = free_port()
    http = getattr(request, "param", "auto")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", http=http))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            pytest.fail("uvicorn did not start")
        threading.Event().wait(0.02)
    yield port
    server.should_exit = True
    thread.join()


@pytest.mark.internal_errors
def test_refusals_and_errors_keep_the_connection(
    live: int, ctx: AppContext, admin_key: str, write_key: str
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", live)
    json_headers = {"Content-Type": "application/json"}
    requests: list[tuple[str, str, bytes | None, dict[str, str], int]] = [
        (
            "POST",
            "/api/v1/contacts",
            b'{"email": "a@example.com", "traits": {"x": "\\u0000"}}',
            bearer(admin_key),
            422,
        ),
        (
            "POST",
            "/api/v1/contacts",
            b'{"email": "a@example.com", "traits": {"x": NaN}}',
            bearer(admin_key),
            400,
        ),
        ("PATCH", "/api/v1/contacts/nope", b'{"traits": {"x": "\\ud800"}}', bearer(admin_key), 422),
        ("GET", "/api/v1/contacts?q=a%00b", None, bearer(admin_key), 422),
        (
            "POST",
            "/v1/track",
            b'{"userId": "u", "event": "E", "properties": {"n": 1' + b"0" * 30 + b"}}",
            basic(write_key),
            400,
        ),
        ("POST", "/v1/track", b"[" * 100 + b"]" * 100, basic(write_key), 400),
        ("GET", "/api/v1/boom", None, {}, 500),
        ("POST", "/api/v1/contacts", b'{"email": "kept@example.com"}', bearer(admin_key), 201),
    ]
    socket = None
    for method, path, body, headers, status in requests:
        connection.request(method, path, body=body, headers={**json_headers, **headers})
        response = connection.getresponse()
        payload = jsonutil.loads(response.read())
        assert response.status == status, (path, payload)
        assert response.getheader("connection", "").lower() != "close", path
        if status >= 400:
            assert set(payload["error"]) >= {"code", "message"}
        socket = socket or connection.sock
        assert connection.sock is socket, f"{method} {path} dropped the connection"
    connection.close()
    with ctx.db.read() as conn:
        emails = conn.execute(sa.text("SELECT email FROM contacts")).scalars().all()
    assert emails == ["kept@example.com"]


IMPORT_LIMIT = 64 * 1024
REST_LIMIT = 1024 * 1024


def _chunks(head: bytes, size: int, tail: bytes = b"") -> Iterator[bytes]:
    yield head
    for _ in range(size // 16384 + 1):
        yield b" " * 16384
    yield tail


def _too_large_json() -> bytes:
    return b'{"email": "big@example.com", "traits": {"blob": "' + b"x" * REST_LIMIT + b'"}}'


@pytest.mark.parametrize("live", ["h11", "httptools"], indirect=True)
def test_bodies_over_the_limit_keep_the_connection(
    live: int, ctx: AppContext, admin_key: str, write_key: str
) -> None:
    """413 for a body over its limit, declared by Content-Length or streamed chunked, to a route the
    edge reads for, to one that reads its body itself and to a CSV import: the server skips the rest of
    the body, and the next request on the same connection is answered as if nothing had happened."""
    connection = http.client.HTTPConnection("127.0.0.1", live)
    json_headers = {**bearer(admin_key), "Content-Type": "application/json"}
    csv_headers = {**bearer(admin_key), "Content-Type": "text/csv"}
    rfc822 = {**bearer(admin_key), "Content-Type": "message/rfc822"}
    good = ("POST", "/api/v1/contacts", b'{"email": "kept@example.com"}', json_headers, (201, 200))
    csv_rows = b"email\n" + b"p@example.com\n" * (IMPORT_LIMIT // 14 + 1)
    requests: list[tuple[str, str, bytes | Iterator[bytes], dict[str, str], tuple[int, ...]]] = [
        ("POST", "/api/v1/contacts", _too_large_json(), json_headers, (413,)),
        good,
        (
            "POST",
            "/api/v1/contacts",
            _chunks(b'{"email": "a@example.com", "x": "', REST_LIMIT, b'"}'),
            json_headers,
            (413,),
        ),
        good,
        (
            "POST",
            "/api/v1/email/inbound",
            _chunks(b"From: a@example.com\r\n\r\n", REST_LIMIT),
            rfc822,
            (413,),
        ),
        good,
        ("POST", "/api/v1/email/inbound", b"From: a@example.com\r\n\r\n" + b"x" * REST_LIMIT, rfc822, (413,)),
        good,
        ("POST", "/api/v1/imports", csv_rows, csv_headers, (413,)),
        good,
        ("POST", "/api/v1/imports", _chunks(b"email\n", IMPORT_LIMIT), csv_headers, (413,)),
        good,
        ("POST", "/v1/batch", b'{"batch": [' + b" " * 600_000 + b"]}", basic(write_key), (400,)),
        good,
        ("POST", "/api/v1/contacts", b"{}", {**bearer(admin_key), "Content-Type": "text/plain"}, (415,)),
        good,
    ]
    socket = None
    for method, path, body, headers, statuses in requests:
        chunked = not isinstance(body, bytes)
        connection.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        payload = jsonutil.loads(response.read())
        where = f"{method} {path}{' (chunked)' if chunked else ''}"
        assert response.status in statuses, (where, payload)
        assert response.getheader("connection", "").lower() != "close", where
        if response.status >= 400:
            assert set(payload["error"]) >= {"code", "message"}
        if response.status == 413:
            assert payload["error"]["code"] == "payload_too_large"
            setting = "LEADFLOW_IMPORT_MAX_BYTES" if "imports" in path else "LEADFLOW_API_MAX_BODY_BYTES"
            assert setting in payload["error"]["message"], where
        socket = socket or connection.sock
        assert connection.sock is socket, f"{where} dropped the connection"
    connection.close()
    with ctx.db.read() as conn:
        assert conn.execute(sa.text("SELECT email FROM contacts")).scalars().all() == ["kept@example.com"]
        assert conn.execute(sa.text("SELECT count(*) FROM import_jobs")).scalar() == 0


# --- durations and dates in rules --------------------------------------------------------------


@pytest.mark.parametrize(
    "rules",
    [
        {"field": "created_at", "op": "within_last", "value": "999999w"},
        {"field": "traits.d", "op": "more_than_ago", "value": "5300w"},
        {"event": "Signed Up", "within": "999999d"},
        {"event": "Signed Up", "last": {"op": "more_than_ago", "value": "999999w"}},
        {"field": "created_at", "op": "after", "value": "0001-01-01T00:00:00+14:00"},
    ],
)
def test_durations_and_dates_beyond_the_calendar_are_invalid_rules(
    client: TestClient, admin_key: str, rules: dict[str, Any]
) -> None:
    response = client.post("/api/v1/segments/preview", json={"rules": rules}, headers=bearer(admin_key))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_rule"


@pytest.mark.parametrize(("interval", "status"), [("999999w", 422), ("400d", 422), ("52w", 201)])
def test_a_refresh_interval_fits_its_column(
    client: TestClient, admin_key: str, interval: str, status: int
) -> None:
    body = {"name": "S", "rules": {"field": "score", "op": "gte", "value": 1}, "refresh_interval": interval}
    response = client.post("/api/v1/segments", json=body, headers=bearer(admin_key))
    assert response.status_code == status, response.text


def test_a_stored_date_before_the_calendar_is_not_a_date(client: TestClient, admin_key: str) -> None:
    """In year 1 at +14:00 the UTC instant falls in year 0, which Python cannot hold: not a date."""
    contact = {"email": "old@example.com", "traits": {"d": "0001-01-01T00:00:00+14:00"}}
    assert client.post("/api/v1/contacts", json=contact, headers=bearer(admin_key)).status_code == 201
    rules = {"field": "traits.d", "op": "within_last", "value": "5200w"}
    response = client.post("/api/v1/segments/preview", json={"rules": rules}, headers=bearer(admin_key))
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 0


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_an_instant_beyond_the_calendar_in_utc_is_invalid(
    client: TestClient, ctx: AppContext, admin_key: str, write_key: str, moment: str
) -> None:
    for path in ("/api/v1/contacts", "/api/v1/audit"):
        query = "updated_since" if path.endswith("contacts") else "since"
        response = client.get(path, params={query: moment}, headers=bearer(admin_key))
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_datetime"
    body = {"name": "B", "segment": "s", "template": "t", "send_at": moment}
    response = client.post("/api/v1/broadcasts", json=body, headers=bearer(admin_key))
    assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_datetime")
    track = {"userId": "u", "event": "E", "timestamp": moment}
    response = client.post("/v1/track", json=track, headers=basic(write_key))
    assert (response.status_code, response.json()["code"]) == (400, "invalid_timestamp")


def test_a_total_beyond_64_bits_is_summed_not_an_overflow(
    client: TestClient, processor: EventProcessor, admin_key: str, write_key: str
) -> None:
    """Each amount fits 64 bits, their sum does not: SQLite's sum() of integers would fail."""
    for _ in range(2):
        paid = {"userId": "u-1", "event": "Paid", "properties": {"amount": inputs.INT_MAX}}
        assert client.post("/v1/track", json=paid, headers=basic(write_key)).status_code == 200
    processor.drain()
    rules = {"event": "Paid", "total": {"property": "amount", "gt": inputs.INT_MAX}}
    response = client.post("/api/v1/segments/preview", json={"rules": rules}, headers=bearer(admin_key))
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 1
