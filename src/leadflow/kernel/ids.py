"""Identifiers: time-ordered ULIDs for entities, random tokens for secrets."""

from __future__ import annotations

import secrets

from ulid import ULID


def new_id() -> str:
    """A 26-character, lexicographically time-ordered id (ULID)."""
    return str(ULID())


def new_token(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)
