"""A connector's vendor options changed from its console page, on both databases: one field per option
the vendor reads, saved through connectors.service (audited ``connector.updated`` as the signed-in
admin, like the API), a refused value shown under its own field (422, every text kept, nothing saved),
an emptied field unsets the option; a viewer sees no form and a POST is 403; CSRF checked; a vendor
without options has no form."""

from __future__ import annotations

import re
from collections.abc import Callable

import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.connectors import service as connectors
from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from tests.integration.web.conftest import sign_in

ADMIN = "user:admin@example.com"
PIPEDRIVE = {"vendor": "pipedrive", "name": "Deals", "credentials": {"api_token": "pd-SECRET"}}


def _actions(ctx: AppContext, entity_id: str) -> list[tuple[str, str]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            sa.text("SELECT action, actor FROM audit_log WHERE entity_id = :id ORDER BY id"),
            {"id": entity_id},
        )
        return [(r.action, r.actor) for r in rows]


def test_admin_edits_options_with_errors_inline(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    user_of("admin")
    made = connectors.create(ctx, {**PIPEDRIVE, "options": {"stage_id": 4}}, actor="test")
    url = f"/app/integrations/connectors/{made['id']}"
    csrf = sign_in(client, "admin@example.com")
    page = client.get(url).text
    assert "data-options-form" in page
    assert re.search(r'name="option_stage_id" value="4"', page)
    for name in ("pipeline_id", "stage_id", "stages"):
        assert f'for="opt-{name}"' in page  # a label for each field

    bad = {"option_pipeline_id": "-3", "option_stage_id": "4", "option_stages": '{"won": "nine"}'}
    bad["csrf"] = csrf
    refused = client.post(f"{url}/options", data=bad)
    assert refused.status_code == 422
    assert 'data-option-error="pipeline_id"' in refused.text
    assert 'data-option-error="stages"' in refused.text
    assert 'data-option-error="stage_id"' not in refused.text
    assert 'aria-describedby="opt-pipeline_id-error"' in refused.text
    assert 'value="-3"' in refused.text  # kept to be corrected
    assert connectors.get(ctx, made["id"])["options"] == {"stage_id": 4}  # nothing saved
    not_json = client.post(f"{url}/options", data={**bad, "option_pipeline_id": "5", "option_stages": "{won"})
    assert not_json.status_code == 422
    assert 'data-option-error="stages"' in not_json.text

    good = {"option_pipeline_id": "5", "option_stage_id": "", "option_stages": '{"won": 9}', "csrf": csrf}
    saved = client.post(f"{url}/options", data=good, follow_redirects=False)
    assert saved.status_code == 303
    assert connectors.get(ctx, made["id"])["options"] == {"pipeline_id": 5, "stages": {"won": 9}}
    assert _actions(ctx, made["id"])[-1] == ("connector.updated", ADMIN)
    shown = client.get(saved.headers["location"]).text
    assert "Options saved." in shown
    assert 'name="option_stages" value="{&#34;won&#34;: 9}"' in shown
    assert "pd-SECRET" not in shown

    expired = client.post(f"{url}/options", data={**good, "csrf": "forged"})
    assert expired.status_code == 403
    hub = connectors.create(
        ctx, {"vendor": "hubspot", "name": "H", "credentials": {"access_token": "x"}}, actor="test"
    )
    hub_url = f"/app/integrations/connectors/{hub['id']}"
    assert "data-options-form" not in client.get(hub_url).text
    assert client.post(f"{hub_url}/options", data={"csrf": csrf}).status_code == 404


def test_viewer_sees_options_but_no_form(
    client: TestClient, ctx: AppContext, user_of: Callable[..., crm.User]
) -> None:
    user_of("viewer")
    made = connectors.create(ctx, {**PIPEDRIVE, "options": {"stage_id": 4}}, actor="test")
    url = f"/app/integrations/connectors/{made['id']}"
    csrf = sign_in(client, "viewer@example.com")
    page = client.get(url).text
    assert "data-options" in page
    assert "data-options-form" not in page
    refused = client.post(f"{url}/options", data={"option_stage_id": "9", "csrf": csrf})
    assert refused.status_code == 403
    assert connectors.get(ctx, made["id"])["options"] == {"stage_id": 4}
