"""Tables owned by the CRM domain. Other domains use :mod:`leadflow.crm.service`."""

from __future__ import annotations

import sqlalchemy as sa

from leadflow.kernel.db import metadata
from leadflow.kernel.types import ID_LENGTH, UTCDateTime, bigint_pk, json_type

# A team of users; its lead (a user id, no foreign key: users name their team) is who SLA breaches
# escalate to.
crm_teams = sa.Table(
    "crm_teams",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("lead_user_id", sa.String(ID_LENGTH)),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# The business's people: the owners leads are assigned to.
crm_users = sa.Table(
    "crm_users",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("email", sa.String(320), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),  # admin | marketer | sales | viewer
    sa.Column("team_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_teams.id")),
    sa.Column("timezone", sa.String(64), nullable=False),  # IANA
    sa.Column("working_hours", json_type(), nullable=False),  # {"mon": [["09:00", "17:00"]], ...}
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_crm_users_team_id", "team_id"),
)

# A contact with a sales record. Lists are read newest first by (created_at, contact_id), filtered by
# status or owner through the matching composite index.
crm_leads = sa.Table(
    "crm_leads",
    metadata,
    sa.Column("contact_id", sa.String(ID_LENGTH), sa.ForeignKey("contacts.id"), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("owner_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_users.id")),
    sa.Column("source", sa.String(255)),
    sa.Column("status_changed_at", UTCDateTime(), nullable=False),
    sa.Column("first_response_at", UTCDateTime()),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_crm_leads_created_at", "created_at", "contact_id"),
    sa.Index("ix_crm_leads_status_created_at", "status", "created_at", "contact_id"),
    sa.Index("ix_crm_leads_owner_id_created_at", "owner_id", "created_at", "contact_id"),
    sa.Index("ix_crm_leads_updated_at", "updated_at"),
    sa.Index("ix_crm_leads_source", "source"),
)

# Calls, meetings, notes, tasks and emails logged by people (the derived entries of a timeline come
# from the event log).
crm_activities = sa.Table(
    "crm_activities",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("contact_id", sa.String(ID_LENGTH), sa.ForeignKey("contacts.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # call | meeting | note | task | email
    sa.Column("subject", sa.String(500)),
    sa.Column("body", sa.Text),
    sa.Column("due_at", UTCDateTime()),
    sa.Column("done_at", UTCDateTime()),
    sa.Column("owner_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_users.id")),
    sa.Column("created_by", sa.String(64), nullable=False),
    sa.Column("occurred_at", UTCDateTime(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Index("ix_crm_activities_contact_id_occurred_at", "contact_id", "occurred_at", "id"),
    sa.Index(
        "ix_crm_activities_open_tasks",
        "owner_id",
        "due_at",
        postgresql_where=sa.text("kind = 'task' AND done_at IS NULL"),
        sqlite_where=sa.text("kind = 'task' AND done_at IS NULL"),
    ),
)

#: A task not done yet (the open-task index holds exactly these).
OPEN_TASK = sa.and_(crm_activities.c.kind == sa.literal_column("'task'"), crm_activities.c.done_at.is_(None))

# ---- deals (see leadflow.crm.deals) ----------------------------------------------------------------

# A sales pipeline; ``rules`` are its stage-progression rules ([{"event", "stage", "reason"?, "create"?}]).
crm_pipelines = sa.Table(
    "crm_pipelines",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("is_default", sa.Boolean, nullable=False),
    sa.Column("rules", json_type(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# A pipeline's stages in ``position`` order; ``kind`` open | won | lost, ``probability`` 0-100.
crm_stages = sa.Table(
    "crm_stages",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("pipeline_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_pipelines.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("probability", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.UniqueConstraint("pipeline_id", "name"),
)

# A deal: exact value (Numeric, up to 4 decimals) in an ISO 4217 currency. ``status`` mirrors its stage's
# kind. Lists are read newest first by (created_at, id).
crm_deals = sa.Table(
    "crm_deals",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("pipeline_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_pipelines.id"), nullable=False),
    sa.Column("stage_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_stages.id"), nullable=False),
    sa.Column("status", sa.String(8), nullable=False),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("value", sa.Numeric(20, 4), nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("expected_close", sa.Date),
    sa.Column("owner_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_users.id")),
    sa.Column("contact_id", sa.String(ID_LENGTH), sa.ForeignKey("contacts.id")),
    sa.Column("company_id", sa.String(ID_LENGTH), sa.ForeignKey("companies.id")),
    sa.Column("reason", sa.Text),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_crm_deals_created_at", "created_at", "id"),
    sa.Index("ix_crm_deals_pipeline_id_stage_id", "pipeline_id", "stage_id"),
    sa.Index("ix_crm_deals_owner_id", "owner_id"),
    sa.Index("ix_crm_deals_contact_id", "contact_id"),
    sa.Index("ix_crm_deals_stage_id", "stage_id"),
    # Pipeline stats: the deals created in a range, read from the index alone.
    sa.Index("ix_crm_deals_created_at_stage_id", "created_at", "stage_id", "currency", "value"),
)

# Time in each stage: one row per visit (``left_at`` null while the deal is there).
crm_deal_stages = sa.Table(
    "crm_deal_stages",
    metadata,
    sa.Column("id", bigint_pk(), primary_key=True, autoincrement=True),
    sa.Column("deal_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_deals.id"), nullable=False),
    sa.Column("stage_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_stages.id"), nullable=False),
    sa.Column("entered_at", UTCDateTime(), nullable=False),
    sa.Column("left_at", UTCDateTime()),
    sa.Index("ix_crm_deal_stages_deal_id", "deal_id", "entered_at"),
    sa.Index("ix_crm_deal_stages_stage_id_entered_at", "stage_id", "entered_at", "deal_id"),
    # Pipeline stats: the visits entered in a range (from the index alone), and whether a deal reached
    # a given stage (an index-only probe).
    sa.Index("ix_crm_deal_stages_entered_at", "entered_at", "stage_id", "deal_id", "left_at"),
    sa.Index("ix_crm_deal_stages_deal_id_stage_id", "deal_id", "stage_id"),
)

# Pipeline stats' counters (leadflow.crm.stage_counters), changed in the transaction of every deal change
# and rebuilt from the two tables above by ``leadflow crm stats rebuild``. Per stage and UTC day of entry:
# ``reached`` deals whose first entry into the stage was that day, ``onward`` those of them that have been
# in the next stage, ``visits`` entered that day (``open_visits`` still there), ``closed_seconds`` the time
# spent by the visits that ended, ``open_entered`` the sum of the open ones' entry instants (Unix seconds).
crm_stage_days = sa.Table(
    "crm_stage_days",
    metadata,
    sa.Column("stage_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("pipeline_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("reached", sa.BigInteger, nullable=False),
    sa.Column("onward", sa.BigInteger, nullable=False),
    sa.Column("visits", sa.BigInteger, nullable=False),
    sa.Column("open_visits", sa.BigInteger, nullable=False),
    sa.Column("closed_seconds", sa.Float, nullable=False),
    sa.Column("open_entered", sa.Float, nullable=False),
    sa.Index("ix_crm_stage_days_pipeline_id_day", "pipeline_id", "day"),
)

# Per stage, UTC day of creation and currency: the deals created that day that are in the stage now.
crm_stage_deal_days = sa.Table(
    "crm_stage_deal_days",
    metadata,
    sa.Column("stage_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("pipeline_id", sa.String(ID_LENGTH), nullable=False),
    sa.Column("deals", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Numeric(24, 4), nullable=False),
    sa.Index("ix_crm_stage_deal_days_pipeline_id_day", "pipeline_id", "day"),
)

# ---- routing and SLAs (leadflow.crm.routing, leadflow.crm.sla) -----------------------------------------

# Routing rules, evaluated by ascending position: the first whose condition (segment rule language;
# null matches every lead) holds picks a team (round-robin by capacity) or a user.
crm_routing_rules = sa.Table(
    "crm_routing_rules",
    metadata,
    sa.Column("id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("condition", json_type()),
    sa.Column("team_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_teams.id")),
    sa.Column("user_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_users.id")),
    sa.Column("respect_working_hours", sa.Boolean, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Index("ix_crm_routing_rules_position", "position", "id"),
)

# How many leads the rotation of a team gave each member (the weighted round-robin's memory).
crm_routing_counts = sa.Table(
    "crm_routing_counts",
    metadata,
    sa.Column("team_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("user_id", sa.String(ID_LENGTH), primary_key=True),
    sa.Column("assigned", sa.BigInteger, nullable=False),
)

# The one routing and SLA configuration row (id "default"): the fallback owner and the SLA durations.
crm_config = sa.Table(
    "crm_config",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("fallback_owner_id", sa.String(ID_LENGTH), sa.ForeignKey("crm_users.id")),
    sa.Column("assign_within_seconds", sa.Integer, nullable=False),
    sa.Column("first_response_within_seconds", sa.Integer, nullable=False),
    sa.Column("escalate_after_seconds", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# The SLA clock of each qualified lead: when it qualified, was assigned, must be answered by, and when
# each breach, alert and escalation happened (each set once).
crm_lead_sla = sa.Table(
    "crm_lead_sla",
    metadata,
    sa.Column("contact_id", sa.String(ID_LENGTH), sa.ForeignKey("contacts.id"), primary_key=True),
    sa.Column("owner_id", sa.String(ID_LENGTH)),
    sa.Column("qualified_at", UTCDateTime(), nullable=False),
    sa.Column("assigned_at", UTCDateTime()),
    sa.Column("assign_breached_at", UTCDateTime()),
    sa.Column("first_response_due_at", UTCDateTime()),
    sa.Column("breached_at", UTCDateTime()),
    sa.Column("alerted_at", UTCDateTime()),
    sa.Column("escalate_due_at", UTCDateTime()),
    sa.Column("escalated_at", UTCDateTime()),
    sa.Index("ix_crm_lead_sla_qualified_at", "qualified_at"),
    sa.Index("ix_crm_lead_sla_first_response_due_at", "first_response_due_at"),
    sa.Index("ix_crm_lead_sla_escalate_due_at", "escalate_due_at"),
    sa.Index("ix_crm_lead_sla_owner_id", "owner_id", "qualified_at"),
)
