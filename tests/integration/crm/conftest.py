"""Fixtures of the CRM's tests: the app with an admin key, and leads made through the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.context import AppContext
from tests.support.events import send
from tests.support.http import bearer


@pytest.fixture
def api(client: TestClient, admin_key: str) -> TestClient:
    client.headers.update(bearer(admin_key))
    return client


@pytest.fixture
def identify(ctx: AppContext, processor: EventProcessor) -> Callable[..., None]:
    """Identify people (``user_id -> traits``) through the tracking write path and process them."""

    def make(people: dict[str, dict[str, Any]]) -> None:
        send(ctx, *({"type": "identify", "userId": uid, "traits": traits} for uid, traits in people.items()))
        processor.drain()

    return make


def user(api: TestClient, name: str, email: str, **fields: Any) -> dict[str, Any]:
    answer = api.post("/api/v1/crm/users", json={"name": name, "email": email, **fields})
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found
