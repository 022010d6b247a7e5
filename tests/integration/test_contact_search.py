"""The contact search (``q``) finds exactly what a plain substring test finds, whichever way it runs.

On PostgreSQL :func:`leadflow.contacts.queries.search` probes the first contacts in id order, then walks on
or fetches by index; with a small probe each way is taken here and must give the reference answer. A text
holding a tab (the separator of the stored haystack) is asked field by field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from leadflow.contacts import queries
from leadflow.contacts.models import contacts
from leadflow.contacts.queries import lists
from leadflow.kernel.context import AppContext

AT = datetime(2026, 3, 1, tzinfo=UTC)
NAMES = [("Ann", "Smith"), ("Bob", "Smithers"), ("Mary Ann", "Lee"), (None, None), ("ann", None)]
NAMES += [("Zoe", "Nn"), ("Per_cent", "100%"), ("Back\\slash", "Two\tLines")]
TEXTS = ["ann", "smith", "ann smi", "y ann l", "n s", " ", "u1", "ex.org", "zoe nn", "nobody", "%", "3@"]
TEXTS += ["ANN", "_", "r_c", "0%", "\\", "k\\s", "two\tl", "\t", "org\tu", "1@ex.orgu1", "ex.org\t", "two\nl"]


def _rows() -> list[dict[str, Any]]:
    rows = []
    for n in range(40):
        first, last = NAMES[n % len(NAMES)]
        rows.append(
            {
                "id": f"C{n:025d}",
                "user_id": f"u{n}" if n % 3 else None,
                "email": f"p{n}@ex.org" if n % 4 else None,
                "first_name": first,
                "last_name": last,
                "traits": {},
                "lifecycle_stage": "lead",
                "subscription_status": "subscribed",
                "consent": {},
                "created_at": AT,
                "updated_at": AT,
            }
        )
    return rows


def _reference(rows: list[dict[str, Any]], text: str) -> list[str]:
    def holds(row: dict[str, Any]) -> bool:
        name = f"{row['first_name'] or ''} {row['last_name'] or ''}"
        fields = [row["email"], row["first_name"], row["last_name"], row["user_id"], name]
        return any(text.lower() in (field or "").lower() for field in fields if field is not None)

    return [row["id"] for row in rows if holds(row)]


@pytest.mark.parametrize(("probe", "dense"), [(1000, 2), (3, 2), (3, 100), (1, 2), (7, 1)])
def test_search_matches_a_substring_reference_on_every_path(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch, probe: int, dense: int
) -> None:
    monkeypatch.setattr(lists, "PROBE", probe)
    monkeypatch.setattr(lists, "DENSE", dense)
    rows = _rows()
    with ctx.db.write() as conn:
        conn.execute(contacts.insert(), rows)
    with ctx.db.read() as conn:
        for text in TEXTS:
            expected = _reference(rows, text)
            for limit in (3, 50):
                found: list[str] = []
                after: str | None = None
                while True:
                    page = queries.search(conn, queries.ContactFilter(q=text), after=after, limit=limit)
                    found += [c.id for c in page]
                    if len(page) < limit:
                        break
                    after = page[-1].id
                assert found == expected, (text, limit)
    assert _reference(rows, "ann smi")
    assert _reference(rows, "nobody") == []


def test_the_email_filter_alone_equals_the_general_statement(ctx: AppContext) -> None:
    """The list filtered by email alone runs a statement built once (``queries.by_email``): for every
    email, cursor and limit it finds what the general filtered statement finds."""
    rows = _rows()
    with ctx.db.write() as conn:
        conn.execute(contacts.insert(), rows)
    emails = [row["email"] for row in rows if row["email"]] + ["nobody@ex.org", ""]
    afters = [None, "", rows[0]["id"], rows[5]["id"], rows[-1]["id"], "D"]
    with ctx.db.read() as conn:
        for email in emails:
            for after in afters:
                where = queries.ContactFilter(email=email)
                general = queries.filtered(queries.contact_select(), where).order_by(contacts.c.id).limit(2)
                if after:
                    general = general.where(contacts.c.id > after)
                expected = [row.id for row in conn.execute(general)]
                found = [c.id for c in queries.search(conn, where, after=after, limit=1)]
                assert found == expected, (email, after)
    assert any(row["email"] == "p5@ex.org" for row in rows)


@pytest.mark.postgres_only  # SQLite scans: one statement whatever the text
def test_a_search_page_is_one_statement_when_the_probe_fills_it_else_two(
    ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A text that fills its page among the probed contacts costs one statement; a rarer one a second,
    which walks on (dense enough) or fetches the matches by index (rare: a materialised set)."""
    monkeypatch.setattr(lists, "PROBE", 10)
    monkeypatch.setattr(lists, "DENSE", 2)
    rows = _rows()
    with ctx.db.write() as conn:
        conn.execute(contacts.insert(), rows)
    sent: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    sa.event.listen(ctx.db.engine, "before_cursor_execute", note)
    try:
        for text, limit, expected in [("ann", 3, 1), ("ann", 50, 2), ("p37", 3, 2), ("ex.org", 50, 2)]:
            sent.clear()
            with ctx.db.read_one() as conn:
                page = queries.search(conn, queries.ContactFilter(q=text), after=None, limit=limit)
            assert [c.id for c in page] == _reference(rows, text)[:limit], text
            assert len(sent) == expected, (text, limit, sent)
            if text == "p37":  # one match in 40, none among the first 10: by index
                assert "MATERIALIZED" in sent[-1]
            elif expected == 2:  # dense: the walk goes on from the last match
                assert "MATERIALIZED" not in sent[-1]
    finally:
        sa.event.remove(ctx.db.engine, "before_cursor_execute", note)
