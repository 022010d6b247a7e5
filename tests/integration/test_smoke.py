from __future__ import annotations

from fastapi.testclient import TestClient

from leadflow.events.processor import EventProcessor
from tests.support.http import basic, bearer


def test_identify_then_read(client: TestClient, write_key: str, admin_key: str, processor: EventProcessor) -> None:
    response = client.post(
        "/v1/identify", json={"userId": "u1", "traits": {"email": "Ann@Example.com", "firstName": "Ann"}},
        headers=basic(write_key),
    )
    assert response.status_code == 200, response.text
    assert processor.drain() == 1
    found = client.get("/api/v1/contacts", headers=bearer(admin_key)).json()
    assert [c["email"] for c in found["data"]] == ["ann@example.com"]
