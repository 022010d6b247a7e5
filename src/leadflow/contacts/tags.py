"""Tags: short labels on contacts, compared case-insensitively (stored trimmed and lower-cased)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy.engine import Connection

from leadflow.audit import service as audit
from leadflow.contacts import queries, store
from leadflow.contacts.writes import profile_lock
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid
from leadflow.kernel.facts import ContactsTouched
from leadflow.kernel.text import fold


def normalise(tags: Iterable[str]) -> list[str]:
    cleaned = sorted({fold(tag.strip()) for tag in tags})
    bad = [tag for tag in cleaned if not tag or len(tag) > 100]
    if bad:
        raise Invalid("a tag has 1 to 100 characters", code="invalid_tag")
    return cleaned


def of(conn: Connection, contact_id: str) -> list[str]:
    return list(conn.execute(queries.TAGS_OF, {"contact_id": contact_id}).scalars())


def change(
    conn: Connection, ctx: AppContext, contact_id: str, add: Iterable[str], remove: Iterable[str]
) -> bool:
    """Add and remove tags in the caller's transaction (journeys use this); True when anything changed."""
    adding, removing = normalise(add), normalise(remove)
    before = set(of(conn, contact_id))
    if adding:
        rows = [{"contact_id": contact_id, "tag": tag, "created_at": ctx.clock.now()} for tag in adding]
        store.add_tags(conn, rows)
    if removing:
        store.remove_tags(conn, [contact_id], removing)
    changed = set(of(conn, contact_id)) != before
    if changed:
        ctx.bus.publish(conn, ContactsTouched({contact_id: frozenset({"tags"})}, (), ctx.clock.now()))
    return changed


def update(ctx: AppContext, contact_id: str, add: list[str], remove: list[str], *, actor: str) -> list[str]:
    """The API's tag change: audited, answers the contact's tags."""
    with ctx.db.write() as conn:
        profile_lock(conn)
        live = queries.get(conn, contact_id).id
        if change(conn, ctx, live, add, remove):
            audit.record(
                conn,
                ctx.clock,
                actor=actor,
                action="contact.tags_changed",
                entity_type="contact",
                entity_id=live,
                data={"added": normalise(add), "removed": normalise(remove)},
            )
        return of(conn, live)


def change_many(
    conn: Connection, ctx: AppContext, contact_ids: Sequence[str], add: Iterable[str], remove: Iterable[str]
) -> None:
    """The same tag change for many contacts in two statements (journey steps); the caller holds the
    profile lock. The contacts are handed to the qualifiers, as any tag change is."""
    adding, removing = normalise(add), normalise(remove)
    ids = list(dict.fromkeys(contact_ids))
    if not ids:
        return
    now = ctx.clock.now()
    if adding:
        rows = [{"contact_id": cid, "tag": tag, "created_at": now} for cid in ids for tag in adding]
        store.add_tags(conn, rows)
    if removing:
        store.remove_tags(conn, ids, removing)
    ctx.bus.publish(conn, ContactsTouched({cid: frozenset({"tags"}) for cid in ids}, (), now))


def add_pairs(conn: Connection, ctx: AppContext, pairs: Sequence[tuple[str, str]]) -> None:
    """Add each ``(contact id, normalised tag)`` in one statement (CSV import: each row its own tags);
    the caller holds the profile lock. The contacts are handed to the qualifiers."""
    if not pairs:
        return
    now = ctx.clock.now()
    rows = [{"contact_id": cid, "tag": tag, "created_at": now} for cid, tag in dict.fromkeys(pairs)]
    store.add_tags(conn, rows)
    ctx.bus.publish(conn, ContactsTouched({cid: frozenset({"tags"}) for cid, _ in pairs}, (), now))
