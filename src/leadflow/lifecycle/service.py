"""The MQL definition is a segment rule; entering it moves a contact to ``mql`` (never backwards).

Two system segments hold the configuration: ``lifecycle.icp`` (fit with the ideal customer profile) and
``lifecycle.mql``, whose default rule is: email engagement score ≥ 70, at least 3 content downloads,
at least 5 website sessions, and in the ICP segment. Both are editable through the API.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Connection

from leadflow.contacts import service as contacts
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict
from leadflow.kernel.facts import ContactsTouched
from leadflow.segments import service as segments
from leadflow.segments.service import SegmentCreate, SegmentPatch

ICP_KEY, MQL_KEY = "lifecycle.icp", "lifecycle.mql"
ENTERED = "leadflow.segment_entered"
DEFAULT_ICP: dict[str, Any] = {
    "all": [
        {"field": "email", "op": "is_set"},
        {"field": "subscription_status", "op": "eq", "value": "subscribed"},
    ]
}
SYSTEM = "system:lifecycle"


def default_mql(icp_id: str) -> dict[str, Any]:
    return {
        "all": [
            {"field": "score.engagement", "op": "gte", "value": 70},
            {"event": "Content Downloaded", "count": {"gte": 3}},
            {"field": "sessions", "op": "gte", "value": 5},
            {"segment": icp_id},
        ]
    }


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mql: dict[str, Any] | None = None
    icp: dict[str, Any] | None = None


def _id(conn: Connection, key: str) -> str | None:
    return segments.id_of_key(conn, key)


def ensure_defaults(ctx: AppContext) -> None:
    """Create the ICP and MQL system segments if this installation has none yet (idempotent)."""
    with ctx.db.read() as conn:
        icp_id, mql_id = _id(conn, ICP_KEY), _id(conn, MQL_KEY)
    try:
        if icp_id is None:
            icp_id = segments.create(
                ctx,
                SegmentCreate(
                    name="Ideal customer profile",
                    rules=DEFAULT_ICP,
                    description="fit, used by the MQL definition",
                ),
                actor=SYSTEM,
                key=ICP_KEY,
            ).id
        if mql_id is None:
            segments.create(
                ctx,
                SegmentCreate(
                    name="Marketing qualified leads",
                    rules=default_mql(icp_id),
                    description="entering it makes a contact an MQL",
                ),
                actor=SYSTEM,
                key=MQL_KEY,
            )
    except Conflict:
        return  # another process created them first


def definition(ctx: AppContext) -> Definition:
    ensure_defaults(ctx)
    with ctx.db.read() as conn:
        rows = segments.rules_by_key(conn, [ICP_KEY, MQL_KEY])
    return Definition(mql=rows.get(MQL_KEY), icp=rows.get(ICP_KEY))


def change_definition(ctx: AppContext, value: Definition, *, actor: str) -> Definition:
    ensure_defaults(ctx)
    with ctx.db.read() as conn:
        ids = {ICP_KEY: _id(conn, ICP_KEY), MQL_KEY: _id(conn, MQL_KEY)}
    for key, rules in ((ICP_KEY, value.icp), (MQL_KEY, value.mql)):
        segment_id = ids[key]
        if rules is not None and segment_id is not None:
            segments.update(ctx, segment_id, SegmentPatch(rules=rules), actor=actor)
    return definition(ctx)


def promote(conn: Connection, ctx: AppContext, contact_ids: list[str]) -> None:
    """Move these contacts forward to ``mql``; a contact already past it stays where it is."""
    contacts.advance_stage(conn, ctx, contact_ids, "mql")


def on_touched(conn: Connection, ctx: AppContext, message: ContactsTouched) -> None:
    """Contacts whose ``segment_entered`` events for the MQL segment were just processed become MQLs."""
    entered = [ev for ev in message.events if ev.event == ENTERED and ev.properties]
    if not entered:
        return
    mql_id = _id(conn, MQL_KEY)
    promote(
        conn,
        ctx,
        sorted(
            {ev.contact_id for ev in entered if ev.properties and ev.properties.get("segment_id") == mql_id}
        ),
    )
