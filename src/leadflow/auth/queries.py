"""The API key table's SQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from leadflow.auth.models import api_keys
from leadflow.kernel.db import Sample

INSERT = api_keys.insert()
BY_ID = sa.select(api_keys).where(api_keys.c.id == sa.bindparam("key_id"))
REVOKE = (
    api_keys.update().where(api_keys.c.id == sa.bindparam("key_id")).values(revoked_at=sa.bindparam("at"))
)
COUNT = sa.select(sa.func.count()).select_from(api_keys)
#: A live key by the digest of its plaintext (the per-request look-up, behind a cache).
LIVE_BY_DIGEST = sa.select(api_keys.c.id, api_keys.c.name, api_keys.c.scopes, api_keys.c.last_used_at).where(
    api_keys.c.key_hash == sa.bindparam("key_hash"), api_keys.c.revoked_at.is_(None)
)
#: A key was used at ``at``: written only when what is recorded is older than ``stale``.
USED = (
    api_keys.update()
    .where(
        api_keys.c.id == sa.bindparam("key_id"),
        sa.or_(api_keys.c.last_used_at.is_(None), api_keys.c.last_used_at < sa.bindparam("stale")),
    )
    .values(last_used_at=sa.bindparam("at"))
)


def listing(*, include_revoked: bool) -> sa.Select[Any]:
    """Keys in creation order, revoked ones too unless told otherwise."""
    query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    if not include_revoked:
        query = query.where(api_keys.c.revoked_at.is_(None))
    return query


SAMPLES: list[Sample] = [lambda: listing(include_revoked=False)]
