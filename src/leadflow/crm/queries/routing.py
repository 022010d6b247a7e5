"""Routing: rules, the configuration row, team rotations and race-free assignment (leadflow.crm.routing)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.crm.models import (
    crm_config,
    crm_leads,
    crm_routing_counts,
    crm_routing_rules,
    crm_teams,
    crm_users,
)
from leadflow.kernel.db import Sample, insert_for

_t, _u, _l = crm_teams.c, crm_users.c, crm_leads.c
_r, _k, _g = crm_routing_rules.c, crm_routing_counts.c, crm_config.c
RULES = sa.select(crm_routing_rules).order_by(_r.position, _r.id)
ACTIVE_RULES = RULES.where(_r.active.is_(True))
RULE = sa.select(crm_routing_rules).where(_r.id == sa.bindparam("rule_id"))
INSERT_RULE = crm_routing_rules.insert()
DELETE_RULE = crm_routing_rules.delete().where(_r.id == sa.bindparam("rule_id"))
NEXT_POSITION = sa.select(sa.func.coalesce(sa.func.max(_r.position), 0) + 1)
CONFIG = sa.select(crm_config).where(_g.id == sa.bindparam("config_id"))
#: A team's row, locked: routings into one team take turns, so its rotation is never skewed.
LOCK_TEAM = sa.select(_t.id).where(_t.id == sa.bindparam("team_id")).with_for_update()
#: The members a team's rotation may pick (active, with capacity), with what the rotation gave them.
TEAM_MEMBERS = (
    sa.select(
        _u.id,
        _u.capacity,
        _u.timezone,
        _u.working_hours,
        sa.func.coalesce(_k.assigned, 0).label("assigned"),
    )
    .select_from(
        crm_users.outerjoin(
            crm_routing_counts, sa.and_(_k.team_id == sa.bindparam("team_id"), _k.user_id == _u.id)
        )
    )
    .where(_u.team_id == sa.bindparam("team_id"), _u.active.is_(True), _u.capacity > 0)
    .order_by(_u.id)
)
#: An assignment by routing: only a lead that has no owner (two workers never assign one lead twice).
ASSIGN_UNOWNED = (
    crm_leads.update()
    .where(_l.contact_id == sa.bindparam("lead"), _l.owner_id.is_(None))
    .values(owner_id=sa.bindparam("owner"), updated_at=sa.bindparam("now"))
)


def change_rule(rule_id: str, values: dict[str, Any]) -> sa.Update:
    return crm_routing_rules.update().where(_r.id == rule_id).values(values)


def save_config(dialect: str, values: dict[str, Any]) -> Any:
    """Insert or replace the configuration row."""
    statement = insert_for(dialect, crm_config).values(values)
    changed = {name: statement.excluded[name] for name in values if name != "id"}
    return statement.on_conflict_do_update(index_elements=["id"], set_=changed)


def unowned_leads(contact_ids: Sequence[str]) -> sa.Select[Any]:
    """Those of ``contact_ids`` that are leads without an owner, locked in id order; rows another
    worker is routing are skipped (it assigns them)."""
    return (
        sa.select(_l.contact_id)
        .where(_l.contact_id.in_(list(contact_ids)), _l.owner_id.is_(None))
        .order_by(_l.contact_id)
        .with_for_update(skip_locked=True)
    )


def count_assigned(dialect: str) -> Any:
    """Add ``n`` to what the rotation of ``team`` gave ``user`` (executed with many parameter sets)."""
    statement = insert_for(dialect, crm_routing_counts).values(
        team_id=sa.bindparam("team"), user_id=sa.bindparam("user"), assigned=sa.bindparam("n")
    )
    return statement.on_conflict_do_update(
        index_elements=["team_id", "user_id"], set_={"assigned": _k.assigned + statement.excluded.assigned}
    )


_AT = datetime(2026, 1, 1, tzinfo=UTC)

SAMPLES: list[Sample] = [
    lambda: change_rule("r", {"name": "n"}),
    lambda: [save_config(d, {"id": "default", "assign_within_seconds": 1}) for d in ("sqlite", "postgresql")],
    lambda: unowned_leads(["c1"]),
    lambda: [count_assigned(d) for d in ("sqlite", "postgresql")],
]
