"""What other domains and the composition root may use of the CRM: the one module they import.

Event names (internal events of the pipeline, usable in segment rules, journey triggers and
webhooks): ``lead.status_changed`` (webhook catalogue: ``lead.status_updated``) and
``lead.owner_assigned``; see :mod:`leadflow.crm.leads`; ``deal.created`` and ``deal.stage_changed``
(webhook catalogue names too); see :mod:`leadflow.crm.deals`.
"""

from __future__ import annotations

from leadflow.crm.activities import change as change_activity
from leadflow.crm.activities import contact_timeline as contact_timeline
from leadflow.crm.activities import get as get_activity
from leadflow.crm.activities import listing as list_activities
from leadflow.crm.activities import log as log_activity
from leadflow.crm.activities import timeline as lead_timeline
from leadflow.crm.automation import NewActivity as NewActivity
from leadflow.crm.automation import OwnerChange as OwnerChange
from leadflow.crm.automation import StatusChange as StatusChange
from leadflow.crm.automation import assign_owners as assign_owners
from leadflow.crm.automation import check_kind as check_kind
from leadflow.crm.automation import check_status as check_status
from leadflow.crm.automation import copy_configuration as copy_configuration
from leadflow.crm.automation import find_user as find_user
from leadflow.crm.automation import log_activities as log_activities
from leadflow.crm.automation import logged as logged
from leadflow.crm.automation import owner_emails as owner_emails
from leadflow.crm.automation import route as route_leads
from leadflow.crm.automation import set_statuses as set_statuses
from leadflow.crm.deal_automation import DealTarget as DealTarget
from leadflow.crm.deal_automation import NewDeal as NewDeal
from leadflow.crm.deal_automation import money as deal_money
from leadflow.crm.deal_automation import move_deals as move_deals
from leadflow.crm.deal_automation import open_deals as open_deals
from leadflow.crm.deal_automation import target as deal_target
from leadflow.crm.deal_stats import CurrencyValue as CurrencyValue
from leadflow.crm.deal_stats import PipelineStats as PipelineStats
from leadflow.crm.deal_stats import owner_stats as owner_pipeline_stats
from leadflow.crm.deal_stats import stats as pipeline_stats
from leadflow.crm.deals import CREATED as DEAL_CREATED
from leadflow.crm.deals import STAGE_CHANGED as DEAL_STAGE_CHANGED
from leadflow.crm.deals import Deal as Deal
from leadflow.crm.deals import DealFields as DealFields
from leadflow.crm.deals import export as export_deals
from leadflow.crm.deals import get as get_deal
from leadflow.crm.deals import listing as list_deals
from leadflow.crm.deals import on_contacts_erased as on_deals_erased
from leadflow.crm.deals import on_contacts_merged as on_deals_merged
from leadflow.crm.deals import update as update_deal
from leadflow.crm.leads import OWNER_ASSIGNED as OWNER_ASSIGNED
from leadflow.crm.leads import STATUS_CHANGED as STATUS_CHANGED
from leadflow.crm.leads import assign as assign_lead
from leadflow.crm.leads import change_status as change_lead_status
from leadflow.crm.leads import ensure as ensure_lead
from leadflow.crm.leads import export as export
from leadflow.crm.leads import get as get_lead
from leadflow.crm.leads import on_contacts_erased as on_contacts_erased
from leadflow.crm.leads import on_contacts_merged as on_contacts_merged
from leadflow.crm.leads import on_contacts_touched as on_contacts_touched
from leadflow.crm.leads import search as search_leads
from leadflow.crm.leads import status_counts as lead_status_counts
from leadflow.crm.people import create_user as create_user
from leadflow.crm.people import get_user as get_user
from leadflow.crm.people import list_users as list_users
from leadflow.crm.people import update_user as update_user
from leadflow.crm.people import user_row as user_row
from leadflow.crm.pipelines import copy_configuration as copy_pipelines
from leadflow.crm.pipelines import ensure_default_in as ensure_default_pipeline
from leadflow.crm.pipelines import listing as list_pipelines
from leadflow.crm.progression import subscriber as deal_progression
from leadflow.crm.routing import on_qualified as route_qualified
from leadflow.crm.rules import KINDS as ACTIVITY_KINDS
from leadflow.crm.rules import NEEDS_REASON as LEAD_NEEDS_REASON
from leadflow.crm.rules import STATUSES as LEAD_STATUSES
from leadflow.crm.schemas import ActivityCreate as ActivityCreate
from leadflow.crm.schemas import ActivityFields as ActivityFields
from leadflow.crm.schemas import Lead as Lead
from leadflow.crm.schemas import LeadFilter as LeadFilter
from leadflow.crm.schemas import OwnerChange as LeadOwnerChange
from leadflow.crm.schemas import StatusChange as LeadStatusChange
from leadflow.crm.schemas import User as User
from leadflow.crm.schemas import UserCreate as UserCreate
from leadflow.crm.schemas import UserFields as UserFields
from leadflow.crm.sla import BREACHED as SLA_BREACHED
from leadflow.crm.sla import ESCALATED as SLA_ESCALATED
from leadflow.crm.sla import check as check_slas
from leadflow.crm.sla import export as export_sla
from leadflow.crm.sla import on_contacts_erased as on_sla_erased
from leadflow.crm.sla import on_contacts_merged as on_sla_merged
from leadflow.crm.sla import summary as sla_summary

__all__ = [
    "ACTIVITY_KINDS",
    "DEAL_CREATED",
    "DEAL_STAGE_CHANGED",
    "LEAD_NEEDS_REASON",
    "LEAD_STATUSES",
    "OWNER_ASSIGNED",
    "SLA_BREACHED",
    "SLA_ESCALATED",
    "STATUS_CHANGED",
    "ActivityCreate",
    "ActivityFields",
    "CurrencyValue",
    "Deal",
    "DealFields",
    "DealTarget",
    "Lead",
    "LeadFilter",
    "LeadOwnerChange",
    "LeadStatusChange",
    "NewActivity",
    "NewDeal",
    "OwnerChange",
    "PipelineStats",
    "StatusChange",
    "User",
    "UserCreate",
    "UserFields",
    "assign_lead",
    "assign_owners",
    "change_activity",
    "change_lead_status",
    "check_kind",
    "check_slas",
    "check_status",
    "copy_configuration",
    "copy_pipelines",
    "create_user",
    "deal_money",
    "deal_progression",
    "deal_target",
    "ensure_default_pipeline",
    "ensure_lead",
    "export",
    "export_deals",
    "export_sla",
    "find_user",
    "get_activity",
    "get_deal",
    "get_lead",
    "get_user",
    "lead_status_counts",
    "lead_timeline",
    "list_activities",
    "list_deals",
    "list_pipelines",
    "list_users",
    "log_activities",
    "log_activity",
    "logged",
    "move_deals",
    "on_contacts_erased",
    "on_contacts_merged",
    "on_contacts_touched",
    "on_deals_erased",
    "on_deals_merged",
    "on_sla_erased",
    "on_sla_merged",
    "open_deals",
    "owner_emails",
    "owner_pipeline_stats",
    "pipeline_stats",
    "route_leads",
    "route_qualified",
    "search_leads",
    "set_statuses",
    "sla_summary",
    "update_deal",
    "update_user",
    "user_row",
]
