"""``/docs`` and ``/redoc`` work without internet: every script, style and icon they name is served by
leadflow itself (``leadflow.api.docs``)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

REFERENCE = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|\burl:\s*'([^']+)'""")
TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}


def references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCE.findall(html)]


@pytest.mark.parametrize(("page", "expected"), [("/docs", 4), ("/redoc", 3)])
def test_the_page_names_only_assets_the_app_serves(client: TestClient, page: str, expected: int) -> None:
    answer = client.get(page)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", answer.text, re.IGNORECASE), answer.text
    found = references(answer.text)
    assert len(found) == expected, found
    for url in found:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        suffix = url[url.rfind(".") :]
        assert TYPES[suffix] in asset.headers["content-type"], (url, asset.headers["content-type"])
        assert len(asset.content) > 0


def test_swagger_ui_calls_no_outside_validator(client: TestClient) -> None:
    assert '"validatorUrl": null' in client.get("/docs").text


def test_the_scripts_are_the_real_bundles(client: TestClient) -> None:
    swagger = client.get("/docs-assets/swagger-ui-bundle.js")
    redoc = client.get("/docs-assets/redoc.standalone.js")
    assert b"SwaggerUIBundle" in swagger.content
    assert b"Redoc" in redoc.content


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_browser_may_load_only_from_leadflow(client: TestClient, page: str) -> None:
    policy = client.get(page).headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "http" not in policy
