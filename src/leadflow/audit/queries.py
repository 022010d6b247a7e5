"""The audit log's SQL: one insert, the GDPR redactions, the newest-first listing."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.audit.models import audit_log
from leadflow.kernel.db import Sample

#: One entry, or a batch of them (executemany).
INSERT = audit_log.insert()


def redact(entity_type: str, entity_ids: Sequence[str]) -> sa.Update:
    """Clear the data of every entry about these entities; the entries stay, marked ``redacted``."""
    return (
        audit_log.update()
        .where(audit_log.c.entity_type == entity_type, audit_log.c.entity_id.in_(list(entity_ids)))
        .values(data=None, redacted=True)
    )


def redact_mentioning(entity_type: str, key: str, values: Sequence[str]) -> sa.Update:
    """Clear the data of every ``entity_type`` entry whose ``data[key]`` is one of ``values``."""
    mentioned = audit_log.c.data[key].as_string()
    return (
        audit_log.update()
        .where(audit_log.c.entity_type == entity_type, mentioned.in_(list(values)))
        .values(data=None, redacted=True)
    )


def entries(
    *,
    entity_type: str | None,
    entity_ids: Sequence[str] | None,
    before_id: int | None,
    since: datetime | None,
    limit: int,
) -> sa.Select[Any]:
    """Entries newest first, filtered by whichever of the arguments are given."""
    query = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if entity_type:
        query = query.where(audit_log.c.entity_type == entity_type)
    if entity_ids is not None:
        query = query.where(audit_log.c.entity_id.in_(list(entity_ids)))
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    if since is not None:
        query = query.where(audit_log.c.at >= since)
    return query


SAMPLES: list[Sample] = [
    lambda: redact("contact", ["c1", "c2"]),
    lambda: redact_mentioning("suppression", "email", ["a@example.com"]),
    lambda: entries(
        entity_type="contact",
        entity_ids=["c1"],
        before_id=10,
        since=datetime(2026, 1, 1, tzinfo=UTC),
        limit=100,
    ),
]
