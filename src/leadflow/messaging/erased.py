"""What an erased person leaves in messaging (see :mod:`leadflow.messaging.erasure` for the rules).

``error = 'contact erased'`` marks the person's messages: what arrives about them later writes nothing
of them back. A suppression of their address is kept as a keyed digest, ``hmac:`` + HMAC-SHA256
(installation secret, address): the composer looks up both forms in one query, so the address is still
never mailed, but the address itself is gone.
"""

from __future__ import annotations

from collections.abc import Sequence

from leadflow.kernel.digests import keyed

ERASED = "contact erased"
DIGEST_PREFIX = "hmac:"


def suppression_key(secret: str, address: str) -> str:
    """The suppression-list key an erased address keeps (an address always holds ``@``, a key never)."""
    return DIGEST_PREFIX + keyed(secret, "email", address.strip().lower())


def suppression_keys(secret: str, addresses: Sequence[str]) -> dict[str, str]:
    """Each lower-cased address and its digest, mapped to the address: one look-up finds both forms."""
    found: dict[str, str] = {}
    for address in addresses:
        plain = address.strip().lower()
        found[plain] = plain
        found[suppression_key(secret, plain)] = plain
    return found
