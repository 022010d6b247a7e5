"""Secrets sealed at rest (kernel.sealed): they open with the same installation key and purpose only."""

from __future__ import annotations

import pytest

from leadflow.kernel.errors import Misconfigured
from leadflow.kernel.sealed import Sealer, is_sealed


def test_a_sealed_value_opens_with_the_same_key_and_purpose() -> None:
    sealer = Sealer("installation-key", "leadflow.test")
    stored = sealer.seal("whsec_top-secret")
    assert is_sealed(stored)
    assert "top-secret" not in stored
    assert sealer.unseal(stored, what="the test secret") == "whsec_top-secret"
    assert Sealer("installation-key", "leadflow.test").unseal(stored, what="it") == "whsec_top-secret"


def test_two_seals_of_one_value_differ() -> None:
    sealer = Sealer("installation-key", "leadflow.test")
    assert sealer.seal("same") != sealer.seal("same")


@pytest.mark.parametrize(("key", "purpose"), [("another-key", "leadflow.test"), ("installation-key", "x")])
def test_another_key_or_purpose_does_not_open_it(key: str, purpose: str) -> None:
    stored = Sealer("installation-key", "leadflow.test").seal("whsec_top-secret")
    with pytest.raises(Misconfigured, match="the test secret was sealed under another installation key"):
        Sealer(key, purpose).unseal(stored, what="the test secret")


def test_a_value_stored_before_sealing_is_returned_as_it_is() -> None:
    assert not is_sealed("plain")
    assert Sealer("k", "p").unseal("plain", what="it") == "plain"
