"""Who calls the API: a key's principal and what finds it. No web framework here, so that the command line
and the workers (which check keys but serve no HTTP) do not load one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

KEY_PREFIX = "lf_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key and what its scopes grant."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    grants: frozenset[str]

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"

    def allows(self, scope: str) -> bool:
        return scope in self.grants


class Authenticator(Protocol):
    """Finds the principal an API key stands for (the auth domain's key cache)."""

    def authenticate(self, key: str) -> Principal | None: ...

    def invalidate(self) -> None:
        """Forget cached look-ups (after a key is revoked)."""
