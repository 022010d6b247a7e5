"""The console's journeys pages: the list with run counts, a journey's graph with each step's counts
(equal to the database's), the YAML editor's problems with their lines (422, never 500), publish /
pause / resume / archive (audited as the user), versions, the simulator's rendered email, roles and
CSRF — on both databases, through the pages' forms."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
import yaml
from fastapi.testclient import TestClient

from leadflow.crm import service as crm
from leadflow.journeys import service as journeys
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from tests.integration.web.conftest import sign_in
from tests.support import journeys as j

MARKETER = "user:marketer@example.com"
FLOW: dict[str, Any] = {
    "name": "Split test",
    "trigger": {"type": "event", "event": "Signed Up"},
    "steps": [
        {"id": "hello", "type": "send_email", "template": "hello", "next": "pause-1d"},
        {"id": "pause-1d", "type": "wait", "duration": "1d", "next": "ab"},
        {
            "id": "ab",
            "type": "split",
            "paths": [{"name": "left", "weight": 50, "next": "again"}, {"name": "right", "weight": 50}],
        },
        {"id": "again", "type": "send_email", "template": "hello"},
    ],
}


def _audit(ctx: AppContext, entity_id: str) -> list[tuple[str, str]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT action, actor FROM audit_log WHERE entity_id = :id ORDER BY id"),
            {"id": entity_id},
        )
        return [(r.action, r.actor) for r in rows]


def _db_counts(ctx: AppContext, journey_id: str) -> dict[str, dict[str, int]]:
    """Per step, straight from journey_steps: distinct runs entered / waiting / done / failed."""
    found: dict[str, Counter[str]] = {}
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT step_id, run_id, status FROM journey_steps WHERE journey_id = :id"),
            {"id": journey_id},
        ).all()
    runs: dict[tuple[str, str], set[str]] = {}
    for step_id, run_id, status in rows:
        runs.setdefault((step_id, "entered"), set()).add(run_id)
        kind = {"pending": "waiting", "held": "waiting", "done": "completed"}.get(status, status)
        runs.setdefault((step_id, kind), set()).add(run_id)
    for (step_id, kind), ids in runs.items():
        found.setdefault(step_id, Counter())[kind] = len(ids)
    return {s: dict(c) for s, c in found.items()}


def _page_counts(html: str) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = {}
    for step_id, cells in re.findall(r'<tr data-step="([^"]+)">(.*?)</tr>', html, re.S):
        values = dict(re.findall(r'data-count="(\w+)">(\d+)<', cells))
        found[step_id] = {k: int(v) for k, v in values.items() if int(v) and k != "converted"}
    return {step_id: counts for step_id, counts in found.items() if counts}


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_list_and_graph_show_the_databases_counts_and_versions(
    client: TestClient, ctx: AppContext, clock: VirtualClock, user_of: Callable[..., crm.User]
) -> None:
    user_of("marketer")
    j.template(ctx, "hello")
    journey_id = j.publish(ctx, FLOW)
    for n in range(4):
        j.identify(ctx, f"u{n}", email=f"u{n}@example.com")
        j.track(ctx, f"u{n}", "Signed Up")
    j.settle(ctx)
    j.advance(ctx, clock, timedelta(hours=25), step=timedelta(hours=25))
    j.identify(ctx, "late", email="late@example.com")
    j.track(ctx, "late", "Signed Up")
    j.settle(ctx)
    csrf = sign_in(client, "marketer@example.com")

    listing = client.get("/app/journeys")
    assert listing.status_code == 200
    row = re.search(r'<tr data-journey="[^"]+">(.*?)</tr>', listing.text, re.S)
    assert row
    assert "Split test" in row.group(1)
    assert "data-entered>5<" in row.group(1)
    assert "data-active>1<" in row.group(1)  # the late one waits; the others completed
    assert "data-completed>4<" in row.group(1)

    graph = client.get(f"/app/journeys/{journey_id}")
    assert graph.status_code == 200
    assert _page_counts(graph.text) == _db_counts(ctx, journey_id)
    assert _page_counts(graph.text)["pause-1d"] == {"entered": 5, "waiting": 1, "completed": 4}
    for node in ("__trigger__", "hello", "pause-1d", "ab", "again", "__end__"):
        assert f'data-node="{node}"' in graph.text
    assert "left 50%" in graph.text
    assert "right 50%" in graph.text
    assert "event: Signed Up" in graph.text
    assert graph.text.count("<h1") == 1

    edited = yaml.safe_dump({**FLOW, "name": "Split test 2"})
    saved = client.post(
        f"/app/journeys/{journey_id}/edit", data={"definition": edited, "csrf": csrf}, follow_redirects=False
    )
    assert saved.status_code == 303
    assert journeys.get(ctx, journey_id).version == 2  # an active journey publishes at once
    page = client.get(f"/app/journeys/{journey_id}").text
    assert 'data-version="2"' in page
    assert 'data-version="1"' in page
    old = client.get(f"/app/journeys/{journey_id}/versions/1")
    assert old.status_code == 200
    assert "name: Split test\n" in old.text
    assert "Split test 2" in client.get(f"/app/journeys/{journey_id}/versions/2").text
    assert client.get(f"/app/journeys/{journey_id}/versions/9").status_code == 404
    assert client.get("/app/journeys/nope").status_code == 404


def test_editor_problems_and_status_changes_are_audited(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    user_of("marketer")
    j.template(ctx, "hello")
    csrf = sign_in(client, "marketer@example.com")

    broken = client.post("/app/journeys/new", data={"definition": "name: [x\nsteps: 1", "csrf": csrf})
    assert broken.status_code == 422
    assert "not valid YAML" in broken.text
    assert 'data-line="' in broken.text

    wrong = yaml.safe_dump(
        {**FLOW, "steps": [FLOW["steps"][0], {"id": "pause-1d", "type": "wait", "duration": "soon"}]},
        sort_keys=False,
    )
    refused = client.post("/app/journeys/new", data={"definition": wrong, "csrf": csrf})
    assert refused.status_code == 422
    assert "steps.1.wait.duration" in refused.text
    line = wrong.splitlines().index("  duration: soon") + 1
    assert f'data-line="{line}">line {line}</a>' in refused.text
    assert "soon" in refused.text  # the text as typed stays in the editor
    assert journeys.listing(ctx, status=None, after=None, limit=10) == []

    made = client.post(
        "/app/journeys/new", data={"definition": yaml.safe_dump(FLOW), "csrf": csrf}, follow_redirects=False
    )
    assert made.status_code == 303
    journey_id = made.headers["location"].split("/")[-1].split("?")[0]
    assert journeys.get(ctx, journey_id).status == "draft"
    bad_edit = client.post(f"/app/journeys/{journey_id}/edit", data={"definition": wrong, "csrf": csrf})
    assert bad_edit.status_code == 422
    assert "steps.1.wait.duration" in bad_edit.text
    assert journeys.get(ctx, journey_id).definition == FLOW

    for action, status in (
        ("publish", "active"),
        ("pause", "paused"),
        ("resume", "active"),
        ("archive", "archived"),
    ):
        answer = client.post(f"/app/journeys/{journey_id}/{action}", data={"csrf": csrf})
        assert answer.status_code == 200, answer.text  # followed to the journey's page
        assert f"data-status>{status}<" in answer.text
        assert journeys.get(ctx, journey_id).status == status
    actions = _audit(ctx, journey_id)
    for done in ("journey.created", "journey.published", "journey.paused", "journey.active"):
        assert (done, MARKETER) in actions
    assert ("journey.archived", MARKETER) in actions
    again = client.post(f"/app/journeys/{journey_id}/resume", data={"csrf": csrf})
    assert again.status_code == 409
    assert "archived journey cannot be active" in again.text


def test_roles_and_csrf(client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]) -> None:
    for role in ("marketer", "viewer", "sales"):
        user_of(role)
    j.template(ctx, "hello")
    journey_id = j.publish(ctx, FLOW)

    sign_in(client, "sales@example.com")
    assert client.get("/app/journeys").status_code == 403
    assert client.get(f"/app/journeys/{journey_id}").status_code == 403

    csrf = sign_in(client, "viewer@example.com")
    listing = client.get("/app/journeys")
    assert listing.status_code == 200
    assert "Create from template" not in listing.text
    page = client.get(f"/app/journeys/{journey_id}").text
    assert 'action="/app/journeys/' + journey_id + '/pause"' not in page
    for action in ("pause", "archive"):
        assert client.post(f"/app/journeys/{journey_id}/{action}", data={"csrf": csrf}).status_code == 403
    edit = {"definition": yaml.safe_dump(FLOW), "csrf": csrf}
    assert client.post(f"/app/journeys/{journey_id}/edit", data=edit).status_code == 403
    assert (
        client.post("/app/journeys/from-template", data={"template": "birthday", "csrf": csrf}).status_code
        == 403
    )
    assert journeys.get(ctx, journey_id).status == "active"

    sign_in(client, "marketer@example.com")
    assert client.post(f"/app/journeys/{journey_id}/pause", data={"csrf": "forged"}).status_code == 403
    assert client.post(f"/app/journeys/{journey_id}/pause").status_code == 403
    assert journeys.get(ctx, journey_id).status == "active"


def test_a_template_installs_and_simulates_with_its_rendered_email(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    user_of("marketer")
    csrf = sign_in(client, "marketer@example.com")
    made = client.post(
        "/app/journeys/from-template",
        data={"template": "welcome-series", "csrf": csrf},
        follow_redirects=False,
    )
    assert made.status_code == 303
    journey_id = made.headers["location"].split("/")[-1].split("?")[0]
    assert journeys.get(ctx, journey_id).key == "welcome-series"
    assert "Welcome (day 0)" in client.get(made.headers["location"]).text
    again = client.post(
        "/app/journeys/from-template",
        data={"template": "welcome-series", "csrf": csrf},
        follow_redirects=False,
    )
    assert again.headers["location"] == f"/app/journeys/{journey_id}?done=existed"

    form = {"email": "sam@example.com", "first_name": "Sam", "horizon": "7d", "events": "", "csrf": csrf}
    answer = client.post(f"/app/journeys/{journey_id}/simulate", data=form)
    assert answer.status_code == 200, answer.text
    subjects = re.findall(r"<span data-subject>([^<]+)</span>", answer.text)
    assert len(subjects) == 4
    assert subjects[0].startswith("Welcome to ")
    assert subjects[0].endswith(", Sam")
    frame = re.search(r'<iframe src="(/app/journeys/previews/[^"]+/0)"', answer.text)
    assert frame
    preview = client.get(frame.group(1))
    assert preview.status_code == 200
    assert "Welcome, Sam!" in preview.text
    assert "sandbox" in preview.headers["content-security-policy"]
    assert "<img" not in preview.text

    bad = client.post(f"/app/journeys/{journey_id}/simulate", data={**form, "events": "- {after: soon}"})
    assert bad.status_code == 422
    assert 'class="error"' in bad.text
    assert client.post(f"/app/journeys/{journey_id}/simulate", data={**form, "csrf": "x"}).status_code == 403
