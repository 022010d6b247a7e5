"""Every statement the CRM runs, one module per part of the domain:

- :mod:`.people`: teams and users;
- :mod:`.leads`: leads (created set-based from the pipeline, searched and listed), merges, erasure, export;
- :mod:`.activities`: activities and a lead's timeline;
- :mod:`.deals`: pipelines, stages, deals and their stage visits;
- :mod:`.pipeline_stats`: the pipeline stats' per-day counters (read, changed with each deal, rebuilt);
- :mod:`.routing`: routing rules, rotations, race-free assignment;
- :mod:`.sla`: SLA clocks, breaches and escalation.

The CRM's modules use them as ``queries.NAME``: every name is re-exported here. Each module has its own
``SAMPLES`` (``tests/unit/test_sql_places.py`` compiles them on both databases).
"""

from __future__ import annotations

from leadflow.crm.queries.activities import (
    ACTIVITY as ACTIVITY,
)
from leadflow.crm.queries.activities import (
    DELETE_ACTIVITY as DELETE_ACTIVITY,
)
from leadflow.crm.queries.activities import (
    INSERT_ACTIVITIES as INSERT_ACTIVITIES,
)
from leadflow.crm.queries.activities import (
    INSERT_ACTIVITY as INSERT_ACTIVITY,
)
from leadflow.crm.queries.activities import (
    MOVE_ACTIVITIES as MOVE_ACTIVITIES,
)
from leadflow.crm.queries.activities import (
    activities_by as activities_by,
)
from leadflow.crm.queries.activities import (
    activities_page as activities_page,
)
from leadflow.crm.queries.activities import (
    change_activity as change_activity,
)
from leadflow.crm.queries.activities import (
    timeline_activities as timeline_activities,
)
from leadflow.crm.queries.deals import (
    ALL_STAGES as ALL_STAGES,
)
from leadflow.crm.queries.deals import (
    ANY_PIPELINE as ANY_PIPELINE,
)
from leadflow.crm.queries.deals import (
    DEAL as DEAL,
)
from leadflow.crm.queries.deals import (
    DEFAULT_PIPELINE as DEFAULT_PIPELINE,
)
from leadflow.crm.queries.deals import (
    DELETE_DEAL as DELETE_DEAL,
)
from leadflow.crm.queries.deals import (
    DELETE_DEAL_VISITS as DELETE_DEAL_VISITS,
)
from leadflow.crm.queries.deals import (
    DELETE_PIPELINE as DELETE_PIPELINE,
)
from leadflow.crm.queries.deals import (
    DELETE_STAGE as DELETE_STAGE,
)
from leadflow.crm.queries.deals import (
    DELETE_STAGE_OF as DELETE_STAGE_OF,
)
from leadflow.crm.queries.deals import (
    ENTER_STAGE as ENTER_STAGE,
)
from leadflow.crm.queries.deals import (
    INSERT_DEAL as INSERT_DEAL,
)
from leadflow.crm.queries.deals import (
    INSERT_PIPELINE as INSERT_PIPELINE,
)
from leadflow.crm.queries.deals import (
    INSERT_STAGE as INSERT_STAGE,
)
from leadflow.crm.queries.deals import (
    LEAVE_STAGE as LEAVE_STAGE,
)
from leadflow.crm.queries.deals import (
    MOVE_DEAL as MOVE_DEAL,
)
from leadflow.crm.queries.deals import (
    MOVE_DEALS as MOVE_DEALS,
)
from leadflow.crm.queries.deals import (
    PIPELINE as PIPELINE,
)
from leadflow.crm.queries.deals import (
    PIPELINE_IN_USE as PIPELINE_IN_USE,
)
from leadflow.crm.queries.deals import (
    PIPELINE_NAMED as PIPELINE_NAMED,
)
from leadflow.crm.queries.deals import (
    PIPELINES as PIPELINES,
)
from leadflow.crm.queries.deals import (
    STAGE_IN_USE as STAGE_IN_USE,
)
from leadflow.crm.queries.deals import (
    STAGE_NAMES as STAGE_NAMES,
)
from leadflow.crm.queries.deals import (
    STAGES as STAGES,
)
from leadflow.crm.queries.deals import (
    UNSET_DEFAULT as UNSET_DEFAULT,
)
from leadflow.crm.queries.deals import (
    UPDATE_STAGE as UPDATE_STAGE,
)
from leadflow.crm.queries.deals import (
    VISITS as VISITS,
)
from leadflow.crm.queries.deals import (
    change_deal as change_deal,
)
from leadflow.crm.queries.deals import (
    change_pipeline as change_pipeline,
)
from leadflow.crm.queries.deals import (
    deals_page as deals_page,
)
from leadflow.crm.queries.deals import (
    detach_deals as detach_deals,
)
from leadflow.crm.queries.deals import (
    export_deals as export_deals,
)
from leadflow.crm.queries.deals import (
    open_deals_of as open_deals_of,
)
from leadflow.crm.queries.leads import (
    DROP_LEAD as DROP_LEAD,
)
from leadflow.crm.queries.leads import (
    LEAD as LEAD,
)
from leadflow.crm.queries.leads import (
    LEAD_STATUS_COUNTS as LEAD_STATUS_COUNTS,
)
from leadflow.crm.queries.leads import (
    MOVE_LEAD as MOVE_LEAD,
)
from leadflow.crm.queries.leads import (
    RESPONDED as RESPONDED,
)
from leadflow.crm.queries.leads import (
    SET_OWNER as SET_OWNER,
)
from leadflow.crm.queries.leads import (
    SET_STATUS as SET_STATUS,
)
from leadflow.crm.queries.leads import (
    TOUCH as TOUCH,
)
from leadflow.crm.queries.leads import (
    ensure_lead as ensure_lead,
)
from leadflow.crm.queries.leads import (
    ensure_leads as ensure_leads,
)
from leadflow.crm.queries.leads import (
    export as export,
)
from leadflow.crm.queries.leads import (
    forget as forget,
)
from leadflow.crm.queries.leads import (
    insert_leads as insert_leads,
)
from leadflow.crm.queries.leads import (
    lead as lead,
)
from leadflow.crm.queries.leads import (
    leads_of as leads_of,
)
from leadflow.crm.queries.leads import (
    leads_page as leads_page,
)
from leadflow.crm.queries.leads import (
    owner_emails as owner_emails,
)
from leadflow.crm.queries.people import (
    DELETE_TEAM as DELETE_TEAM,
)
from leadflow.crm.queries.people import (
    DELETE_USER as DELETE_USER,
)
from leadflow.crm.queries.people import (
    DROP_TEAM_LEAD as DROP_TEAM_LEAD,
)
from leadflow.crm.queries.people import (
    INSERT_TEAM as INSERT_TEAM,
)
from leadflow.crm.queries.people import (
    INSERT_USER as INSERT_USER,
)
from leadflow.crm.queries.people import (
    LEAVE_TEAM as LEAVE_TEAM,
)
from leadflow.crm.queries.people import (
    TEAM as TEAM,
)
from leadflow.crm.queries.people import (
    TEAM_NAMED as TEAM_NAMED,
)
from leadflow.crm.queries.people import (
    USER as USER,
)
from leadflow.crm.queries.people import (
    USER_OWNS as USER_OWNS,
)
from leadflow.crm.queries.people import (
    USER_WITH_EMAIL as USER_WITH_EMAIL,
)
from leadflow.crm.queries.people import (
    change_team as change_team,
)
from leadflow.crm.queries.people import (
    change_user as change_user,
)
from leadflow.crm.queries.people import (
    teams_page as teams_page,
)
from leadflow.crm.queries.people import (
    users_by_ids as users_by_ids,
)
from leadflow.crm.queries.people import (
    users_named as users_named,
)
from leadflow.crm.queries.people import (
    users_page as users_page,
)
from leadflow.crm.queries.pipeline_stats import (
    FLOW_COUNTS as FLOW_COUNTS,
)
from leadflow.crm.queries.pipeline_stats import (
    clear_deals as clear_deals,
)
from leadflow.crm.queries.pipeline_stats import (
    clear_flow as clear_flow,
)
from leadflow.crm.queries.pipeline_stats import (
    deal_days as deal_days,
)
from leadflow.crm.queries.pipeline_stats import (
    deal_rows as deal_rows,
)
from leadflow.crm.queries.pipeline_stats import (
    deal_visits as deal_visits,
)
from leadflow.crm.queries.pipeline_stats import (
    fill_deals as fill_deals,
)
from leadflow.crm.queries.pipeline_stats import (
    fill_flow as fill_flow,
)
from leadflow.crm.queries.pipeline_stats import (
    flow_days as flow_days,
)
from leadflow.crm.queries.pipeline_stats import (
    upsert_deals as upsert_deals,
)
from leadflow.crm.queries.pipeline_stats import (
    upsert_flow as upsert_flow,
)
from leadflow.crm.queries.routing import (
    ACTIVE_RULES as ACTIVE_RULES,
)
from leadflow.crm.queries.routing import (
    ASSIGN_UNOWNED as ASSIGN_UNOWNED,
)
from leadflow.crm.queries.routing import (
    CONFIG as CONFIG,
)
from leadflow.crm.queries.routing import (
    DELETE_RULE as DELETE_RULE,
)
from leadflow.crm.queries.routing import (
    INSERT_RULE as INSERT_RULE,
)
from leadflow.crm.queries.routing import (
    LOCK_TEAM as LOCK_TEAM,
)
from leadflow.crm.queries.routing import (
    NEXT_POSITION as NEXT_POSITION,
)
from leadflow.crm.queries.routing import (
    RULE as RULE,
)
from leadflow.crm.queries.routing import (
    RULES as RULES,
)
from leadflow.crm.queries.routing import (
    TEAM_MEMBERS as TEAM_MEMBERS,
)
from leadflow.crm.queries.routing import (
    change_rule as change_rule,
)
from leadflow.crm.queries.routing import (
    count_assigned as count_assigned,
)
from leadflow.crm.queries.routing import (
    save_config as save_config,
)
from leadflow.crm.queries.routing import (
    unowned_leads as unowned_leads,
)
from leadflow.crm.queries.sla import (
    DROP_SLA as DROP_SLA,
)
from leadflow.crm.queries.sla import (
    MARK_ALERTED as MARK_ALERTED,
)
from leadflow.crm.queries.sla import (
    MARK_ASSIGN_BREACH as MARK_ASSIGN_BREACH,
)
from leadflow.crm.queries.sla import (
    MARK_ESCALATED as MARK_ESCALATED,
)
from leadflow.crm.queries.sla import (
    SLA_STATE as SLA_STATE,
)
from leadflow.crm.queries.sla import (
    STAMP_ASSIGNED as STAMP_ASSIGNED,
)
from leadflow.crm.queries.sla import (
    escalation_due as escalation_due,
)
from leadflow.crm.queries.sla import (
    forget_sla as forget_sla,
)
from leadflow.crm.queries.sla import (
    qualify as qualify,
)
from leadflow.crm.queries.sla import (
    response_overdue as response_overdue,
)
from leadflow.crm.queries.sla import (
    sla_of as sla_of,
)
from leadflow.crm.queries.sla import (
    sla_page as sla_page,
)
from leadflow.crm.queries.sla import (
    sla_summary as sla_summary,
)
from leadflow.crm.queries.sla import (
    unassigned_overdue as unassigned_overdue,
)
from leadflow.crm.queries.sla import (
    unstamped as unstamped,
)
