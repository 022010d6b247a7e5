"""Every JSON example in ``docs/segments.md`` is accepted by the API it documents, on both databases.

The examples are extracted from the page itself (fenced ``json`` blocks and inline code), so a new
example is tested as soon as it is written; one the test cannot classify fails it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.context import AppContext
from tests.support.contacts import by_user
from tests.support.events import send
from tests.support.http import bearer

DOCS = Path(__file__).resolve().parents[2] / "docs"
FENCED = re.compile(r"```json\n(.*?)```", re.DOTALL)
INLINE = re.compile(r"`(\{[^`]*\})`")
RULE_KEYS = {"all", "any", "not", "field", "event", "page", "email", "segment"}
# Parts of a rule, not rules: each is tested inside the behaviour it belongs to.
FRAGMENTS = {"count", "last", "first", "total"}
# Answers, not requests: the error body the API sends back.
ANSWERS = {"error"}


def json_objects(text: str) -> list[Any]:
    """Every JSON object in ``text`` (prose and grammar such as ``[ ... ]`` in between are skipped)."""
    decoder = json.JSONDecoder()
    found: list[Any] = []
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            position = text.find("{", position + 1)
            continue
        found.append(value)
        position = text.find("{", end)
    return found


def examples(page: str, *, inline: bool = True) -> list[Any]:
    """The JSON objects of a page's ``json`` blocks and, with ``inline``, of its inline code."""
    text = (DOCS / page).read_text("utf-8")
    fenced = [obj for block in FENCED.findall(text) for obj in json_objects(block)]
    if not inline:
        return fenced
    prose = FENCED.sub("", text)
    spans = [obj for code in INLINE.findall(prose) for obj in json_objects(code)]
    return fenced + spans


def _substitute(value: Any, ids: dict[str, str]) -> Any:
    text = json.dumps(value)
    for placeholder, real in ids.items():
        text = text.replace(placeholder, real)
    assert "<" not in text, f"an unknown placeholder in {text}"
    return json.loads(text)


def _request(example: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The endpoint an example belongs to, and the body to send it with."""
    keys = set(example)
    if keys & ANSWERS:
        return "", {}
    if "points" in keys:
        return "/api/v1/scoring/rules", example
    if keys & RULE_KEYS:
        return "/api/v1/segments/preview", {"rules": example}
    if keys <= FRAGMENTS:
        return "/api/v1/segments/preview", {"rules": {"event": "Order Completed", **example}}
    raise AssertionError(f"docs/segments.md: an example this test cannot classify: {example}")


@pytest.fixture
def api(client: TestClient, admin_key: str) -> TestClient:
    client.headers.update(bearer(admin_key))
    return client


def test_the_page_has_the_examples_it_is_known_for() -> None:
    found = examples("segments.md")
    assert {"field": "traits.plan", "op": "eq", "value": "pro"} in found
    assert any("lifecycle_stage" in json.dumps(e) and '"lt"' in json.dumps(e) for e in found)
    assert len(found) >= 12


def test_every_segments_example_is_accepted(api: TestClient) -> None:
    journeys = api.get("/api/v1/journeys").json()["data"]
    listed = api.post("/api/v1/segments", json={"name": "Doc list", "kind": "static"})
    assert listed.status_code == 201, listed.text
    ids = {
        "<journey id>": journeys[0]["id"] if journeys else "j_docs_example",
        "<nurture journey id>": journeys[0]["id"] if journeys else "j_docs_example",
        "<segment or list id>": listed.json()["id"],
        "<id>": listed.json()["id"],
    }
    sent = 0
    for example in examples("segments.md"):
        path, body = _request(example)
        if not path:
            continue
        answer = api.post(path, json=_substitute(body, ids))
        assert 200 <= answer.status_code < 300, f"{example}: {answer.status_code} {answer.text}"
        sent += 1
    assert sent >= 12


@pytest.mark.parametrize(
    ("op", "stage", "expected"),
    [
        ("lt", "sql", {"v", "l", "m"}),
        ("lte", "sql", {"v", "l", "m", "s"}),
        ("gte", "mql", {"m", "s", "c"}),
        ("gt", "customer", set()),
    ],
)
def test_lifecycle_stages_compare_in_their_order(
    api: TestClient, ctx: AppContext, processor: EventProcessor, op: str, stage: str, expected: set[str]
) -> None:
    stages = {"v": "visitor", "l": "lead", "m": "mql", "s": "sql", "c": "customer"}
    send(ctx, *({"type": "identify", "userId": user} for user in stages))
    processor.drain()
    for user, wanted in stages.items():
        contact_id = by_user(ctx, user)["id"]
        changed = api.patch(f"/api/v1/contacts/{contact_id}", json={"lifecycle_stage": wanted})
        assert changed.status_code == 200, changed.text
    rule = {"field": "lifecycle_stage", "op": op, "value": stage}
    preview = api.post("/api/v1/segments/preview", json={"rules": rule})
    assert preview.status_code == 200, preview.text
    assert {c["user_id"] for c in preview.json()["contacts"]} == expected


@pytest.mark.parametrize("value", [3, "pro", None, ["lead"]])
def test_an_ordered_stage_comparison_needs_a_stage(api: TestClient, value: Any) -> None:
    rule = {"field": "lifecycle_stage", "op": "lt", "value": value}
    answer = api.post("/api/v1/segments/preview", json={"rules": rule})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_rule"


def test_the_journey_simulation_script_of_docs_journeys_runs(api: TestClient) -> None:
    """docs/journeys.md's JSON example is a simulation script: it runs against a shipped journey."""
    scripts = examples("journeys.md", inline=False)  # inline JSON there shows answers
    assert scripts, "docs/journeys.md has no JSON example any more"
    installed = api.post("/api/v1/journeys/install-templates", json={"names": ["welcome-series"]})
    assert installed.status_code == 200, installed.text
    journey_id = installed.json()[0]["journey_id"]
    for script in scripts:
        assert {"contact", "events"} & set(script), f"docs/journeys.md: not a simulation script: {script}"
        answer = api.post(f"/api/v1/journeys/{journey_id}/simulate", json=script)
        assert answer.status_code == 200, answer.text
        assert answer.json()["timeline"]
