"""Every statement the CRM runs: users and teams, leads (created set-based from the pipeline, listed
through composite indexes), activities, a lead's timeline, merges, erasure and export.

A lead's profile and score come from the statements the contacts and scoring domains hand out
(:func:`leadflow.contacts.service.lead_profiles`, :func:`leadflow.scoring.service.score_view`),
embedded as subqueries that both databases flatten into joins by primary key.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from leadflow.contacts import service as contacts
from leadflow.crm.models import (
    OPEN_TASK,
    crm_activities,
    crm_config,
    crm_deal_stages,
    crm_deals,
    crm_lead_sla,
    crm_leads,
    crm_pipelines,
    crm_routing_counts,
    crm_routing_rules,
    crm_stages,
    crm_teams,
    crm_users,
)
from leadflow.crm.schemas import LeadFilter
from leadflow.kernel.db import Sample, insert_for
from leadflow.kernel.types import UTCDateTime
from leadflow.scoring import service as scoring

_t, _u, _l, _a = crm_teams.c, crm_users.c, crm_leads.c, crm_activities.c

# ---- teams and users --------------------------------------------------------------------------------

INSERT_TEAM = crm_teams.insert()
TEAM = sa.select(crm_teams).where(_t.id == sa.bindparam("team_id"))
TEAM_NAMED = sa.select(_t.id).where(_t.name == sa.bindparam("name"))
DELETE_TEAM = crm_teams.delete().where(_t.id == sa.bindparam("team_id"))
#: A deleted team's members stay, without a team.
LEAVE_TEAM = crm_users.update().where(_u.team_id == sa.bindparam("team")).values(team_id=None)
INSERT_USER = crm_users.insert()
USER = sa.select(crm_users).where(_u.id == sa.bindparam("user_id"))
USER_WITH_EMAIL = sa.select(_u.id).where(_u.email == sa.bindparam("email"))
DELETE_USER = crm_users.delete().where(_u.id == sa.bindparam("user_id"))
#: A deleted user no longer leads a team.
DROP_TEAM_LEAD = (
    crm_teams.update().where(_t.lead_user_id == sa.bindparam("user_id")).values(lead_user_id=None)
)
#: Whether a user owns a lead or an activity (then it is deactivated, not deleted).
USER_OWNS = sa.select(
    sa.or_(
        sa.exists().where(_l.owner_id == sa.bindparam("user_id")),
        sa.exists().where(_a.owner_id == sa.bindparam("user_id")),
    )
)


def teams_page(*, after: str | None, limit: int) -> sa.Select[Any]:
    query = sa.select(crm_teams).order_by(_t.id).limit(limit)
    return query if after is None else query.where(_t.id > after)


def change_team(team_id: str, values: dict[str, Any]) -> sa.Update:
    return crm_teams.update().where(_t.id == team_id).values(values)


def users_page(*, after: str | None, team_id: str | None, active: bool | None, limit: int) -> sa.Select[Any]:
    query = sa.select(crm_users).order_by(_u.id).limit(limit)
    if after is not None:
        query = query.where(_u.id > after)
    if team_id is not None:
        query = query.where(_u.team_id == team_id)
    if active is not None:
        query = query.where(_u.active.is_(active))
    return query


def change_user(user_id: str, values: dict[str, Any]) -> sa.Update:
    return crm_users.update().where(_u.id == user_id).values(values)


# ---- leads ---------------------------------------------------------------------------------------------


def insert_leads(dialect: str, contact_ids: Sequence[str], stages: Sequence[str], now: datetime) -> Any:
    """Those of ``contact_ids`` at one of ``stages`` become ``new`` leads, in one
    ``INSERT … SELECT … ON CONFLICT DO NOTHING`` (a lead already there is left alone)."""
    found = contacts.lead_sources(contact_ids, stages).subquery("found")
    at = sa.literal(now, UTCDateTime())
    rows = sa.select(found.c.id, found.c.source, sa.literal("new"), at, at, at).where(sa.true())
    columns = ["contact_id", "source", "status", "status_changed_at", "created_at", "updated_at"]
    return (
        insert_for(dialect, crm_leads)
        .from_select(columns, rows)
        .on_conflict_do_nothing(index_elements=["contact_id"])
    )


def ensure_lead(dialect: str, contact_id: str, now: datetime) -> Any:
    """One ``new`` lead for this contact unless it has one (a status or owner set through the API)."""
    values = {
        "contact_id": contact_id,
        "status": "new",
        "status_changed_at": now,
        "created_at": now,
        "updated_at": now,
    }
    return insert_for(dialect, crm_leads).values(values).on_conflict_do_nothing(index_elements=["contact_id"])


LEAD = sa.select(crm_leads).where(_l.contact_id == sa.bindparam("contact_id"))
SET_STATUS = (
    crm_leads.update()
    .where(_l.contact_id == sa.bindparam("lead"))
    .values(
        status=sa.bindparam("new_status"),
        reason=sa.bindparam("new_reason"),
        status_changed_at=sa.bindparam("now"),
        updated_at=sa.bindparam("now"),
        first_response_at=sa.func.coalesce(_l.first_response_at, sa.bindparam("responded_at")),
    )
)
SET_OWNER = (
    crm_leads.update()
    .where(_l.contact_id == sa.bindparam("lead"))
    .values(owner_id=sa.bindparam("owner"), updated_at=sa.bindparam("now"))
)
#: A logged call, email or meeting answers the lead (if nothing did before).
RESPONDED = (
    crm_leads.update()
    .where(_l.contact_id == sa.bindparam("lead"))
    .values(
        first_response_at=sa.func.coalesce(_l.first_response_at, sa.bindparam("now")),
        updated_at=sa.bindparam("now"),
    )
)
TOUCH = crm_leads.update().where(_l.contact_id == sa.bindparam("lead")).values(updated_at=sa.bindparam("now"))


def _lead_view(lowest_band: str) -> sa.Select[Any]:
    profile = contacts.lead_profiles().subquery("profile")
    scores = scoring.score_view().subquery("scores")
    open_tasks = (
        sa.select(sa.func.count())
        .where(_a.contact_id == _l.contact_id, OPEN_TASK)
        .scalar_subquery()
        .label("open_tasks")
    )
    return (
        sa.select(
            _l.contact_id,
            profile.c.email,
            profile.c.first_name,
            profile.c.last_name,
            profile.c.lifecycle_stage,
            profile.c.company_id,
            _l.status,
            _l.reason,
            _l.owner_id,
            _l.source,
            sa.func.coalesce(scores.c.total, 0.0).label("score"),
            sa.func.coalesce(scores.c.band, lowest_band).label("score_band"),
            _l.status_changed_at,
            _l.first_response_at,
            open_tasks,
            _l.created_at,
            _l.updated_at,
        )
        .select_from(crm_leads)
        .join(profile, profile.c.id == _l.contact_id)
        .outerjoin(scores, scores.c.contact_id == _l.contact_id)
    )


def lead(contact_id: str, lowest_band: str) -> sa.Select[Any]:
    """One lead with its profile summary, score and open tasks."""
    return _lead_view(lowest_band).where(_l.contact_id == contact_id)


def _like(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def leads_page(
    where: LeadFilter, *, before: tuple[datetime, str] | None, limit: int, lowest_band: str
) -> sa.Select[Any]:
    """Leads newest first by ``(created_at, contact_id)``, continuing before ``before``. Status and owner
    filters read ``(status | owner_id, created_at, contact_id)`` indexes in order; the rest filter the
    joined rows (``q`` ignores case with the database's ``lower``)."""
    query = _lead_view(lowest_band)
    columns = query.selected_columns
    if where.status:
        query = query.where(_l.status.in_(where.status))
    if where.unassigned:
        query = query.where(_l.owner_id.is_(None))
    elif where.owner_id is not None:
        query = query.where(_l.owner_id == where.owner_id)
    if where.stage:
        query = query.where(columns.lifecycle_stage.in_(where.stage))
    if where.score_min is not None:
        query = query.where(columns.score >= where.score_min)
    if where.score_max is not None:
        query = query.where(columns.score <= where.score_max)
    if where.source is not None:
        query = query.where(_l.source == where.source)
    for column, low, high in (
        (_l.created_at, where.created_after, where.created_before),
        (_l.updated_at, where.updated_after, where.updated_before),
    ):
        if low is not None:
            query = query.where(column >= low)
        if high is not None:
            query = query.where(column < high)
    if where.q:
        pattern = _like(where.q)
        name = sa.func.coalesce(columns.first_name, "") + " " + sa.func.coalesce(columns.last_name, "")
        query = query.where(
            sa.or_(*(sa.func.lower(c).like(pattern, escape="\\") for c in (columns.email, name)))
        )
    if before is not None:
        stamp, contact_id = before
        query = query.where(
            sa.or_(_l.created_at < stamp, sa.and_(_l.created_at == stamp, _l.contact_id < contact_id))
        )
    return query.order_by(_l.created_at.desc(), _l.contact_id.desc()).limit(limit)


# ---- activities ----------------------------------------------------------------------------------------

INSERT_ACTIVITY = crm_activities.insert().returning(_a.id)
ACTIVITY = sa.select(crm_activities).where(_a.id == sa.bindparam("activity_id"))
DELETE_ACTIVITY = crm_activities.delete().where(_a.id == sa.bindparam("activity_id"))


def change_activity(activity_id: int, values: dict[str, Any]) -> sa.Update:
    return crm_activities.update().where(_a.id == activity_id).values(values)


def activities_page(
    *,
    contact_id: str | None,
    owner_id: str | None,
    kind: str | None,
    open_tasks: bool,
    after: int | None,
    limit: int,
) -> sa.Select[Any]:
    """Activities newest first by id; ``open_tasks``: tasks not done, soonest due first."""
    query = sa.select(crm_activities).limit(limit)
    if contact_id is not None:
        query = query.where(_a.contact_id == contact_id)
    if owner_id is not None:
        query = query.where(_a.owner_id == owner_id)
    if kind is not None:
        query = query.where(_a.kind == kind)
    if open_tasks:
        query = query.where(OPEN_TASK)
    if after is not None:
        query = query.where(_a.id < after)
    return query.order_by(_a.id.desc())


def timeline_activities(
    contact_id: str, *, before: tuple[datetime, int] | None, limit: int
) -> sa.Select[Any]:
    """A contact's activities newest first by ``(occurred_at, id)``, continuing before ``before``."""
    query = sa.select(crm_activities).where(_a.contact_id == contact_id)
    if before is not None:
        stamp, activity_id = before
        query = query.where(
            sa.or_(_a.occurred_at < stamp, sa.and_(_a.occurred_at == stamp, _a.id < activity_id))
        )
    return query.order_by(_a.occurred_at.desc(), _a.id.desc()).limit(limit)


# ---- merges, erasure, export ------------------------------------------------------------------------

#: Activities follow a merged contact to its survivor.
MOVE_ACTIVITIES = (
    crm_activities.update()
    .where(_a.contact_id == sa.bindparam("loser"))
    .values(contact_id=sa.bindparam("survivor"))
)
_other = crm_leads.alias("other")
#: The loser's lead becomes the survivor's when the survivor has none; otherwise the survivor's stays.
MOVE_LEAD = (
    crm_leads.update()
    .where(
        _l.contact_id == sa.bindparam("loser"),
        ~sa.exists().where(_other.c.contact_id == sa.bindparam("survivor")),
    )
    .values(contact_id=sa.bindparam("survivor"))
)
DROP_LEAD = crm_leads.delete().where(_l.contact_id == sa.bindparam("loser"))


def forget(contact_ids: Sequence[str]) -> list[sa.Delete]:
    """Every CRM row about these contacts (GDPR erasure)."""
    ids = list(contact_ids)
    return [
        crm_activities.delete().where(_a.contact_id.in_(ids)),
        crm_leads.delete().where(_l.contact_id.in_(ids)),
    ]


def export(contact_ids: Sequence[str]) -> tuple[sa.Select[Any], sa.Select[Any]]:
    ids = list(contact_ids)
    return (
        sa.select(crm_leads).where(_l.contact_id.in_(ids)),
        sa.select(crm_activities).where(_a.contact_id.in_(ids)).order_by(_a.id),
    )


# ---- pipelines and deals (leadflow.crm.pipelines, leadflow.crm.deals) ------------------------------------

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


def _days(dialect: str, start: Any, end: Any) -> Any:
    if dialect == "sqlite":
        return sa.func.julianday(end) - sa.func.julianday(start)
    return sa.extract("epoch", end - start) / 86400.0


def _in_range(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    return [c for c in (column >= start if start else None, column < end if end else None) if c is not None]


def stage_totals(pipeline_id: str | None, start: datetime | None, end: datetime | None) -> sa.Select[Any]:
    """Per stage and currency: deals created in ``[start, end)`` that are in the stage now, their total
    value and their value weighted by the stage's probability (percent: divide by 100)."""
    on = sa.and_(_d.stage_id == _s.id, *_in_range(_d.created_at, start, end))
    query = (
        sa.select(
            _s.id,
            _d.currency,
            sa.func.count(_d.id).label("deals"),
            sa.func.coalesce(sa.func.sum(_d.value), 0).label("total"),
            sa.func.coalesce(sa.func.sum(_d.value * _s.probability), 0).label("weighted"),
        )
        .select_from(crm_stages)
        .outerjoin(crm_deals, on)
        .group_by(_s.id, _d.currency)
    )
    return query if pipeline_id is None else query.where(_s.pipeline_id == pipeline_id)


def stage_flow(
    dialect: str, pipeline_id: str | None, start: datetime | None, end: datetime | None, now: datetime
) -> sa.Select[Any]:
    """Per stage, over the visits entered in ``[start, end)``: the deals that reached it and the average
    days spent in it (an open visit counts until ``now``). One pass over ``crm_deal_stages``."""
    left = sa.func.coalesce(_v.left_at, sa.literal(now, UTCDateTime()))
    query = (
        sa.select(
            _s.id,
            sa.func.count(sa.distinct(_v.deal_id)).label("reached"),
            sa.func.avg(_days(dialect, _v.entered_at, left)).label("avg_days"),
        )
        .select_from(crm_deal_stages)
        .join(crm_stages, _s.id == _v.stage_id)
        .where(*_in_range(_v.entered_at, start, end))
        .group_by(_s.id)
    )
    return query if pipeline_id is None else query.where(_s.pipeline_id == pipeline_id)


def stage_onward(pipeline_id: str | None, start: datetime | None, end: datetime | None) -> sa.Select[Any]:
    """Per stage: of the deals that entered it in ``[start, end)``, those that also reached the stage
    right after it by position (at any time): a join of the visits with themselves on
    ``(deal_id, stage_id)``."""
    nxt, later = crm_stages.alias("nxt"), crm_deal_stages.alias("later")
    query = (
        sa.select(_s.id.label("stage_id"), sa.func.count(sa.distinct(_v.deal_id)).label("reached_next"))
        .select_from(crm_deal_stages)
        .join(crm_stages, _s.id == _v.stage_id)
        .join(nxt, sa.and_(nxt.c.pipeline_id == _s.pipeline_id, nxt.c.position == _s.position + 1))
        .join(later, sa.and_(later.c.deal_id == _v.deal_id, later.c.stage_id == nxt.c.id))
        .where(*_in_range(_v.entered_at, start, end))
        .group_by(_s.id)
    )
    return query if pipeline_id is None else query.where(_s.pipeline_id == pipeline_id)


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

SAMPLES: list[Sample] = [
    lambda: teams_page(after="t", limit=10),
    lambda: change_team("t", {"name": "n"}),
    lambda: users_page(after="u", team_id="t", active=True, limit=10),
    lambda: change_user("u", {"name": "n"}),
    lambda: [insert_leads(d, ["c1"], ["lead", "mql"], _AT) for d in ("sqlite", "postgresql")],
    lambda: [ensure_lead(d, "c1", _AT) for d in ("sqlite", "postgresql")],
    lambda: lead("c1", "cold"),
    lambda: leads_page(
        LeadFilter(
            status=["new"],
            owner_id="u",
            stage=["lead"],
            score_min=1,
            score_max=9,
            source="ads",
            created_after=_AT,
            created_before=_AT,
            updated_after=_AT,
            updated_before=_AT,
            q="ann",
        ),
        before=(_AT, "c1"),
        limit=50,
        lowest_band="cold",
    ),
    lambda: leads_page(LeadFilter(unassigned=True), before=None, limit=50, lowest_band="cold"),
    lambda: change_activity(1, {"subject": "s"}),
    lambda: activities_page(contact_id="c", owner_id="u", kind="task", open_tasks=True, after=5, limit=10),
    lambda: timeline_activities("c1", before=(_AT, 3), limit=10),
    lambda: forget(["c1"]),
    lambda: export(["c1"]),
    lambda: change_pipeline("p", {"name": "n"}),
    lambda: change_deal("d", {"title": "t"}),
    lambda: deals_page(
        pipeline_id="p", stage_id="s", owner_id="u", contact_id="c", status="open", before=(_AT, "d"), limit=9
    ),
    lambda: open_deals_of("p", ["c1"]),
    lambda: [stage_totals(p, _AT, _AT) for p in ("p", None)],
    lambda: [stage_flow(d, p, _AT, None, _AT) for d in ("sqlite", "postgresql") for p in ("p", None)],
    lambda: [stage_onward(p, None, _AT) for p in ("p", None)],
    lambda: detach_deals(["c1"]),
    lambda: export_deals(["c1"]),
]


# ---- automation: journey steps and capture flows (crm.automation), set-based over a batch --------------


def ensure_leads(dialect: str, contact_ids: Sequence[str], now: datetime) -> Any:
    """A ``new`` lead for each of these contacts that has none, in one statement."""
    rows = [
        {"contact_id": cid, "status": "new", "status_changed_at": now, "created_at": now, "updated_at": now}
        for cid in contact_ids
    ]
    return insert_for(dialect, crm_leads).values(rows).on_conflict_do_nothing(index_elements=["contact_id"])


def leads_of(contact_ids: Sequence[str]) -> sa.Select[Any]:
    """The sales record of these contacts (locked on PostgreSQL until the transaction ends)."""
    return (
        sa.select(_l.contact_id, _l.status, _l.reason, _l.owner_id)
        .where(_l.contact_id.in_(list(contact_ids)))
        .with_for_update()
    )


def owner_emails(contact_ids: Sequence[str]) -> sa.Select[Any]:
    """The address and name of each lead's owner, when the owner is an active user."""
    return (
        sa.select(_l.contact_id, _u.email, _u.name)
        .join(crm_users, _u.id == _l.owner_id)
        .where(_l.contact_id.in_(list(contact_ids)), _u.active.is_(True))
    )


def users_named(refs: Sequence[str]) -> sa.Select[Any]:
    """Users by id or by email (stored lower-cased)."""
    refs = list(refs)
    return sa.select(_u.id, _u.email, _u.active).where(
        sa.or_(_u.id.in_(refs), _u.email.in_([r.strip().lower() for r in refs]))
    )


def activities_by(creators: Sequence[str]) -> sa.Select[Any]:
    """Which of these ``created_by`` keys (an automation's idempotency key) already logged an activity."""
    return sa.select(_a.created_by, _a.contact_id).where(_a.created_by.in_(list(creators)))


INSERT_ACTIVITIES = crm_activities.insert()

SAMPLES += [
    lambda: [ensure_leads(d, ["c1", "c2"], _AT) for d in ("sqlite", "postgresql")],
    lambda: leads_of(["c1"]),
    lambda: owner_emails(["c1"]),
    lambda: users_named(["u1", "a@example.com"]),
    lambda: activities_by(["journey:1.0"]),
]


# ---- routing and SLAs (leadflow.crm.routing, leadflow.crm.sla) -----------------------------------------

_r, _k, _g, _q = crm_routing_rules.c, crm_routing_counts.c, crm_config.c, crm_lead_sla.c
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


def users_by_ids(user_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(crm_users).where(_u.id.in_(list(user_ids)))


def qualify(dialect: str) -> Any:
    """Start a lead's SLA clock when it qualifies (once: a lead qualifying again keeps its first)."""
    return (
        insert_for(dialect, crm_lead_sla)
        .values(contact_id=sa.bindparam("lead"), qualified_at=sa.bindparam("at"))
        .on_conflict_do_nothing(index_elements=["contact_id"])
    )


#: The owner is known: the response is due (computed in the owner's working hours).
STAMP_ASSIGNED = (
    crm_lead_sla.update()
    .where(_q.contact_id == sa.bindparam("lead"), _q.assigned_at.is_(None))
    .values(
        owner_id=sa.bindparam("owner"),
        assigned_at=sa.bindparam("at"),
        first_response_due_at=sa.bindparam("due"),
    )
)
MARK_ASSIGN_BREACH = (
    crm_lead_sla.update()
    .where(_q.contact_id == sa.bindparam("lead"), _q.assign_breached_at.is_(None))
    .values(assign_breached_at=sa.bindparam("at"))
)
MARK_ALERTED = (
    crm_lead_sla.update()
    .where(_q.contact_id == sa.bindparam("lead"), _q.alerted_at.is_(None))
    .values(
        breached_at=sa.bindparam("at"), alerted_at=sa.bindparam("at"), escalate_due_at=sa.bindparam("due")
    )
)
MARK_ESCALATED = (
    crm_lead_sla.update()
    .where(_q.contact_id == sa.bindparam("lead"), _q.escalated_at.is_(None))
    .values(escalated_at=sa.bindparam("at"))
)
DROP_SLA = crm_lead_sla.delete().where(_q.contact_id == sa.bindparam("loser"))


def sla_of(contact_ids: Sequence[str]) -> sa.Select[Any]:
    return sa.select(crm_lead_sla).where(_q.contact_id.in_(list(contact_ids))).order_by(_q.contact_id)


def forget_sla(contact_ids: Sequence[str]) -> sa.Delete:
    return crm_lead_sla.delete().where(_q.contact_id.in_(list(contact_ids)))


def unstamped(limit: int) -> sa.Select[Any]:
    """SLA clocks whose lead has an owner the clock has not seen yet (assigned by a person)."""
    return (
        sa.select(_q.contact_id, _l.owner_id)
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .where(_q.assigned_at.is_(None), _l.owner_id.is_not(None))
        .order_by(_q.contact_id)
        .limit(limit)
        .with_for_update(of=crm_lead_sla, skip_locked=True)
    )


def unassigned_overdue(qualified_before: datetime, limit: int) -> sa.Select[Any]:
    """Qualified leads still without an owner when they should have one (each breach recorded once)."""
    return (
        sa.select(_q.contact_id)
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .where(
            _q.assigned_at.is_(None),
            _q.assign_breached_at.is_(None),
            _l.owner_id.is_(None),
            _q.qualified_at <= qualified_before,
        )
        .order_by(_q.contact_id)
        .limit(limit)
        .with_for_update(of=crm_lead_sla, skip_locked=True)
    )


def response_overdue(now: datetime, limit: int) -> sa.Select[Any]:
    """Assigned leads not answered by their due time and not alerted yet, with their current owner."""
    return (
        sa.select(
            _q.contact_id,
            _l.owner_id,
            _q.first_response_due_at,
            _u.email,
            _u.name,
            _u.timezone,
            _u.working_hours,
        )
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .join(crm_users, _u.id == _l.owner_id)
        .where(_q.alerted_at.is_(None), _q.first_response_due_at <= now, _l.first_response_at.is_(None))
        .order_by(_q.contact_id)
        .limit(limit)
        .with_for_update(of=crm_lead_sla, skip_locked=True)
    )


def escalation_due(now: datetime, limit: int) -> sa.Select[Any]:
    """Alerted leads still unanswered after the escalation delay, with the owner's team lead."""
    owner, chief = crm_users.alias("owner"), crm_users.alias("chief")
    return (
        sa.select(
            _q.contact_id,
            _l.owner_id,
            owner.c.name.label("owner_name"),
            owner.c.team_id,
            chief.c.id.label("chief_id"),
            chief.c.email.label("chief_email"),
            chief.c.name.label("chief_name"),
        )
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .outerjoin(owner, owner.c.id == _l.owner_id)
        .outerjoin(crm_teams, _t.id == owner.c.team_id)
        .outerjoin(chief, chief.c.id == _t.lead_user_id)
        .where(
            _q.alerted_at.is_not(None),
            _q.escalated_at.is_(None),
            _q.escalate_due_at <= now,
            _l.first_response_at.is_(None),
        )
        .order_by(_q.contact_id)
        .limit(limit)
        .with_for_update(of=crm_lead_sla, skip_locked=True)
    )


#: An SLA clock's state, most advanced first.
SLA_STATE: sa.ColumnElement[str] = sa.case(
    (_l.first_response_at.is_not(None), "responded"),
    (_q.escalated_at.is_not(None), "escalated"),
    (_q.alerted_at.is_not(None), "breached"),
    (_q.assigned_at.is_(None), "awaiting_assignment"),
    else_="awaiting_response",
)


def sla_page(*, owner_id: str | None, state: str | None, after: str | None, limit: int) -> sa.Select[Any]:
    """SLA clocks with their state and the lead's current owner and first response, by contact id."""
    query = (
        sa.select(
            crm_lead_sla, _l.owner_id.label("lead_owner_id"), _l.first_response_at, SLA_STATE.label("state")
        )
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .order_by(_q.contact_id)
        .limit(limit)
    )
    if owner_id is not None:
        query = query.where(_l.owner_id == owner_id)
    if state is not None:
        query = query.where(SLA_STATE.in_([state]))
    if after is not None:
        query = query.where(_q.contact_id > after)
    return query


def sla_summary(since: datetime, until: datetime) -> sa.Select[Any]:
    """Per owner, the leads that qualified in ``[since, until)`` and their breaches."""
    return (
        sa.select(
            _l.owner_id,
            sa.func.count().label("qualified"),
            sa.func.count(_q.assign_breached_at).label("assignment_breaches"),
            sa.func.count(_q.breached_at).label("response_breaches"),
            sa.func.count(_q.escalated_at).label("escalations"),
            sa.func.count(_l.first_response_at).label("responded"),
        )
        .join_from(crm_lead_sla, crm_leads, _l.contact_id == _q.contact_id)
        .where(_q.qualified_at >= since, _q.qualified_at < until)
        .group_by(_l.owner_id)
        .order_by(_l.owner_id)
    )


SAMPLES += [
    lambda: change_rule("r", {"name": "n"}),
    lambda: [save_config(d, {"id": "default", "assign_within_seconds": 1}) for d in ("sqlite", "postgresql")],
    lambda: unowned_leads(["c1"]),
    lambda: [count_assigned(d) for d in ("sqlite", "postgresql")],
    lambda: users_by_ids(["u1"]),
    lambda: [qualify(d) for d in ("sqlite", "postgresql")],
    lambda: sla_of(["c1"]),
    lambda: forget_sla(["c1"]),
    lambda: unstamped(10),
    lambda: unassigned_overdue(_AT, 10),
    lambda: response_overdue(_AT, 10),
    lambda: escalation_due(_AT, 10),
    lambda: sla_page(owner_id="u", state="breached", after="c", limit=10),
    lambda: sla_summary(_AT, _AT),
]
