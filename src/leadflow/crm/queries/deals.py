"""Pipelines, their stages, deals and their stage visits (leadflow.crm.pipelines, leadflow.crm.deals)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.crm.models import (
    crm_deal_stages,
    crm_deals,
    crm_pipelines,
    crm_stages,
)
from leadflow.kernel.db import Sample

_p, _s, _d, _v = crm_pipelines.c, crm_stages.c, crm_deals.c, crm_deal_stages.c
INSERT_PIPELINE = crm_pipelines.insert()
PIPELINE = sa.select(crm_pipelines).where(_p.id == sa.bindparam("pipeline_id"))
PIPELINE_NAMED = sa.select(_p.id).where(_p.name == sa.bindparam("name"))
DEFAULT_PIPELINE = sa.select(crm_pipelines).where(_p.is_default.is_(True)).order_by(_p.created_at).limit(1)
PIPELINES = sa.select(crm_pipelines).order_by(_p.name, _p.id)
ANY_PIPELINE = sa.select(_p.id).limit(1)
#: Only one pipeline is the default.
UNSET_DEFAULT = crm_pipelines.update().where(_p.id != sa.bindparam("pipeline_id")).values(is_default=False)
DELETE_PIPELINE = crm_pipelines.delete().where(_p.id == sa.bindparam("pipeline_id"))
STAGES = sa.select(crm_stages).where(_s.pipeline_id == sa.bindparam("pipeline_id")).order_by(_s.position)
ALL_STAGES = sa.select(crm_stages).order_by(_s.pipeline_id, _s.position)
STAGE_NAMES = sa.select(_s.id, _s.name)
INSERT_STAGE = crm_stages.insert()
UPDATE_STAGE = (
    crm_stages.update()
    .where(_s.id == sa.bindparam("stage"))
    .values(
        name=sa.bindparam("name"),
        position=sa.bindparam("position"),
        probability=sa.bindparam("probability"),
        kind=sa.bindparam("kind"),
    )
)
DELETE_STAGE = crm_stages.delete().where(_s.id == sa.bindparam("stage"))
DELETE_STAGE_OF = crm_stages.delete().where(_s.pipeline_id == sa.bindparam("pipeline_id"))
#: A stage a deal is in or has been in (it cannot be deleted).
STAGE_IN_USE = sa.select(
    sa.or_(
        sa.exists().where(_d.stage_id == sa.bindparam("stage")),
        sa.exists().where(_v.stage_id == sa.bindparam("stage")),
    )
)
PIPELINE_IN_USE = sa.select(sa.exists().where(_d.pipeline_id == sa.bindparam("pipeline_id")))
INSERT_DEAL = crm_deals.insert()
DEAL = sa.select(crm_deals).where(_d.id == sa.bindparam("deal_id"))
DELETE_DEAL = crm_deals.delete().where(_d.id == sa.bindparam("deal_id"))
DELETE_DEAL_VISITS = crm_deal_stages.delete().where(_v.deal_id == sa.bindparam("deal_id"))
#: A stage change, several deals at once (executemany): the deal moves, its open visit ends, a new one starts.
MOVE_DEAL = (
    crm_deals.update()
    .where(_d.id == sa.bindparam("deal"))
    .values(
        stage_id=sa.bindparam("to_stage"),
        status=sa.bindparam("new_status"),
        reason=sa.bindparam("new_reason"),
        updated_at=sa.bindparam("now"),
    )
)
LEAVE_STAGE = (
    crm_deal_stages.update()
    .where(_v.deal_id == sa.bindparam("deal"), _v.left_at.is_(None))
    .values(left_at=sa.bindparam("now"))
)
ENTER_STAGE = crm_deal_stages.insert().values(
    deal_id=sa.bindparam("deal"), stage_id=sa.bindparam("to_stage"), entered_at=sa.bindparam("now")
)
VISITS = (
    sa.select(crm_deal_stages).where(_v.deal_id == sa.bindparam("deal_id")).order_by(_v.entered_at, _v.id)
)


def change_pipeline(pipeline_id: str, values: dict[str, Any]) -> sa.Update:
    return crm_pipelines.update().where(_p.id == pipeline_id).values(values)


def change_deal(deal_id: str, values: dict[str, Any]) -> sa.Update:
    return crm_deals.update().where(_d.id == deal_id).values(values)


def deals_page(
    *,
    pipeline_id: str | None,
    stage_id: str | None,
    owner_id: str | None,
    contact_id: str | None,
    status: str | None,
    before: tuple[datetime, str] | None,
    limit: int,
) -> sa.Select[Any]:
    """Deals newest first by ``(created_at, id)``, continuing before ``before``."""
    query = sa.select(crm_deals)
    for column, value in (
        (_d.pipeline_id, pipeline_id),
        (_d.stage_id, stage_id),
        (_d.owner_id, owner_id),
        (_d.contact_id, contact_id),
        (_d.status, status),
    ):
        if value is not None:
            query = query.where(column == value)
    if before is not None:
        stamp, deal_id = before
        query = query.where(sa.or_(_d.created_at < stamp, sa.and_(_d.created_at == stamp, _d.id < deal_id)))
    return query.order_by(_d.created_at.desc(), _d.id.desc()).limit(limit)


def open_deals_of(pipeline_id: str, contact_ids: Sequence[str]) -> sa.Select[Any]:
    """The open deals of these contacts in one pipeline, with their stage's position (rules), locked
    (PostgreSQL) so a person's move at the same time is seen, never undone."""
    return (
        sa.select(_d.id, _d.contact_id, _d.stage_id, _d.value, _d.currency, _s.position, _s.name)
        .join(crm_stages, _s.id == _d.stage_id)
        .where(_d.pipeline_id == pipeline_id, _d.status == "open", _d.contact_id.in_(list(contact_ids)))
        .order_by(_d.contact_id, _d.created_at, _d.id)
        .with_for_update(of=crm_deals)
    )


#: A merged contact's deals go to the survivor.
MOVE_DEALS = (
    crm_deals.update()
    .where(_d.contact_id == sa.bindparam("loser"))
    .values(contact_id=sa.bindparam("survivor"))
)


def detach_deals(contact_ids: Sequence[str]) -> sa.Update:
    """GDPR erasure keeps the revenue numbers: the deal loses its person and its free text."""
    return (
        crm_deals.update()
        .where(_d.contact_id.in_(list(contact_ids)))
        .values(contact_id=None, title="(erased)", reason=None)
    )


def export_deals(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(crm_deals).where(_d.contact_id.in_(list(contact_ids))).order_by(_d.created_at, _d.id)


_AT = datetime(2026, 1, 1, tzinfo=UTC)


def owner_stage_totals(pipeline_id: str, owner_id: str) -> sa.Select[Any]:
    """Per stage and currency of a pipeline: how many of one owner's deals are in it now and their value
    (a sales user's board), one grouped read of that owner's deals."""
    return (
        sa.select(
            _d.stage_id,
            _d.currency,
            sa.func.count().label("deals"),
            sa.func.sum(_d.value).label("total"),
        )
        .where(_d.pipeline_id == pipeline_id, _d.owner_id == owner_id)
        .group_by(_d.stage_id, _d.currency)
    )


SAMPLES: list[Sample] = [
    lambda: change_pipeline("p", {"name": "n"}),
    lambda: change_deal("d", {"title": "t"}),
    lambda: deals_page(
        pipeline_id="p", stage_id="s", owner_id="u", contact_id="c", status="open", before=(_AT, "d"), limit=9
    ),
    lambda: open_deals_of("p", ["c1"]),
    lambda: detach_deals(["c1"]),
    lambda: export_deals(["c1"]),
    lambda: owner_stage_totals("p", "u"),
]
