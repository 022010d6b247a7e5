"""Bad input gets a 4xx with the error shape, stores nothing, on both databases (``docs/api.md``,
"What leadflow accepts"): NUL and lone surrogates anywhere, deep nesting, integers beyond 64 bits or a
column's range, NaN and Infinity; in bodies, paths and query parameters."""

from __future__ import annotations

import gzip as gz
import json
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadflow.kernel import inputs
from leadflow.kernel.context import AppContext
from leadflow.tables import metadata
from tests.peers.sns import LOCAL_CERTS, SnsPeer
from tests.support.http import basic, bearer

EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EDGE_CODES = {"invalid_text", "nesting_too_deep", "number_out_of_range", "invalid_json"}

good_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8)
good_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=inputs.INT_MIN, max_value=inputs.INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | good_text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(good_text, children, max_size=3),
    max_leaves=8,
)
nul_text = st.builds(lambda a, b: a + "\x00" + b, good_text, good_text)
surrogate_text = st.builds(
    lambda a, s, b: a + s + b, good_text, st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), good_text
)
huge_int = st.integers(min_value=inputs.INT_MAX + 1, max_value=2**200) | st.integers(
    max_value=inputs.INT_MIN - 1, min_value=-(2**200)
)
non_finite = st.sampled_from([float("nan"), float("inf"), float("-inf")])


def _deep(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


too_deep = st.builds(_deep, st.integers(min_value=inputs.MAX_DEPTH + 1, max_value=400), good_values)
bad_text = nul_text | surrogate_text
bad_values = bad_text | huge_int | non_finite | too_deep | st.dictionaries(bad_text, good_values, min_size=1)


@st.composite
def holding_one_bad(draw: st.DrawFn) -> Any:
    """A JSON-able value with one bad value somewhere inside good ones."""
    bad = draw(bad_values)
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        siblings = draw(st.dictionaries(good_text, good_values, max_size=2))
        key = draw(good_text)
        bad = {**siblings, key: bad} if draw(st.booleans()) else [*siblings.values(), bad]
    return bad


def encode(value: Any) -> bytes:
    """JSON text as a permissive client writes it: ``\\u0000``, ``\\ud800``, ``NaN``, big integers."""
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


def row_counts(ctx: AppContext) -> dict[str, int]:
    with ctx.db.read() as conn:
        return {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }


def assert_refused(response: Any, codes: set[str] = EDGE_CODES) -> None:
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message"}
    assert error["code"] in codes, error


Body = Callable[[Any], dict[str, Any]]
REST_BODIES: list[tuple[str, str, Body]] = [
    ("POST", "/api/v1/contacts", lambda bad: {"email": "a@example.com", "traits": {"plan": bad}}),
    ("POST", "/api/v1/contacts", lambda bad: {"user_id": "u-1", "first_name": bad}),
    ("PATCH", "/api/v1/contacts/{contact}", lambda bad: {"traits": {"x": bad}}),
    (
        "POST",
        "/api/v1/segments/preview",
        lambda bad: {"rules": {"field": "traits.n", "op": "eq", "value": bad}},
    ),
    (
        "POST",
        "/api/v1/segments",
        lambda bad: {"name": "S", "rules": {"field": "score", "op": "gte", "value": bad}},
    ),
    ("POST", "/api/v1/scoring/rules", lambda bad: {"name": "R", "points": bad, "event": "Signed Up"}),
    (
        "POST",
        "/api/v1/broadcasts",
        lambda bad: {"name": "B", "segment": "s", "template": "t", "per_minute": bad},
    ),
    ("POST", "/api/v1/keys", lambda bad: {"name": bad, "scopes": ["read"]}),
]
TRACKING_BODIES: list[tuple[str, Body]] = [
    ("/v1/track", lambda bad: {"userId": "u-1", "event": "Signed Up", "properties": {"p": bad}}),
    ("/v1/track", lambda bad: {"userId": "u-1", "event": bad}),
    ("/v1/identify", lambda bad: {"userId": bad, "traits": {"plan": "pro"}}),
    ("/v1/identify", lambda bad: {"anonymousId": "a-1", "traits": bad}),
    ("/v1/batch", lambda bad: {"batch": [{"type": "track", "userId": "u", "event": "E", "context": bad}]}),
]


@pytest.fixture
def contact(client: TestClient, admin_key: str) -> str:
    response = client.post(
        "/api/v1/contacts", json={"email": "someone@example.com"}, headers=bearer(admin_key)
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@EXAMPLES
@given(target=st.sampled_from(REST_BODIES), bad=holding_one_bad())
def test_rest_bodies_refuse_bad_values_and_store_nothing(
    client: TestClient, ctx: AppContext, admin_key: str, contact: str, target: tuple[str, str, Body], bad: Any
) -> None:
    method, path, body = target
    before = row_counts(ctx)
    response = client.request(
        method,
        path.format(contact=contact),
        content=encode(body(bad)),
        headers={**bearer(admin_key), "Content-Type": "application/json"},
    )
    assert_refused(response)
    assert response.status_code == (400 if response.json()["error"]["code"] == "invalid_json" else 422)
    assert row_counts(ctx) == before


@EXAMPLES
@given(target=st.sampled_from(TRACKING_BODIES), bad=holding_one_bad(), gzip=st.booleans())
def test_tracking_api_refuses_bad_values_with_400(
    client: TestClient, ctx: AppContext, write_key: str, target: tuple[str, Body], bad: Any, gzip: bool
) -> None:
    path, body = target
    before = row_counts(ctx)
    raw = encode(body(bad))
    headers = {**basic(write_key), "Content-Type": "application/json"}
    if gzip:
        raw, headers = gz.compress(raw), {**headers, "Content-Encoding": "gzip"}
    response = client.post(path, content=raw, headers=headers)
    assert_refused(response)
    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["code"] == response.json()["error"]["code"]
    assert row_counts(ctx) == before


@EXAMPLES
@given(target=st.sampled_from(REST_BODIES), value=good_values)
def test_rest_bodies_never_answer_5xx(
    client: TestClient, admin_key: str, contact: str, target: tuple[str, str, Body], value: Any
) -> None:
    method, path, body = target
    response = client.request(
        method, path.format(contact=contact), json=body(value), headers=bearer(admin_key)
    )
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) >= {"code", "message"}


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/contacts?q=a%00b", 422),
        ("/api/v1/contacts?email=x%00%40example.com", 422),
        ("/api/v1/contacts?a%00=1", 422),
        ("/api/v1/contacts/a%00b", 422),
        ("/api/v1/segments/a%00b/members", 422),
        ("/api/v1/contacts?q=%ED%A0%80", 200),  # not UTF-8: decoded as U+FFFD, a harmless search
    ],
)
def test_paths_and_query_parameters(client: TestClient, admin_key: str, path: str, status: int) -> None:
    response = client.get(path, headers=bearer(admin_key))
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["error"]["code"] == "invalid_text"


def test_tracking_query_parameters_are_checked_too(
    client: TestClient, ctx: AppContext, write_key: str
) -> None:
    before = row_counts(ctx)
    response = client.post("/v1/track?x=%00", json={"userId": "u", "event": "E"}, headers=basic(write_key))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_text"
    assert row_counts(ctx) == before


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"email": "a@example.com", "traits": {"n": NaN}}', "invalid_json"),
        (b'{"email": "a@example.com", "traits": {"n": -Infinity}}', "invalid_json"),
        (b'{"email": "a@example.com", "traits": {"n": 1e999}}', "number_out_of_range"),
        (b'{"email": "a@example.com", "traits": {"n": "\\udead"}}', "invalid_text"),
        (b'{"email": "a@example.com", "traits": {"n": 18446744073709551616}}', "number_out_of_range"),
    ],
)
def test_what_stdlib_json_would_let_through(
    client: TestClient, ctx: AppContext, admin_key: str, body: bytes, code: str
) -> None:
    before = row_counts(ctx)
    response = client.post(
        "/api/v1/contacts", content=body, headers={**bearer(admin_key), "Content-Type": "application/json"}
    )
    assert response.json()["error"]["code"] == code
    assert row_counts(ctx) == before


def test_the_limits_themselves_are_accepted(
    client: TestClient, ctx: AppContext, admin_key: str, write_key: str
) -> None:
    traits = {
        "max": inputs.INT_MAX,
        "min": inputs.INT_MIN,
        "deep": _deep(inputs.MAX_DEPTH - 3, 1),
        "e": "é😀",
    }
    response = client.post(
        "/api/v1/contacts", json={"email": "edge@example.com", "traits": traits}, headers=bearer(admin_key)
    )
    assert response.status_code == 201, response.text
    assert response.json()["traits"] == traits
    track = {"userId": "u-1", "event": "Edge", "properties": {"big": inputs.INT_MAX, "deep": _deep(60, 1)}}
    assert client.post("/v1/track", json=track, headers=basic(write_key)).status_code == 200


SES_BOUNCE = (
    b'{"Type": "Notification", "Message": "{\\"notificationType\\": \\"Bounce\\", \\"bounce\\": '
    b'{\\"bounceType\\": \\"Permanent\\", \\"bouncedRecipients\\": [{\\"emailAddress\\": '
    b'\\"a\\\\u0000@example.com\\"}]}, \\"mail\\": {\\"messageId\\": \\"m\\"}}"}'
)
DSN = (
    b"From: MAILER-DAEMON@example.net\r\nTo: bounces@example.com\r\nContent-Type: multipart/report; "
    b"report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbounced\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.net\r\n\r\n"
    b"Final-Recipient: rfc822; a\x00b@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
)


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        (
            "/api/v1/email/feedback/leadflow",
            "application/json",
            b'[{"type": "bounce", "email": "a\\u0000b@x.io"}]',
        ),
        ("/api/v1/email/feedback/leadflow", "text/plain", b'[{"type": "bounce", "email": "a\\u0000b@x.io"}]'),
        (
            "/api/v1/email/feedback/postmark",
            "text/plain",
            b'{"RecordType": "Bounce", "Email": "\\udc00@x.io"}',
        ),
        pytest.param(
            "/api/v1/email/feedback/ses",
            "text/plain; charset=UTF-8",
            SES_BOUNCE,
            marks=pytest.mark.settings(**LOCAL_CERTS),  # SNS signs it (tests/peers/sns.py)
        ),
        ("/api/v1/email/inbound", "message/rfc822", DSN),
    ],
)
def test_feedback_reports_whatever_their_content_type(
    client: TestClient,
    ctx: AppContext,
    admin_key: str,
    sns_peer: SnsPeer,
    path: str,
    content_type: str,
    body: bytes,
) -> None:
    if path.endswith("/ses"):  # an SNS message verifies before its content is read
        body = json.dumps(sns_peer.sign({**sns_peer.envelope("Notification"), **json.loads(body)})).encode()
    before = row_counts(ctx)
    response = client.post(path, content=body, headers={**bearer(admin_key), "Content-Type": content_type})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_text"
    assert row_counts(ctx) == before


def test_csv_imports_refuse_nul_in_the_file_and_the_form(
    client: TestClient, ctx: AppContext, admin_key: str
) -> None:
    before = row_counts(ctx)
    csv = client.post(
        "/api/v1/imports",
        content=b"email,first_name\na@example.com,Jo\x00e\n",
        headers={**bearer(admin_key), "Content-Type": "text/csv"},
    )
    form = client.post(
        "/api/v1/imports",
        files={"file": ("a.csv", b"email\na@example.com\n", "text/csv")},
        data={"list_id": "x\x00y"},
        headers=bearer(admin_key),
    )
    for response in (csv, form):
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == "invalid_text"
    assert row_counts(ctx) == before


BAD_BODIES = [
    (b'{"name": "a\\u0000b"}', "invalid_text"),
    (b'{"name": ["\\udfff"]}', "invalid_text"),
    (b'{"name": 99999999999999999999}', "number_out_of_range"),
    (b'{"name": NaN}', "invalid_json"),
    (b'{"name": ' + b"[" * 100 + b"]" * 100 + b"}", "nesting_too_deep"),
]


def test_every_json_route_is_behind_the_edge(
    client: TestClient, ctx: AppContext, admin_key: str, write_key: str
) -> None:
    """Every operation of /openapi.json that takes JSON refuses each kind of bad value, whatever its
    own schema: the check runs before any route does."""
    document = client.get("/openapi.json").json()
    operations = [
        (method.upper(), path.replace("{", "").replace("}", ""))
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    ]
    assert len(operations) > 25
    before = row_counts(ctx)
    for method, path in operations:
        key = basic(write_key) if path.startswith("/v1/") else bearer(admin_key)
        for body, code in BAD_BODIES:
            headers = {**key, "Content-Type": "application/json"}
            response = client.request(method, path, content=body, headers=headers)
            assert response.status_code in (400, 422), (method, path, response.text)
            assert response.json()["error"]["code"] == code, (method, path, response.text)
    assert row_counts(ctx) == before


def test_every_parameter_of_every_route_is_behind_the_edge(
    client: TestClient, ctx: AppContext, admin_key: str
) -> None:
    """A NUL in any query or path parameter of any REST or tracking operation: refused before the route."""
    document = client.get("/openapi.json").json()
    checked = 0
    before = row_counts(ctx)
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] not in ("query", "path"):
                    continue
                url = path.replace("{" + parameter["name"] + "}", "a%00b")
                url = url.replace("{", "").replace("}", "")
                if parameter["in"] == "query":
                    url += f"?{parameter['name']}=a%00b"
                response = client.request(method.upper(), url, headers=bearer(admin_key))
                assert response.status_code in (400, 422), (method, url, response.text)
                assert response.json()["error"]["code"] == "invalid_text", (method, url)
                checked += 1
    assert checked > 40
    assert row_counts(ctx) == before


# --- media types ---------------------------------------------------------------------------------

NOT_JSON = [
    "text/plain",
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "application/xml",
]


@pytest.mark.parametrize("media_type", NOT_JSON)
def test_json_operations_refuse_another_media_type_with_415(
    client: TestClient, ctx: AppContext, admin_key: str, contact: str, media_type: str
) -> None:
    """A good JSON body sent as another media type: 415 for every operation that reads JSON, before
    anything is stored (FastAPI alone would not parse it and answer 422)."""
    document = client.get("/openapi.json").json()
    operations = [
        (method.upper(), path.replace("{contact_id}", contact), operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if path.startswith("/api/v1/")
        and set(operation.get("requestBody", {}).get("content", {})) == {"application/json"}
        and path != "/api/v1/email/feedback/{provider}"  # reads any media type: SNS posts text/plain
    ]
    assert len(operations) > 20
    before = row_counts(ctx)
    for method, path, operation in operations:
        headers = {**bearer(admin_key), "Content-Type": media_type}
        response = client.request(method, path, content=b'{"email": "new@example.com"}', headers=headers)
        assert response.status_code == 415, (method, path, response.text)
        assert response.json()["error"]["code"] == "unsupported_media_type"
        assert "415" in operation["responses"], (method, path)
    assert row_counts(ctx) == before


def test_a_json_body_without_content_type_is_read_as_json(
    client: TestClient, ctx: AppContext, admin_key: str
) -> None:
    created = client.post(
        "/api/v1/contacts", content=b'{"email": "plain@example.com"}', headers=bearer(admin_key)
    )
    assert created.status_code == 201, created.text
    assert created.json()["email"] == "plain@example.com"
    empty = {**bearer(admin_key), "Content-Type": ""}
    blank = client.post("/api/v1/contacts", content=b'{"email": "blank@example.com"}', headers=empty)
    assert blank.status_code == 201, blank.text
    before = row_counts(ctx)
    refused = client.post(
        "/api/v1/contacts",
        content=b'{"email": "nan@example.com", "traits": {"n": NaN}}',
        headers=bearer(admin_key),
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "invalid_json")
    assert row_counts(ctx) == before


def test_an_optional_json_body_may_be_left_out_whatever_the_content_type(
    client: TestClient, admin_key: str
) -> None:
    """No body is no body of another media type: the operation runs with its default."""
    headers = {**bearer(admin_key), "Content-Type": "application/x-www-form-urlencoded"}
    response = client.post("/api/v1/journeys/install-templates", content=b"", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()


def test_operations_reading_other_media_types_keep_their_answers(
    client: TestClient, ctx: AppContext, admin_key: str
) -> None:
    """A CSV import sent JSON, a bounce email sent as a form: their own 415; a feedback webhook sent
    text/plain reads it (SNS does); the tracking API reads its own body."""
    headers = bearer(admin_key)
    csv_as_json = client.post(
        "/api/v1/imports", content=b'{"email": 1}', headers={**headers, "Content-Type": "application/json"}
    )
    assert csv_as_json.status_code == 415
    assert "text/csv" in csv_as_json.json()["error"]["message"]
    inbound_as_form = client.post(
        "/api/v1/email/inbound",
        content=b"a=b",
        headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert inbound_as_form.status_code == 415
    assert "message/rfc822" in inbound_as_form.json()["error"]["message"]
    feedback = client.post(
        "/api/v1/email/feedback/leadflow",
        content=b'[{"type": "bounce", "email": "gone@example.com"}]',
        headers={**headers, "Content-Type": "text/plain"},
    )
    assert feedback.status_code == 200, feedback.text
    csv = client.post(
        "/api/v1/imports",
        content=b"email\nann@example.com\n",
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert csv.status_code == 202, csv.text
