"""Small helpers for talking to the API in tests."""

from __future__ import annotations

import base64


def basic(key: str) -> dict[str, str]:
    """Segment-style HTTP Basic: the write key as user name, empty password."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
