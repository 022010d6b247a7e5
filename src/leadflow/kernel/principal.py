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

    def recall(self, key: str) -> tuple[bool, Principal | None]:
        """``(True, principal or None)`` when the answer is known without the database, else
        ``(False, None)``: an async caller then runs :meth:`authenticate` in a thread."""
        ...

    def invalidate(self) -> None:
        """Forget cached look-ups (after a key is revoked)."""
