"""A cursor is something the API issued, read back: a forged one (valid base64 JSON whose positions have
another type, a NUL, a huge value) is ``400 invalid_cursor`` on every list that takes one, never a
``500`` — whatever type the list's positions have (ids, numbers, times). Lists under a contact are asked for a
real one; under anything else the path's unknown id may answer 404 first."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.support.http import bearer

KEYS = ("after", "before", "t", "id", "a", "e", "at")
HOSTILE: list[Any] = [5, -1, 10**30, 1.5, True, None, [], ["x"], {}, {"a": 1}, "\u0000", "x" * 5000]
HOSTILE += ["not a time"]


def forged(value: Any) -> str:
    raw = json.dumps(dict.fromkeys(KEYS, value)).encode()  # the standard library's: 10**30 too
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def lists_with_cursors(document: dict[str, Any]) -> list[str]:
    found = []
    for path, items in document["paths"].items():
        parameters = (items.get("get") or {}).get("parameters", [])
        if path.startswith("/api/v1/") and any(p.get("name") == "cursor" for p in parameters):
            found.append(path)
    return found


def test_a_forged_cursor_is_refused_by_every_list(client: TestClient, make_key: Callable[..., str]) -> None:
    admin = bearer(make_key("admin"))
    person = client.post("/api/v1/contacts", json={"email": "ann@example.com"}, headers=admin).json()
    known = {"contact_id": person["id"], "email": "ann@example.com", "id_or_email": person["id"]}
    paths = lists_with_cursors(client.get("/openapi.json").json())
    assert {"/api/v1/contacts", "/api/v1/contacts/{contact_id}/events"} <= set(paths)
    assert len(paths) >= 20
    for value in HOSTILE:
        cursor = forged(value)
        for template in paths:
            path = re.sub(r"\{([^}]+)\}", lambda m: known.get(m.group(1), "nope"), template)
            answer = client.get(path, params={"cursor": cursor}, headers=admin)
            assert answer.status_code < 500, f"{path} {value!r}: {answer.text}"
            if answer.status_code >= 400:
                assert answer.json()["error"]["code"], path
        search = client.get("/api/v1/contacts", params={"cursor": cursor, "q": "ann"}, headers=admin)
        assert search.status_code < 500, search.text
