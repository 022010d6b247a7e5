"""A connector's ``options`` (the vendor's non-secret settings) on both databases: set, shown and changed
through the API, the CLI and the console (never the credentials), checked per vendor (an unknown name
or a bad value is a 422 with its code), and read by each vendor that has options in preference to the
same setting kept in the credentials by a connector made before options existed (still read there)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.connectors import config
from leadflow.connectors import service as connectors
from leadflow.connectors.mailchimp import MailchimpVendor
from leadflow.connectors.pipedrive import PipedriveVendor
from leadflow.connectors.salesforce import SalesforceVendor
from leadflow.connectors.worker import ConnectorWorker
from leadflow.contacts.processor import EventProcessor
from leadflow.kernel.commands import console
from leadflow.kernel.context import AppContext
from tests.integration.connectors.conftest import drain, identify
from tests.integration.web.conftest import make_user, sign_in
from tests.peers.mailchimp import API_KEY, LIST_ID, MailchimpPeer
from tests.support.http import bearer

pytestmark = pytest.mark.settings(network_allow="127.0.0.1")
BASE = "/api/v1/connectors"
PIPEDRIVE = {"vendor": "pipedrive", "name": "Deals", "credentials": {"api_token": "pd-SECRET"}}


def test_options_round_trip_through_the_api_and_bad_ones_are_422(client: TestClient, admin_key: str) -> None:
    body = {**PIPEDRIVE, "options": {"pipeline_id": 2, "stage_id": "7", "stages": {"won": 9}}}
    made = client.post(BASE, json=body, headers=bearer(admin_key))
    assert made.status_code == 201, made.text
    assert made.json()["options"] == {"pipeline_id": 2, "stage_id": 7, "stages": {"won": 9}}
    url = f"{BASE}/{made.json()['id']}"
    shown = client.get(url, headers=bearer(admin_key)).json()
    assert shown["options"] == {"pipeline_id": 2, "stage_id": 7, "stages": {"won": 9}}
    assert "pd-SECRET" not in str(shown)
    assert "credentials" not in shown
    changed = client.patch(url, json={"options": {"pipeline_id": 3}}, headers=bearer(admin_key))
    assert changed.json()["options"] == {"pipeline_id": 3}  # a PATCH replaces them all
    plain = client.post(BASE, json={**PIPEDRIVE, "name": "Plain"}, headers=bearer(admin_key)).json()
    assert plain["options"] == {}
    for given, code in (
        ({"pipeline": 2}, "unknown_option"),
        ({"list_id": "abc"}, "unknown_option"),  # Mailchimp's, not Pipedrive's
        ({"pipeline_id": -1}, "invalid_option"),
        ({"stages": {"won": "nine"}}, "invalid_option"),
    ):
        refused = client.patch(url, json={"options": given}, headers=bearer(admin_key))
        assert refused.status_code == 422, given
        assert refused.json()["error"]["code"] == code, given
    sf = {
        "vendor": "salesforce",
        "name": "SF",
        "credentials": {"session_id": "x"},
        "options": {"object": "Deal"},
    }
    refused = client.post(BASE, json=sf, headers=bearer(admin_key))
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_option")
    hub = {"vendor": "hubspot", "name": "H", "credentials": {"access_token": "x"}, "options": {"a": 1}}
    refused = client.post(BASE, json=hub, headers=bearer(admin_key))
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "unknown_option")
    assert client.get(url, headers=bearer(admin_key)).json()["options"] == {"pipeline_id": 3}


def test_options_in_the_cli_and_the_console(
    ctx: AppContext, client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")
    made = connectors.create(ctx, {**PIPEDRIVE, "options": {"stage_id": 4}}, actor="test")
    cli = CliRunner()
    changed = cli.invoke(app, ["connectors", "options", "Deals", "pipeline_id=5", 'stages={"won": 8}'])
    assert changed.exit_code == 0, changed.output
    assert config.get(ctx, made["id"])["options"] == {"pipeline_id": 5, "stages": {"won": 8}}
    monkeypatch.setattr(console, "_width", 300)  # the table's width: rich's console outlives the runner
    listed = cli.invoke(app, ["connectors", "list"])
    assert "pipeline_id=5" in listed.output
    assert "pd-SECRET" not in listed.output
    refused = cli.invoke(app, ["connectors", "options", "Deals", "pipe=5"])
    assert refused.exit_code != 0
    assert config.get(ctx, made["id"])["options"] == {"pipeline_id": 5, "stages": {"won": 8}}
    make_user(ctx, "admin")
    sign_in(client, "admin@example.com")
    page = client.get(f"/app/integrations/connectors/{made['id']}").text
    assert "<code>pipeline_id</code> = <code>5</code>" in page
    assert "pd-SECRET" not in page


def _vendor(ctx: AppContext, connector_id: str) -> object:
    worker = ConnectorWorker(ctx)
    try:
        return worker.vendor(config.load(ctx, connector_id))
    finally:
        worker.close()


def test_pipedrive_reads_its_options_over_the_credentials(ctx: AppContext) -> None:
    old = {"api_token": "pd-SECRET", "pipeline_id": 1, "stage_id": 3, "stages": {"won": 5}}
    before = connectors.create(ctx, {**PIPEDRIVE, "credentials": old}, actor="test")
    after = connectors.create(
        ctx, {**PIPEDRIVE, "credentials": old, "options": {"pipeline_id": 2, "stages": {"won": 6}}}, actor="t"
    )
    made = _vendor(ctx, before["id"])
    assert isinstance(made, PipedriveVendor)
    assert (made.pipeline_id, made.stage_id, made.stages) == (1, 3, {"won": 5})  # the old connector's
    made = _vendor(ctx, after["id"])
    assert isinstance(made, PipedriveVendor)
    assert (made.pipeline_id, made.stage_id, made.stages) == (2, 3, {"won": 6})  # stage_id: not given


def test_salesforce_reads_its_options_over_the_credentials(ctx: AppContext) -> None:
    old = {"session_id": "sf-SECRET", "object": "Lead", "external_id": "Email"}
    values = {"vendor": "salesforce", "name": "SF", "credentials": old, "host": "https://sf.example"}
    before = connectors.create(ctx, values, actor="test")
    options = {"object": "Contact", "external_id": "Leadflow_Id__c", "link_field": "Leadflow_Id__c"}
    after = connectors.create(ctx, {**values, "options": options}, actor="test")
    made = _vendor(ctx, before["id"])
    assert isinstance(made, SalesforceVendor)
    assert (made.object, made.external_id, made.link_field) == ("Lead", "Email", None)
    made = _vendor(ctx, after["id"])
    assert isinstance(made, SalesforceVendor)
    assert (made.object, made.external_id, made.link_field) == ("Contact", "Leadflow_Id__c", "Leadflow_Id__c")


def test_mailchimp_writes_to_the_audience_of_its_options(ctx: AppContext, processor: EventProcessor) -> None:
    with MailchimpPeer() as peer:
        values = {
            "vendor": "mailchimp",
            "name": "Newsletter",
            "credentials": {"api_key": API_KEY, "list_id": "old0list"},  # as a connector made before
            "host": peer.url,
            "options": {"list_id": LIST_ID},
        }
        made = connectors.create(ctx, values, actor="test")
        vendor = _vendor(ctx, made["id"])
        assert isinstance(vendor, MailchimpVendor)
        assert vendor.members == f"/3.0/lists/{LIST_ID}/members"
        worker = ConnectorWorker(ctx, rand=lambda: 0.5)
        try:
            identify(ctx, processor, "m1", email="mia@example.com", firstName="Mia")
            drain(worker)
        finally:
            worker.close()
        assert peer.member("mia@example.com") is not None
        assert peer.count() == 1
        assert peer.calls_to("PUT", r"/3\.0/lists/old0list/.*") == []
