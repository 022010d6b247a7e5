"""The worker's per-batch statements beside the outbox's (:mod:`leadflow.connectors.queries`): a batch of
contacts' scores with their links (one read), a batch's record on PostgreSQL (one statement), and the
events behind a batch of conversions (GA4)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from leadflow.connectors.models import connector_links
from leadflow.connectors.queries import unique_links
from leadflow.events.service import event_log
from leadflow.kernel import jsonutil
from leadflow.kernel.db import Sample
from leadflow.scoring import service as scoring

_e = event_log.c
_l = connector_links.c


def conversion_events(ids: Sequence[int]) -> sa.Select[Any]:
    """The events of these ids with what a GA4 hit needs (name, ids, context, properties, time)."""
    return sa.select(
        _e.id, _e.event, _e.anonymous_id, _e.user_id, _e.context, _e.properties, _e.timestamp
    ).where(_e.id.in_(list(ids)))


def scores_and_links(dialect: str, connector_id: str, contact_ids: Sequence[str]) -> sa.Select[Any]:
    """A batch's scores and its contacts' links to the connector in one statement: ``contact_id``,
    ``total``, ``band`` and the link's columns prefixed ``link_`` (``link_local_id`` null: no link; a
    contact may have a score, a link, both or neither).

    On PostgreSQL the ids travel as one array, and each id looks up its score and its link by primary
    key (``LATERAL … LIMIT 1``, which the planner cannot turn into a hash join). During a first backfill
    the links table grows from empty faster than autovacuum analyses it, and with the stale statistics a
    plain join read every link of the connector for each batch (45 ms at 90,000 links, against ~2 ms).
    SQLite's planner probes the keys of an ``IN`` list."""
    wanted = list(contact_ids)
    view = scoring.score_view().subquery()
    if dialect == "postgresql":
        ids = sa.func.unnest(sa.bindparam("ids", wanted, type_=postgresql.ARRAY(_l.local_id.type)))
        each = ids.table_valued("value").render_derived(name="wanted")
        score = (
            sa.select(view.c.total, view.c.band)
            .where(view.c.contact_id == each.c.value)
            .limit(1)
            .lateral("s")
        )
        link = (
            sa.select(connector_links)
            .where(_l.connector_id == connector_id, _l.kind == "contact", _l.local_id == each.c.value)
            .limit(1)
            .lateral("l")
        )
        return sa.select(
            each.c.value.label("contact_id"),
            score.c.total,
            score.c.band,
            *(column.label(f"link_{column.name}") for column in link.c),
        ).select_from(each.outerjoin(score, sa.true()).outerjoin(link, sa.true()))
    scores = (
        sa.select(view.c.contact_id, view.c.total, view.c.band)
        .where(view.c.contact_id.in_(wanted))
        .subquery("s")
    )
    linked = sa.select(connector_links).where(
        _l.connector_id == connector_id, _l.kind == "contact", _l.local_id.in_(wanted)
    )
    links = linked.subquery("l")
    return sa.select(
        sa.func.coalesce(scores.c.contact_id, links.c.local_id).label("contact_id"),
        scores.c.total,
        scores.c.band,
        *(column.label(f"link_{column.name}") for column in links.c),
    ).select_from(scores.join(links, links.c.local_id == scores.c.contact_id, full=True))


#: A batch's record on PostgreSQL as one statement (one round trip, atomic without a transaction): the
#: written rows leave the outbox (``:done``, ``[{id, version, leased}]``: deleted at the version claimed;
#: one a newer change kept is due again at ``:now``; either only while this worker's lease, ending at
#: ``leased``, is the row's), the identity links (``:links``, as for
#: :data:`~leadflow.connectors.queries.UPSERT_LINKS_JSON`) and the audit rows (``:audit``) saved.
#: Data-modifying ``WITH`` parts all run to completion; the release reads the delete's ``RETURNING`` so
#: no row is touched twice. The outbox rows are found by primary key (``:ids``, an array): joined to the
#: JSON alone, whose size the planner cannot know, they were found by scanning every pending row; and
#: ``state IS NOT DISTINCT FROM 'pending'`` keeps the partial due index out of the plan, which stale
#: statistics make look like a few rows (it holds the whole backlog).
RECORD_JSON = sa.text(
    "WITH done AS (SELECT id, version, leased FROM json_to_recordset(CAST(:done AS json)) AS d(id bigint, "
    "version integer, leased timestamptz)), "
    "gone AS (DELETE FROM connector_outbox o USING done WHERE o.id = ANY(CAST(:ids AS bigint[])) "
    "AND o.id = done.id AND o.version = done.version AND o.leased_until = done.leased "
    "AND o.state IS NOT DISTINCT FROM 'pending' RETURNING o.id), "
    "kept AS (UPDATE connector_outbox o SET next_at = CAST(:now AS timestamptz), leased_until = NULL, "
    "attempts = 0 FROM done WHERE o.id = ANY(CAST(:ids AS bigint[])) AND o.id = done.id "
    "AND o.leased_until = done.leased AND o.state IS NOT DISTINCT FROM 'pending' "
    "AND o.id NOT IN (SELECT id FROM gone) "
    "RETURNING o.id), "
    "links AS (INSERT INTO connector_links (connector_id, kind, local_id, remote_id, remote_modified_at, "
    "synced_at, fields) SELECT connector_id, kind, local_id, remote_id, remote_modified_at, synced_at, "
    "fields FROM json_to_recordset(CAST(:links AS json)) AS r(connector_id varchar, kind varchar, "
    "local_id varchar, remote_id varchar, remote_modified_at timestamptz, synced_at timestamptz, "
    "fields jsonb) "
    "ON CONFLICT (connector_id, kind, local_id) DO UPDATE SET remote_id = excluded.remote_id, "
    "remote_modified_at = excluded.remote_modified_at, synced_at = excluded.synced_at, "
    "fields = excluded.fields RETURNING 1), "
    "audit AS (INSERT INTO connector_audit (connector_id, kind, local_id, contact_id, remote_id, field, "
    "old_value, new_value, direction, outcome, detail, lag_ms, at) SELECT connector_id, kind, local_id, "
    "contact_id, remote_id, field, old_value, new_value, direction, outcome, detail, lag_ms, at "
    "FROM json_to_recordset(CAST(:audit AS json)) AS a(connector_id varchar, kind varchar, "
    "local_id varchar, contact_id varchar, remote_id varchar, field varchar, old_value text, "
    "new_value text, direction varchar, outcome varchar, detail text, lag_ms integer, at timestamptz) "
    "RETURNING 1) "
    "SELECT (SELECT count(*) FROM gone) AS gone, (SELECT count(*) FROM kept) AS kept"
)


def record_json(
    conn: Connection,
    done: Sequence[tuple[int, int, datetime]],
    links: Sequence[dict[str, Any]],
    audit: Sequence[dict[str, Any]],
    now: datetime,
) -> None:
    """Run :data:`RECORD_JSON` (PostgreSQL): ``done`` the written rows as ``(id, version claimed, lease
    end)``."""
    conn.execute(
        RECORD_JSON,
        {
            "done": jsonutil.dumps([{"id": i, "version": v, "leased": at} for i, v, at in done]),
            "ids": [i for i, _, _ in done],
            "links": jsonutil.dumps(unique_links(links)),
            "audit": jsonutil.dumps(list(audit)),
            "now": now,
        },
    )


SAMPLES: list[Sample] = [
    lambda: conversion_events([1, 2]),
    lambda: scores_and_links("sqlite", "c", ["x"]),
    lambda: scores_and_links("postgresql", "c", ["x"]),
    lambda: RECORD_JSON,
]
