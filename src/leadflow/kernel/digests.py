"""Keyed digests of personal values: what leadflow keeps in place of an erased person's ids and address.

HMAC-SHA256 with the installation's secret over ``"{kind}:{value}"``: the same value always gives the
same digest (so a late event or a suppressed address is still recognised), the value cannot be read
back, and without the secret it cannot be confirmed by guessing.
"""

from __future__ import annotations

import hashlib
import hmac


def keyed(secret: str, kind: str, value: str) -> str:
    return hmac.new(secret.encode(), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
