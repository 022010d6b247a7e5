"""A day or an instant at the edge of the calendar (year 1, year 9999, an offset that crosses either) is a
``4xx`` with its code on every ``GET`` that takes one as a query parameter, never a ``500`` (a period's
day before or after it used to overflow)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi.testclient import TestClient

from tests.support.http import bearer

EDGES = ["0001-01-01", "9999-12-31", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59", "1899-12-31"]


def _temporal(schema: dict[str, Any]) -> bool:
    options = [schema, *schema.get("anyOf", [])]
    return any(option.get("format") in ("date", "date-time") for option in options)


def dated(document: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for path, items in document["paths"].items():
        if not path.startswith("/api/v1/") or "{" in path:
            continue
        for parameter in (items.get("get") or {}).get("parameters", []):
            if parameter.get("in") == "query" and _temporal(parameter.get("schema", {})):
                yield path, parameter["name"]


def test_a_day_at_the_calendars_edge_is_refused_not_a_crash(
    client: TestClient, make_key: Callable[..., str]
) -> None:
    admin = bearer(make_key("admin"))
    found = list(dated(client.get("/openapi.json").json()))
    assert ("/api/v1/analytics/kpis", "to") in found
    for path, name in found:
        for edge in EDGES:
            answer = client.get(path, params={name: edge}, headers=admin)
            assert answer.status_code < 500, f"{path}?{name}={edge}: {answer.text}"
            if answer.status_code >= 400:
                assert answer.json()["error"]["code"], (path, name, edge)
    refused = client.get("/api/v1/analytics/kpis", params={"to": "9999-12-31"}, headers=admin)
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_period")
