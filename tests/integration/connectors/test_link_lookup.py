"""A batch's scores and links (:func:`leadflow.connectors.store.scores_and_links`): the same answer on both
databases for a contact with a score, a link, both or neither; and on PostgreSQL a lookup by primary key
even while the links table has no statistics (a first backfill grows it faster than autovacuum analyses
it: a plan through the remote-id index read every link of the connector for each batch). And the
statistics the worker refreshes when a backfill made them stale
(:func:`leadflow.kernel.queue_upkeep.analyze_stale`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.connectors import store
from leadflow.connectors.models import connector_links, connector_outbox
from leadflow.kernel.context import AppContext
from leadflow.kernel.queue_upkeep import STALE_AT_LEAST, analyze_stale
from leadflow.scoring.models import contact_scores

_AT = datetime(2026, 12, 1, tzinfo=UTC)


def _link(connector_id: str, local_id: str) -> dict[str, Any]:
    return {
        "connector_id": connector_id,
        "kind": "contact",
        "local_id": local_id,
        "remote_id": f"r-{local_id}",
        "remote_modified_at": None,
        "synced_at": _AT,
        "fields": {"email": f"{local_id}@example.com"},
    }


def _score(contact_id: str, total: float, band: str) -> dict[str, Any]:
    zero = {"behavioral": 0.0, "demographic": 0.0, "firmographic": 0.0, "engagement": 0.0}
    return {"contact_id": contact_id, "total": total, "band": band, "updated_at": _AT, **zero}


def _answer(ctx: AppContext, contact_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    with ctx.db.read() as conn:
        rows = conn.execute(store.scores_and_links(conn.dialect.name, "cx", contact_ids))
        found = {}
        for row in rows:
            values = row._mapping
            if values["total"] is None and values["link_local_id"] is None:
                continue  # neither: PostgreSQL answers the id with nulls, SQLite's full join leaves it out
            found[row.contact_id] = (values["total"], values["band"], values["link_remote_id"])
        return found


def test_scores_and_links_answers_each_contact(ctx: AppContext) -> None:
    with ctx.db.write() as conn:
        conn.execute(
            connector_links.insert(), [_link("cx", "both"), _link("cx", "link"), _link("other", "score")]
        )
        conn.execute(contact_scores.insert(), [_score("both", 12.0, "warm"), _score("score", 3.0, "cold")])
    answer = _answer(ctx, ["both", "link", "score", "neither"])
    assert answer == {
        "both": (12.0, "warm", "r-both"),
        "link": (None, None, "r-link"),
        "score": (3.0, "cold", None),  # its link is another connector's
    }
    assert _answer(ctx, []) == {}


def _nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _nodes(child))]


def test_links_are_looked_up_by_primary_key_without_statistics(ctx: AppContext) -> None:
    if ctx.db.dialect != "postgresql":
        pytest.skip("PostgreSQL's planner")
    with ctx.db.write() as conn:
        conn.execute(connector_links.insert(), [_link("cx", f"c{n:06d}") for n in range(20_000)])
    wanted = [f"c{n:06d}" for n in range(19_500, 20_500)]  # half linked, half not
    statement = store.scores_and_links("postgresql", "cx", wanted)
    with ctx.db.read() as conn:
        compiled = statement.compile(dialect=conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params)
        plan = cursor.fetchone()[0][0]["Plan"]
        found = conn.execute(statement).all()
    assert sum(1 for row in found if row.link_remote_id is not None) == 500
    on_links = [node for node in _nodes(plan) if node.get("Relation Name") == "connector_links"]
    assert [(node["Node Type"], node.get("Index Name")) for node in on_links] == [
        ("Index Scan", "pk_connector_links")
    ]


def test_the_worker_analyses_the_outbox_and_links_a_backfill_made_stale(ctx: AppContext) -> None:
    tables = (connector_outbox, connector_links)
    postgres = ctx.db.dialect == "postgresql"
    if postgres:  # what the test process's earlier tests changed on these tables is analysed first
        with ctx.db.read() as conn:
            conn.exec_driver_sql("ANALYZE connector_outbox, connector_links")
    with ctx.db.write() as conn:
        conn.execute(connector_links.insert(), [_link("cx", f"c{n:06d}") for n in range(STALE_AT_LEAST + 1)])
        if postgres:  # the counters reach pg_stat_user_tables with the commit, not up to a second later
            conn.exec_driver_sql("SELECT pg_stat_force_next_flush()")
    with ctx.db.read() as conn:
        analysed = analyze_stale(conn, tables)
    if not postgres:
        assert analysed == []  # SQLite keys its plans on the indexes
        return
    assert analysed == ["connector_links"]  # the outbox is empty: nothing changed there
    with ctx.db.read() as conn:
        assert analyze_stale(conn, tables) == []  # analysed: fresh until a fifth of it changes
        analysed_at = conn.execute(
            sa.text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'connector_links'")
        ).scalar()
    assert analysed_at is not None
