"""Lead response against the SLA (from the CRM's SLA state) and the health of webhook endpoints and
connectors (from their services' statistics): read where they live, not rolled up.

SLA figures for a period: leads qualified in it (their SLA clock started), those answered, the
response and assignment breaches, escalations, and ``sla_met_rate`` = 1 - response breaches / qualified.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from leadflow.analytics.schemas import Health, Period
from leadflow.connectors import service as connectors
from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from leadflow.webhooks import service as webhooks

SLA_FIELDS = ("qualified", "responded", "assignment_breaches", "response_breaches", "escalations")


def _instant(day: Any) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def sla_totals(ctx: AppContext, period: Period) -> dict[str, float]:
    """The period's SLA figures summed over owners, named as :class:`Kpis` figures."""
    owners = crm.sla_summary(ctx, _instant(period.start), _instant(period.end + timedelta(days=1)))
    sums = {name: float(sum(getattr(owner, name) for owner in owners)) for name in SLA_FIELDS}
    qualified = sums["qualified"]
    return {
        "leads_qualified": qualified,
        "leads_responded": sums["responded"],
        "sla_assignment_breaches": sums["assignment_breaches"],
        "sla_response_breaches": sums["response_breaches"],
        "sla_escalations": sums["escalations"],
        "sla_met_rate": 1 - sums["response_breaches"] / qualified if qualified else 0.0,
    }


def health(ctx: AppContext, window_hours: float) -> Health:
    """Each connector's health and each webhook endpoint's deliveries over the last ``window_hours``."""
    return Health(
        window_hours=window_hours,
        connectors=[dict(item) for item in connectors.health_all(ctx)],
        webhooks=webhooks.health(ctx, timedelta(hours=window_hours)),
    )
