"""Keyed digests of erased ids."""

from __future__ import annotations

import hashlib
import hmac

from leadflow.contacts import suppression


def test_digest_is_hmac_sha256_of_kind_and_value() -> None:
    expected = hmac.new(b"secret", b"user:u1", hashlib.sha256).hexdigest()
    assert suppression.digest("secret", "user", "u1") == expected
    assert len(expected) == 64


def test_digest_never_contains_the_id() -> None:
    assert "ann@example.com" not in suppression.digest("secret", "user", "ann@example.com")


def test_digest_depends_on_secret_kind_and_value() -> None:
    base = suppression.digest("secret", "user", "u1")
    assert suppression.digest("secret", "user", "u1") == base
    assert suppression.digest("other", "user", "u1") != base
    assert suppression.digest("secret", "anon", "u1") != base
    assert suppression.digest("secret", "user", "u2") != base


def test_event_digests_skip_missing_ids_and_list_users_first() -> None:
    result = suppression.event_digests("s", ["u1", None, ""], [None, "a1", "a2"])
    assert result == [
        suppression.digest("s", "user", "u1"),
        suppression.digest("s", "anon", "a1"),
        suppression.digest("s", "anon", "a2"),
    ]


def test_event_digests_accept_iterators_and_may_be_empty() -> None:
    assert suppression.event_digests("s", iter([None]), iter([])) == []
    assert suppression.event_digests("s", (v for v in ["u"]), ()) == [suppression.digest("s", "user", "u")]
