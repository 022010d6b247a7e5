"""The statements of the connectors domain: connector instances, the coalescing outbox and the
worker's claim/record, identity links, the field audit, conflicts, and what erasure removes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from leadflow.connectors.models import (
    connector_audit,
    connector_conflicts,
    connector_links,
    connector_outbox,
    connectors,
)
from leadflow.kernel import jsonutil
from leadflow.kernel.db import Sample, bulk_insert, insert_for
from leadflow.scoring import service as scoring
from leadflow.segments import service as segments

PENDING, DEAD = "pending", "dead"
_c = connectors.c
_o = connector_outbox.c
_l = connector_links.c
_a = connector_audit.c
_x = connector_conflicts.c
_T = datetime(2026, 1, 1, tzinfo=UTC)

# --- connectors ------------------------------------------------------------------------------------

INSERT_CONNECTOR = connectors.insert()
CONNECTOR = sa.select(connectors).where(_c.id == sa.bindparam("connector_id"))
ACTIVE_CONNECTORS = sa.select(connectors).where(_c.active.is_(True)).order_by(_c.id)
DELETE_CONNECTOR = connectors.delete().where(_c.id == sa.bindparam("connector_id"))
CLEAR_LAST_ERRORS = connectors.update().where(_c.last_error.is_not(None)).values(last_error=None)


def connectors_page(after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(connectors).order_by(_c.id).limit(limit)
    return query.where(_c.id > after) if after else query


def connectors_of_ids(ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(connectors).where(_c.id.in_(list(ids)))


def update_connector(connector_id: str, values: dict[str, Any]) -> sa.Update:
    return connectors.update().where(_c.id == connector_id).values(values)


# --- the outbox --------------------------------------------------------------------------------------


def enqueue(dialect: str, rows: Sequence[dict[str, Any]]) -> Any:
    """Queue syncs, one row per (connector, kind, local id): a row already there gets a new version
    (the worker writes again after the write in flight), keeps its first ``enqueued_at``, falls due
    at the earlier time unless leased (then at the lease's end) or backing off after a failed attempt
    (then when its backoff ends: new changes during a vendor's outage must not spend its attempts and
    dead-letter it early); a dead one is revived (attempts 0)."""
    return _enqueue(insert_for(dialect, connector_outbox).values(list(rows)))


def enqueue_each(dialect: str) -> Any:
    """:func:`enqueue` as one statement run with many parameter sets: compiled once and cached (a
    backfill's pages of 500 rows as multi-row VALUES were compiled anew each time)."""
    return _enqueue(insert_for(dialect, connector_outbox))


def _enqueue(insert: Any) -> Any:
    new = insert.excluded
    dead = _o.state == DEAD
    leased = sa.and_(_o.leased_until.is_not(None), _o.leased_until > new.enqueued_at)
    return insert.on_conflict_do_update(
        index_elements=["connector_id", "kind", "local_id"],
        set_={
            "version": _o.version + 1,
            "state": PENDING,
            "attempts": sa.case((dead, 0), else_=_o.attempts),
            "dead_at": None,
            "payload": new.payload,
            "contact_id": new.contact_id,
            "next_at": sa.case(
                (dead, new.next_at),
                (leased, _o.next_at),
                (_o.attempts > 0, _o.next_at),
                (new.next_at < _o.next_at, new.next_at),
                else_=_o.next_at,
            ),
        },
    )


def claim(dialect: str, now: datetime, limit: int, until: datetime) -> sa.Update:
    """Claim and lease in one statement: due pending rows, oldest due first (locked, skipping those
    another worker holds, on PostgreSQL), due again and leased until ``until``; the rows returned (their
    ``attempts`` unchanged: an attempt counts when a request carrying the row is sent)."""
    due = (
        sa.select(_o.id)
        .where(_o.state == PENDING, _o.next_at <= now)
        .order_by(_o.next_at, _o.id)
        .limit(limit)
    )
    if dialect == "postgresql":
        # ``= ANY(ARRAY(…))``: the due ids are found first (an initplan walking the due index in order),
        # then updated by primary key. As ``IN (…)`` the planner may join them by hashing the whole
        # outbox, a scan of the backlog on every claim.
        chosen: Any = _o.id == sa.any_(sa.func.array(due.with_for_update(skip_locked=True).scalar_subquery()))
    else:
        chosen = _o.id.in_(due.scalar_subquery())
    return (
        connector_outbox.update()
        .where(chosen)
        .values(next_at=until, leased_until=until)
        .returning(
            _o.id,
            _o.connector_id,
            _o.kind,
            _o.local_id,
            _o.contact_id,
            _o.payload,
            _o.version,
            _o.attempts,
            _o.enqueued_at,
        )
    )


def renew(ids: Sequence[int], held: datetime, until: datetime) -> sa.Update:
    """Extend a lease this worker still holds (its end is still ``held``): the rows another worker
    claimed after the lease ran out are not returned, and the caller leaves them to that worker."""
    return (
        connector_outbox.update()
        .where(_o.id.in_(list(ids)), _o.leased_until == held, _o.state == PENDING)
        .values(next_at=until, leased_until=until)
        .returning(_o.id)
    )


def unclaim(ids: Sequence[int], held: datetime, now: datetime) -> sa.Update:
    """Give back rows claimed but not worked (a stream that failed with a pass claimed ahead): due again
    at ``now``, while this worker's lease (``held``) is still theirs."""
    return (
        connector_outbox.update()
        .where(_o.id.in_(list(ids)), _o.leased_until == held, _o.state == PENDING)
        .values(next_at=now, leased_until=None)
    )


#: A row written at the version claimed goes (a newer version stays, due at once: see RELEASE).
DONE = connector_outbox.delete().where(
    _o.id == sa.bindparam("b_id"), _o.version == sa.bindparam("b_version"), _o.state == PENDING
)
RELEASE = (
    connector_outbox.update()
    .where(_o.id == sa.bindparam("b_id"), _o.state == PENDING)
    .values(next_at=sa.bindparam("v_next_at", type_=_o.next_at.type), leased_until=None, attempts=0)
)
#: A failed attempt: due again at ``v_next_at``, its attempts now ``v_attempts`` (one more when a request
#: carried the row, else unchanged: a 429, the bucket), if this worker's lease (``b_leased``) still holds.
RETRY = (
    connector_outbox.update()
    .where(
        _o.id == sa.bindparam("b_id"),
        _o.leased_until == sa.bindparam("b_leased", type_=_o.leased_until.type),
        _o.state == PENDING,
    )
    .values(
        next_at=sa.bindparam("v_next_at", type_=_o.next_at.type),
        leased_until=None,
        last_error=sa.bindparam("v_error"),
        attempts=sa.bindparam("v_attempts", type_=sa.Integer),
    )
)
KILL = (
    connector_outbox.update()
    .where(
        _o.id == sa.bindparam("b_id"),
        _o.leased_until == sa.bindparam("b_leased", type_=_o.leased_until.type),
        _o.state == PENDING,
    )
    .values(
        state=DEAD,
        dead_at=sa.bindparam("v_dead_at", type_=_o.dead_at.type),
        leased_until=None,
        last_error=sa.bindparam("v_error"),
        attempts=sa.bindparam("v_attempts", type_=sa.Integer),
    )
)
NEXT_DUE = sa.select(sa.func.min(_o.next_at)).where(_o.state == PENDING)


def done_in(ids: Sequence[int], version: int, leased: datetime) -> sa.Delete:
    """:data:`DONE` set-based: a pass's written rows claimed at one ``version`` (a backfill's rows share
    one) under the lease ending at ``leased`` (a row another worker claimed since is left to it), in one
    statement rather than one each (``IN`` is an expanding parameter: compiled once)."""
    return connector_outbox.delete().where(
        _o.id.in_(list(ids)), _o.version == version, _o.leased_until == leased, _o.state == PENDING
    )


def release_in(ids: Sequence[int], now: datetime, leased: datetime) -> sa.Update:
    """:data:`RELEASE` set-based: the written rows a newer change kept are due again at once, if the
    lease ending at ``leased`` is still theirs."""
    return (
        connector_outbox.update()
        .where(_o.id.in_(list(ids)), _o.leased_until == leased, _o.state == PENDING)
        .values(next_at=now, leased_until=None, attempts=0)
    )


def replay(
    now: datetime, *, row_id: int | None, connector_id: str | None, since: datetime | None
) -> sa.Update:
    """Dead rows due again now with fresh attempts: one row, a connector's, or all dead since a time."""
    query = connector_outbox.update().where(_o.state == DEAD)
    if row_id is not None:
        query = query.where(_o.id == row_id)
    if connector_id is not None:
        query = query.where(_o.connector_id == connector_id)
    if since is not None:
        query = query.where(_o.dead_at >= since)
    return query.values(state=PENDING, attempts=0, next_at=now, dead_at=None, leased_until=None)


def dead_page(connector_id: str | None, after: int, limit: int) -> sa.Select[Any]:
    query = sa.select(connector_outbox).where(_o.state == DEAD, _o.id > after).order_by(_o.id).limit(limit)
    return query.where(_o.connector_id == connector_id) if connector_id else query


def backlog(connector_id: str) -> Any:
    """Pending and dead rows of a connector, and the first change still waiting."""
    return sa.select(
        sa.func.count().filter(_o.state == PENDING).label("pending"),
        sa.func.count().filter(_o.state == DEAD).label("dead"),
        sa.func.min(_o.enqueued_at).filter(_o.state == PENDING).label("oldest"),
    ).where(_o.connector_id == connector_id)


def pending_of(connector_id: str, local_id: str) -> sa.Select[Any]:
    return sa.select(connector_outbox).where(
        _o.connector_id == connector_id, _o.kind == "contact", _o.local_id == local_id
    )


DROP_OUTBOX = connector_outbox.delete().where(_o.connector_id == sa.bindparam("connector_id"))

# --- identity links -----------------------------------------------------------------------------------


def links_of(connector_id: str, kind: str, local_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(connector_links).where(
        _l.connector_id == connector_id, _l.kind == kind, _l.local_id.in_(list(local_ids))
    )


def links_by_remote(connector_id: str, kind: str, remote_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(connector_links).where(
        _l.connector_id == connector_id, _l.kind == kind, _l.remote_id.in_(list(remote_ids))
    )


def contact_links(contact_ids: Sequence[str]) -> sa.Select[Any]:
    """Every connector's remote record of these people (erasure)."""
    return sa.select(_l.connector_id, _l.local_id, _l.remote_id).where(
        _l.kind == "contact", _l.local_id.in_(list(contact_ids))
    )


def upsert_links(dialect: str) -> Any:
    """:func:`save_links` as one statement run with many parameter sets (compiled once and cached; a
    worker pass's 500 links as one multi-row VALUES were compiled anew every pass)."""
    insert = insert_for(dialect, connector_links)
    new = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=["connector_id", "kind", "local_id"],
        set_={
            "remote_id": new.remote_id,
            "remote_modified_at": new.remote_modified_at,
            "synced_at": new.synced_at,
            "fields": new.fields,
        },
    )


def save_links(dialect: str, rows: Sequence[dict[str, Any]]) -> Any:
    insert = insert_for(dialect, connector_links).values(list(rows))
    new = insert.excluded
    return insert.on_conflict_do_update(
        index_elements=["connector_id", "kind", "local_id"],
        set_={
            "remote_id": new.remote_id,
            "remote_modified_at": new.remote_modified_at,
            "synced_at": new.synced_at,
            "fields": new.fields,
        },
    )


def drop_links(contact_ids: Sequence[str]) -> sa.Delete:
    return connector_links.delete().where(_l.kind == "contact", _l.local_id.in_(list(contact_ids)))


_survivor = connector_links.alias("survivor")
#: A merge: the merged contact's remote records become the survivor's where it has none in that
#: connector (executed with every ``loser, survivor``), so its next write updates them by id.
MOVE_LINKS = (
    connector_links.update()
    .where(
        _l.kind == "contact",
        _l.local_id == sa.bindparam("loser"),
        ~sa.exists().where(
            _survivor.c.connector_id == _l.connector_id,
            _survivor.c.kind == "contact",
            _survivor.c.local_id == sa.bindparam("survivor"),
        ),
    )
    .values(local_id=sa.bindparam("survivor"))
)
DROP_CONNECTOR_LINKS = connector_links.delete().where(_l.connector_id == sa.bindparam("connector_id"))

# --- audit and conflicts -------------------------------------------------------------------------------

INSERT_AUDIT = connector_audit.insert()
INSERT_CONFLICT = connector_conflicts.insert()


def insert_audit(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """A pass's audit rows in one statement (PostgreSQL: one JSON document through
    ``json_to_recordset``, not a multi-row ``VALUES`` of ~13 parameters a row)."""
    bulk_insert(conn, connector_audit, rows)


#: :func:`upsert_links` on PostgreSQL with the rows as one JSON document (``:rows``).
UPSERT_LINKS_JSON = sa.text(
    "INSERT INTO connector_links (connector_id, kind, local_id, remote_id, remote_modified_at, synced_at, "
    "fields) SELECT connector_id, kind, local_id, remote_id, remote_modified_at, synced_at, fields "
    "FROM json_to_recordset(CAST(:rows AS json)) AS r(connector_id varchar, kind varchar, "
    "local_id varchar, remote_id varchar, remote_modified_at timestamptz, synced_at timestamptz, "
    "fields jsonb) "
    "ON CONFLICT (connector_id, kind, local_id) DO UPDATE SET remote_id = excluded.remote_id, "
    "remote_modified_at = excluded.remote_modified_at, synced_at = excluded.synced_at, "
    "fields = excluded.fields"
)


def unique_links(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One link per (connector, kind, local id), the last kept: an upsert may touch a row once."""
    return list({(r["connector_id"], r["kind"], r["local_id"]): r for r in rows}.values())


def upsert_links_many(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Save a pass's identity links (rows as for :func:`save_links`; one per key, the last kept): on
    PostgreSQL one short statement, elsewhere :func:`upsert_links`' executemany."""
    unique = unique_links(rows)
    if not unique:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(upsert_links(conn.dialect.name), unique)
        return
    conn.execute(UPSERT_LINKS_JSON, {"rows": jsonutil.dumps(unique)})


def audit_page(
    *, connector_id: str | None, contact_id: str | None, before: int | None, limit: int
) -> sa.Select[Any]:
    """Audit rows newest first, of a connector and/or a person."""
    query = sa.select(connector_audit).order_by(_a.id.desc()).limit(limit)
    if connector_id is not None:
        query = query.where(_a.connector_id == connector_id)
    if contact_id is not None:
        query = query.where(_a.contact_id == contact_id)
    return query.where(_a.id < before) if before is not None else query


def outcomes_since(connector_id: str, since: datetime) -> sa.Select[Any]:
    """The records' summary rows (no field) since a time: outcome and lag, for health."""
    return sa.select(_a.outcome, _a.lag_ms, _a.detail, _a.at).where(
        _a.connector_id == connector_id, _a.field.is_(None), _a.direction == "push", _a.at >= since
    )


def conflicts_page(connector_id: str, limit: int) -> sa.Select[Any]:
    return (
        sa.select(connector_conflicts)
        .where(_x.connector_id == connector_id, _x.resolved_at.is_(None))
        .order_by(_x.id)
        .limit(limit)
    )


def erase_audit(contact_ids: Sequence[str]) -> sa.Delete:
    return connector_audit.delete().where(_a.contact_id.in_(list(contact_ids)))


def erase_conflicts(contact_ids: Sequence[str]) -> sa.Delete:
    return connector_conflicts.delete().where(_x.contact_id.in_(list(contact_ids)))


def erase_outbox(contact_ids: Sequence[str]) -> sa.Delete:
    return connector_outbox.delete().where(_o.contact_id.in_(list(contact_ids)), _o.kind != "erasure")


DROP_CONNECTOR_AUDIT = connector_audit.delete().where(_a.connector_id == sa.bindparam("connector_id"))
DROP_CONNECTOR_CONFLICTS = connector_conflicts.delete().where(_x.connector_id == sa.bindparam("connector_id"))

# --- what other domains hold ------------------------------------------------------------------------


def scores_of(contact_ids: Sequence[str]) -> sa.Select[Any]:
    view = scoring.score_view().subquery()
    return sa.select(view).where(view.c.contact_id.in_(list(contact_ids)))


def members_page(statement: sa.Select[Any], limit: int) -> sa.Select[Any]:
    """A page of a segment's member ids (``segments.members_after``: ``:segment_id``, ``:after``)."""
    return statement.order_by(statement.selected_columns.contact_id).limit(limit)


SAMPLES: list[Sample] = [
    lambda: members_page(segments.members_after(bounded=False), 10),
    lambda: enqueue(
        "postgresql",
        [
            {
                "connector_id": "c",
                "kind": "contact",
                "local_id": "x",
                "contact_id": "x",
                "payload": None,
                "state": PENDING,
                "enqueued_at": _T,
                "next_at": _T,
            }
        ],
    ),
    lambda: [enqueue_each(d) for d in ("sqlite", "postgresql")],
    lambda: [claim(d, _T, 10, _T) for d in ("sqlite", "postgresql")],
    lambda: done_in([1], 1, _T),
    lambda: unclaim([1], _T, _T),
    lambda: release_in([1], _T, _T),
    lambda: replay(_T, row_id=1, connector_id="c", since=_T),
    lambda: dead_page("c", 0, 10),
    lambda: backlog("c"),
    lambda: pending_of("c", "x"),
    lambda: links_of("c", "contact", ["x"]),
    lambda: links_by_remote("c", "contact", ["1"]),
    lambda: contact_links(["x"]),
    lambda: save_links(
        "postgresql",
        [
            {
                "connector_id": "c",
                "kind": "contact",
                "local_id": "x",
                "remote_id": "1",
                "remote_modified_at": _T,
                "synced_at": _T,
                "fields": {},
            }
        ],
    ),
    lambda: [upsert_links(d) for d in ("sqlite", "postgresql")],
    lambda: drop_links(["x"]),
    lambda: audit_page(connector_id="c", contact_id="x", before=10, limit=5),
    lambda: outcomes_since("c", _T),
    lambda: conflicts_page("c", 10),
    lambda: erase_audit(["x"]),
    lambda: erase_conflicts(["x"]),
    lambda: erase_outbox(["x"]),
    lambda: scores_of(["x"]),
    lambda: connectors_page("a", 10),
    lambda: connectors_of_ids(["a"]),
    lambda: update_connector("a", {"active": False}),
]
