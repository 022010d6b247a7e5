"""Leads: created set-based from the pipeline, listed through composite indexes; merges, erasure and
export of a person's sales record.

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
    crm_leads,
    crm_users,
)
from leadflow.crm.schemas import LeadFilter
from leadflow.kernel.db import Sample, insert_for, where_in_dialect
from leadflow.kernel.types import UTCDateTime
from leadflow.scoring import service as scoring

_u, _l, _a = crm_users.c, crm_leads.c, crm_activities.c


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


def _matches(columns: Any, text: str) -> sa.ColumnElement[bool]:
    """``text`` ignoring case in the email or in ``"first last"``. Without a space it cannot span the
    two names, so each column is matched alone (``ILIKE``), which PostgreSQL answers from the pg_trgm
    index ``ix_contacts_search_trgm``; with one, the joined name is matched (a scan)."""
    pattern = _like(text)
    if " " not in text:
        return sa.or_(
            *(c.ilike(pattern, escape="\\") for c in (columns.email, columns.first_name, columns.last_name))
        )
    name = sa.func.coalesce(columns.first_name, "") + " " + sa.func.coalesce(columns.last_name, "")
    return sa.or_(*(sa.func.lower(c).like(pattern, escape="\\") for c in (columns.email, name)))


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
        query = query.where(_matches(columns, where.q))
    if before is not None:
        stamp, contact_id = before
        query = query.where(
            sa.or_(_l.created_at < stamp, sa.and_(_l.created_at == stamp, _l.contact_id < contact_id))
        )
    return query.order_by(_l.created_at.desc(), _l.contact_id.desc()).limit(limit)


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


def owner_emails(dialect: str, contact_ids: Sequence[str]) -> sa.Select[Any]:
    """The address and name of each lead's owner, when the owner is an active user."""
    query = sa.select(_l.contact_id, _u.email, _u.name).join(crm_users, _u.id == _l.owner_id)
    found: sa.Select[Any] = where_in_dialect(
        dialect, query.where(_u.active.is_(True)), _l.contact_id, contact_ids
    )
    return found


# ---- merges, erasure, export ------------------------------------------------------------------------

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


_AT = datetime(2026, 1, 1, tzinfo=UTC)

SAMPLES: list[Sample] = [
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
    lambda: leads_page(LeadFilter(q="ann smith"), before=None, limit=50, lowest_band="cold"),
    lambda: [ensure_leads(d, ["c1", "c2"], _AT) for d in ("sqlite", "postgresql")],
    lambda: leads_of(["c1"]),
    lambda: owner_emails("sqlite", ["c1"]),
    lambda: owner_emails("postgresql", ["c1"]),
    lambda: forget(["c1"]),
    lambda: export(["c1"]),
]


# Leads per status (the console's dashboard).
LEAD_STATUS_COUNTS = (
    sa.select(crm_leads.c.status, sa.func.count().label("n"))
    .group_by(crm_leads.c.status)
    .order_by(crm_leads.c.status)
)
