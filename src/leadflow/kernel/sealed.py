"""Secrets kept encrypted at rest: the one way leadflow stores a credential it must use again later
(a webhook sender's signing secret today; the connectors' API tokens next).

A value is sealed with Fernet (AES-128-CBC and HMAC-SHA256) under a key derived from the installation's
secret key and a *purpose* (one key per use, so a value sealed for one purpose never opens for another).
A copy of the database alone therefore reveals nothing and lets no one sign or call anything. If the
installation's key changes, sealed values no longer open: :meth:`Sealer.unseal` raises
:class:`~leadflow.kernel.errors.Misconfigured` naming what to set again. Sealed values carry a prefix, so
a column may still hold values written before sealing was introduced; those are returned as they are.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken

from leadflow.kernel.errors import Misconfigured

PREFIX = "fernet:"


class Sealer:
    """Seals and opens the values of one purpose (e.g. ``"leadflow.webhooks.sources"``)."""

    def __init__(self, secret_key: str, purpose: str) -> None:
        key = hmac.new(secret_key.encode(), purpose.encode(), hashlib.sha256).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, value: str) -> str:
        return PREFIX + self._fernet.encrypt(value.encode()).decode()

    def unseal(self, stored: str, *, what: str) -> str:
        """The value; ``what`` names it in the error when it was sealed under another installation key."""
        if not stored.startswith(PREFIX):
            return stored
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode()).decode()
        except InvalidToken:
            raise Misconfigured(f"{what} was sealed under another installation key: set it again") from None


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
