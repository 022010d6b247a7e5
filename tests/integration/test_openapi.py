"""``/openapi.json`` documents every status a REST operation answers, each error with ``ErrorBody``;
every operation is called for real and what it answers must be in its document."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from leadflow.api import media
from leadflow.api.media import Bodies
from leadflow.api.openapi import CONFLICTS
from leadflow.kernel.settings import Settings
from tests.support.http import bearer

ERROR_REF = "#/components/schemas/ErrorBody"
# Documented as JSON, but reads its body whatever its media type (SNS posts text/plain).
READS_ANY_MEDIA_TYPE = {("post", "/api/v1/email/feedback/{provider}")}
NOT_JSON = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b")


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, items in document["paths"].items():
        if path.startswith("/api/v1/"):
            for method, operation in items.items():
                yield method, path, operation


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "nope", path)


def documented(operation: dict[str, Any], status: int) -> bool:
    return str(status) in operation["responses"]


def reads_json(method: str, path: str, operation: dict[str, Any]) -> bool:
    """A body documented only as JSON, by an operation that reads only JSON."""
    content = operation.get("requestBody", {}).get("content", {})
    return set(content) == {"application/json"} and (method, path) not in READS_ANY_MEDIA_TYPE


def assert_error(operation: dict[str, Any], answer: Any, where: str) -> None:
    """An error answer: its status is documented with ErrorBody, and its body has that shape."""
    status = answer.status_code
    assert documented(operation, status), f"{where} answered {status}, not documented: {answer.text}"
    schema = operation["responses"][str(status)]["content"]["application/json"]["schema"]
    assert schema == {"$ref": ERROR_REF}, where
    error = answer.json()["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A CSV import's own limit, small enough to send a body over it."""
    return settings.model_copy(update={"import_max_bytes": 2 * 1024 * 1024})


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    found: dict[str, Any] = answer.json()
    return found


def test_every_operation_documents_what_its_shape_can_answer(document: dict[str, Any]) -> None:
    error_body = document["components"]["schemas"]["ErrorBody"]
    assert error_body["required"] == ["error"]
    detail = document["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    checked = 0
    for method, path, operation in operations(document):
        wanted = {401, 403, 429} if operation.get("security") else set()
        if "{" in path:
            wanted.add(404)
        if "requestBody" in operation:
            wanted |= {400, 413, 422}
        if reads_json(method, path, operation):
            wanted.add(415)
        if (method, path) in CONFLICTS:
            wanted.add(409)
        missing = {s for s in wanted if not documented(operation, s)}
        assert not missing, f"{method.upper()} {path} does not document {sorted(missing)}"
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == {"$ref": ERROR_REF}
        checked += 1
    assert checked >= 50


def test_json_operations_are_found_in_the_routes(client: TestClient, document: dict[str, Any]) -> None:
    """The edge and the document learn which operations read JSON by walking the app's routes (FastAPI
    keeps included routers nested): the walk reaches every documented operation, and agrees with
    what the document shows."""
    app = client.app
    assert isinstance(app, FastAPI)
    bodies = Bodies(app.router.routes)
    assert bodies.operations == media._operations(app.router.routes)  # what is read once = a fresh walk
    walked = {(o.method.lower(), o.path) for o in bodies.operations}
    documented_operations = {(method, path) for path, items in document["paths"].items() for method in items}
    assert walked >= documented_operations, documented_operations - walked
    expected = {(m, p) for m, p, operation in operations(document) if reads_json(m, p, operation)}
    assert len(expected) > 20
    assert bodies.json_operations() == expected
    assert bodies.reads_json("POST", "/api/v1/contacts")
    assert bodies.reads_json("PATCH", "/api/v1/contacts/c-1")
    assert not bodies.reads_json("POST", "/api/v1/imports")
    assert not bodies.reads_json("POST", "/api/v1/email/feedback/ses")
    assert not bodies.reads_json("GET", "/api/v1/contacts")


def test_every_conflict_entry_names_a_real_operation(document: dict[str, Any]) -> None:
    found = {(method, path) for method, path, _ in operations(document)}
    assert found >= CONFLICTS, CONFLICTS - found


def test_every_operation_answers_only_what_it_documents(
    client: TestClient, document: dict[str, Any], make_key: Callable[..., str]
) -> None:
    """Without a key, with a key lacking the scope, with an unknown id, an empty body, a body over the
    limit and a body of another media type (415 where the operation reads JSON): each answer's status
    is documented, with the error body it has."""
    ingest_only, admin = bearer(make_key("ingest")), bearer(make_key("admin"))
    too_large = b"{" + b" " * (1024 * 1024) + b"}"
    too_large_import = b"{" + b" " * (2 * 1024 * 1024) + b"}"  # LEADFLOW_IMPORT_MAX_BYTES, above
    for method, path, operation in operations(document):
        url, where = concrete(path), f"{method.upper()} {path}"
        body: dict[str, Any] | None = {} if "requestBody" in operation else None
        if operation.get("security"):
            anonymous = client.request(method, url, json=body)
            assert anonymous.status_code == 401, where
            assert_error(operation, anonymous, where)
            lacking = client.request(method, url, headers=ingest_only, json=body)
            assert lacking.status_code == 403, where
            assert_error(operation, lacking, where)
        answer = client.request(method, url, headers=admin, json=body)
        assert answer.status_code < 500, f"{where}: {answer.text}"
        if answer.status_code >= 400:
            assert_error(operation, answer, where)
        else:
            assert documented(operation, answer.status_code), where
        if "requestBody" in operation:
            headers = {**admin, "content-type": "application/json"}
            large_body = too_large_import if path == "/api/v1/imports" else too_large
            large = client.request(method, url, headers=headers, content=large_body)
            assert large.status_code == 413, where
            assert_error(operation, large, where)
            for media_type in NOT_JSON:
                headers = {**admin, "content-type": media_type}
                other = client.request(method, url, headers=headers, content=b"{}")
                assert other.status_code < 500, f"{where}: {other.text}"
                if reads_json(method, path, operation):
                    assert other.status_code == 415, f"{where} {media_type}: {other.text}"
                    assert other.json()["error"]["code"] == "unsupported_media_type"
                if other.status_code >= 400:
                    assert_error(operation, other, f"{where} {media_type}")


def test_post_contacts_answers_201_then_200_as_documented(
    client: TestClient, document: dict[str, Any], admin_key: str
) -> None:
    operation = document["paths"]["/api/v1/contacts"]["post"]
    contact = {"$ref": "#/components/schemas/Contact"}
    for status in ("201", "200"):
        assert operation["responses"][status]["content"]["application/json"]["schema"] == contact
    body = {"email": "ann@example.com", "first_name": "Ann"}
    created = client.post("/api/v1/contacts", json=body, headers=bearer(admin_key))
    again = client.post("/api/v1/contacts", json=body, headers=bearer(admin_key))
    assert (created.status_code, again.status_code) == (201, 200)
    assert created.json()["id"] == again.json()["id"]
    taken = client.post(
        "/api/v1/contacts", json={"user_id": "u1", "email": "bob@example.com"}, headers=bearer(admin_key)
    )
    assert taken.status_code == 201
    conflict = client.patch(
        f"/api/v1/contacts/{created.json()['id']}", json={"user_id": "u1"}, headers=bearer(admin_key)
    )
    assert conflict.status_code == 409, conflict.text
    assert_error(document["paths"]["/api/v1/contacts/{contact_id}"]["patch"], conflict, "PATCH contact")
