"""What the API, the CLI, the worker and the console may do with analytics.

Rollups: :func:`maintain` (the worker's task), :func:`rebuild`. KPIs, each for a period against the
previous one: :func:`kpis`, :func:`funnel`, :func:`sources`, :func:`email`, :func:`journey_funnel`;
:func:`to_csv` turns any of them into a CSV report. :func:`health`: webhook endpoints and connectors.
"""

from __future__ import annotations

from leadflow.analytics.alerts import ALERT_METRICS as ALERT_METRICS
from leadflow.analytics.alerts import AlertRule as AlertRule
from leadflow.analytics.alerts import AlertRuleFields as AlertRuleFields
from leadflow.analytics.alerts import Incident as Incident
from leadflow.analytics.alerts import alert_incidents as alert_incidents
from leadflow.analytics.alerts import alert_rules as alert_rules
from leadflow.analytics.alerts import create_alert_rule as create_alert_rule
from leadflow.analytics.alerts import delete_alert_rule as delete_alert_rule
from leadflow.analytics.alerts import evaluate_alerts as evaluate_alerts
from leadflow.analytics.alerts import get_alert_rule as get_alert_rule
from leadflow.analytics.alerts import update_alert_rule as update_alert_rule
from leadflow.analytics.catalogue import REPORTS as REPORTS
from leadflow.analytics.catalogue import Report as Report
from leadflow.analytics.catalogue import report_csv as report_csv
from leadflow.analytics.digests import Digest as Digest
from leadflow.analytics.digests import DigestFields as DigestFields
from leadflow.analytics.digests import create_digest as create_digest
from leadflow.analytics.digests import delete_digest as delete_digest
from leadflow.analytics.digests import digests as digests
from leadflow.analytics.digests import get_digest as get_digest
from leadflow.analytics.digests import send_due_digests as send_due_digests
from leadflow.analytics.digests import update_digest as update_digest
from leadflow.analytics.health import health as health
from leadflow.analytics.health import sla_totals as sla_totals
from leadflow.analytics.insights import Attribution as Attribution
from leadflow.analytics.insights import Experiment as Experiment
from leadflow.analytics.insights import Experiments as Experiments
from leadflow.analytics.insights import attribution_report as attribution_report
from leadflow.analytics.insights import experiment as experiment
from leadflow.analytics.insights import experiments as experiments
from leadflow.analytics.kpis import by_hour as by_hour
from leadflow.analytics.kpis import email as email
from leadflow.analytics.kpis import email_links as email_links
from leadflow.analytics.kpis import entrants as entrants
from leadflow.analytics.kpis import funnel as funnel
from leadflow.analytics.kpis import journey_funnel as journey_funnel
from leadflow.analytics.kpis import kpis as kpis
from leadflow.analytics.kpis import period as period
from leadflow.analytics.kpis import sources as sources
from leadflow.analytics.reports import to_csv as to_csv
from leadflow.analytics.rollups import Progress as Progress
from leadflow.analytics.rollups import maintain as maintain
from leadflow.analytics.rollups import on_contacts_erased as on_contacts_erased
from leadflow.analytics.rollups import rebuild as rebuild
from leadflow.analytics.rollups import snapshot as snapshot
from leadflow.analytics.schemas import EmailReport as EmailReport
from leadflow.analytics.schemas import Funnel as Funnel
from leadflow.analytics.schemas import Health as Health
from leadflow.analytics.schemas import JourneyFunnel as JourneyFunnel
from leadflow.analytics.schemas import Kpis as Kpis
from leadflow.analytics.schemas import LinkClicks as LinkClicks
from leadflow.analytics.schemas import Sources as Sources
