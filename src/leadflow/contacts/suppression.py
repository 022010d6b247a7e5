"""After an erasure, events still in flight for the erased person must not rebuild the profile.

We keep keyed digests (HMAC-SHA256 with the installation's secret) of the erased user and anonymous
ids — never the ids themselves — and drop any later event that carries one of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from leadflow.kernel.digests import keyed as digest


def event_digests(secret: str, user_ids: Iterable[str | None], anon_ids: Iterable[str | None]) -> list[str]:
    values = [digest(secret, "user", v) for v in user_ids if v]
    values += [digest(secret, "anon", v) for v in anon_ids if v]
    return values
