"""DKIM through the deliverer: one signature per configured key, each verifiable on its own."""

from __future__ import annotations

from collections.abc import Callable

import dkim
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from leadflow.kernel.settings import Settings
from leadflow.messaging.build.dkim import configured, dns_record
from leadflow.messaging.delivery import outbox
from leadflow.messaging.delivery.deliverer import Deliverer
from leadflow.messaging.delivery.transport.capture import CaptureTransport
from leadflow.messaging.models import messages
from leadflow.runtime.context import build_context
from tests.support import journeys as j

DOMAIN = "school.example"


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {
        "rsa2026": _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "ed2026": _pem(ed25519.Ed25519PrivateKey.generate()),
    }


def _dns(keys: dict[str, str]) -> Callable[..., bytes | None]:
    records = {
        f"{selector}._domainkey.{DOMAIN}.".encode(): dns_record(pem.encode()).encode()
        for selector, pem in keys.items()
    }

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return records.get(name)

    return lookup


def _with(settings: Settings, **values: str) -> Settings:
    """``settings`` with ``values``, validated (secrets become ``SecretStr`` as from the environment)."""
    return Settings.model_validate(
        {**settings.model_dump(), "email_from": f"School <hello@{DOMAIN}>", **values}
    )


def _deliver_one(settings: Settings, key: str = "note") -> bytes:
    ctx = build_context(settings)
    try:
        j.template(ctx, key, kind="transactional", subject="Receipt", html="<p>Thanks</p>")
        row = {"key": key, "kind": "transactional", "to_address": "ann@example.com", "template": key}
        with ctx.db.write() as conn:
            outbox.enqueue_many(conn, ctx, [row], ctx.clock.now())
        capture = CaptureTransport()
        assert Deliverer(ctx, capture).deliver_due() == 1
        with ctx.db.read() as conn:
            status = sa.select(messages.c.status).where(messages.c.key == key)
            assert conn.execute(status).scalar_one() == "sent"
        (sent,) = capture.snapshot()
        return sent.data
    finally:
        ctx.close()


def test_rsa_and_ed25519_signatures_side_by_side_both_verify(
    settings: Settings, keys: dict[str, str]
) -> None:
    both = _with(
        settings,
        dkim_selector="rsa2026",
        dkim_private_key=keys["rsa2026"],
        dkim_second_selector="ed2026",
        dkim_second_private_key=keys["ed2026"],
    )
    assert [selector for selector, _, _ in configured(both)] == ["rsa2026", "ed2026"]
    data = _deliver_one(both)
    headers = data.split(b"\r\n\r\n", 1)[0]
    assert headers.count(b"DKIM-Signature:") == 2
    signatures = dkim.DKIM(data)
    algorithms = set()
    for index in (0, 1):
        assert signatures.verify(idx=index, dnsfunc=_dns(keys))
        algorithms.add(signatures.signature_fields[b"a"])
    assert algorithms == {b"rsa-sha256", b"ed25519-sha256"}


def test_a_second_key_alone_signs_too_and_no_key_signs_nothing(
    settings: Settings, keys: dict[str, str]
) -> None:
    second_only = _with(settings, dkim_second_selector="ed2026", dkim_second_private_key=keys["ed2026"])
    data = _deliver_one(second_only)
    assert data.count(b"DKIM-Signature:") == 1
    assert dkim.verify(data, dnsfunc=_dns(keys))
    assert b"DKIM-Signature:" not in _deliver_one(_with(settings), key="unsigned")
