"""``leadflow console link``: a set-password link from the command line (no email needed)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.crm import service as crm
from tests.integration.web.conftest import csrf_of, sign_in


def test_console_link_sets_a_password(
    client: TestClient, database_url: str, monkeypatch: pytest.MonkeyPatch, user_of: Callable[..., crm.User]
) -> None:
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", database_url)
    monkeypatch.setenv("LEADFLOW_SECRET_KEY", "test-secret")  # the ctx fixture's
    user_of("marketer", password=None)
    printed = CliRunner().invoke(app, ["console", "link", "Marketer@example.com"])
    assert printed.exit_code == 0, printed.output
    link = "/app/reset/" + printed.stdout.strip().split("/app/reset/")[1]
    form = client.get(link)
    data = {"password": "set from the shell", "again": "set from the shell", "csrf": csrf_of(form.text)}
    assert client.post(link, data=data, follow_redirects=False).status_code == 303
    sign_in(client, "marketer@example.com", "set from the shell")
    unknown = CliRunner().invoke(app, ["console", "link", "nobody@example.com"])
    assert unknown.exit_code == 1
