"""Threshold alerts: alert_rules on a health figure, evaluated by the worker every minute, each alert sent
**once per incident** with its resolution.

A rule watches one :data:`ALERT_METRICS` figure against its ``threshold``; a figure may concern several
subjects (each connector, each webhook endpoint) or the installation (subject ``''``). When a rule's
condition starts for a subject an incident is opened (``alert_incidents``; its ``open_key``
``"<rule>|<subject>"`` is unique while open, so two workers open it once) and ``alert.opened`` goes
out: an email to the rule's users (an internal notice through the messaging outbox) and, when the rule
says so, a webhook to the endpoints subscribed to it. While it stays open nothing more is sent; when
the condition ends, the incident is resolved (one ``UPDATE … WHERE resolved_at IS NULL`` — its writer
alone notifies) and ``alert.resolved`` goes out the same ways. A subject that is no longer measured
(a connector removed) resolves its incident. Deleting a rule resolves its open incidents in the same
transaction (no resolved value; reason ``rule deleted``), notified as any resolution is — otherwise
they would stay open forever, with nothing left to resolve them.

The figures are read once per evaluation from what already keeps them (cheap, set-based): connectors'
and webhook endpoints' health over the last hour, today's SLA figures, the email rollups of the last
7 days, the processing backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from leadflow.analytics import health, kpis, notices, store
from leadflow.analytics.schemas import Period
from leadflow.audit import service as audit
from leadflow.connectors import service as connectors
from leadflow.events import service as events
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.kernel.ids import new_id
from leadflow.webhooks import service as webhooks

Direction = Literal["above", "below"]
RULE_DELETED = "rule deleted"  # the reason of an incident resolved because its rule was deleted


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    direction: Direction  # breached when the figure is above / below the threshold
    default: float
    unit: str = ""


ALERT_METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("connector_success_rate", "Connector sync success rate, last hour", "below", 0.95),
        Metric("webhook_failures", "Failed webhook deliveries per endpoint, last hour", "above", 10),
        Metric("sla_breaches", "Lead response SLA breaches today", "above", 0),
        Metric("bounce_rate", "Email bounce rate, last 7 days", "above", 0.003),
        Metric("complaint_rate", "Email complaint rate, last 7 days", "above", 0.003),
        Metric("processing_lag", "Seconds the oldest waiting event has waited", "above", 300, "s"),
    )
}
EMAIL_DAYS = 7


class AlertRuleFields(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    metric: str = Field(description=", ".join(ALERT_METRICS))
    threshold: float | None = Field(None, description="default: the metric's (0.003 for bounce rate …)")
    user_ids: list[str] = Field(default_factory=list, description="CRM users emailed on open and resolve")
    webhook: bool = Field(True, description="also send alert.opened / alert.resolved to webhook endpoints")
    enabled: bool = True


class AlertRule(BaseModel):
    id: str
    name: str
    metric: str
    threshold: float
    user_ids: list[str]
    webhook: bool
    enabled: bool
    created_at: datetime
    updated_at: datetime


class Incident(BaseModel):
    id: str
    rule_id: str
    rule_name: str | None
    metric: str | None
    subject: str
    opened_at: datetime
    opened_value: float
    resolved_at: datetime | None
    resolved_value: float | None


def breached(metric: Metric, value: float, threshold: float) -> bool:
    return value > threshold if metric.direction == "above" else value < threshold


def _check(ctx: AppContext, data: AlertRuleFields) -> float:
    metric = ALERT_METRICS.get(data.metric)
    if metric is None:
        raise Invalid(f"'metric' is one of {', '.join(ALERT_METRICS)}", code="invalid_metric")
    if data.user_ids:
        known = {u.id for u in notices.users(ctx)}
        unknown = [u for u in data.user_ids if u not in known]
        if unknown:
            raise Invalid(f"no active user {', '.join(unknown[:5])}", code="unknown_user")
    threshold = metric.default if data.threshold is None else data.threshold
    if threshold < 0:
        raise Invalid("'threshold' is 0 or more", code="invalid_threshold")
    return threshold


def create_alert_rule(ctx: AppContext, data: AlertRuleFields, *, actor: str) -> AlertRule:
    threshold = _check(ctx, data)
    now = ctx.clock.now()
    row = {**data.model_dump(), "threshold": threshold, "id": new_id(), "created_at": now, "updated_at": now}
    with ctx.db.write() as conn:
        conn.execute(store.INSERT_RULE, row)
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="analytics.alert_rule.created",
            entity_type="alert_rule",
            entity_id=row["id"],
        )
    return AlertRule.model_validate(row)


def _rule(conn: Connection, rule_id: str) -> AlertRule:
    found = conn.execute(store.rule(rule_id)).first()
    if found is None:
        raise NotFound(f"no alert rule {rule_id}", code="alert_rule_not_found")
    return AlertRule.model_validate(found, from_attributes=True)


def get_alert_rule(ctx: AppContext, rule_id: str) -> AlertRule:
    with ctx.db.read() as conn:
        return _rule(conn, rule_id)


def alert_rules(ctx: AppContext) -> list[AlertRule]:
    with ctx.db.read() as conn:
        return [AlertRule.model_validate(r, from_attributes=True) for r in conn.execute(store.ALL_RULES)]


def update_alert_rule(ctx: AppContext, rule_id: str, data: AlertRuleFields, *, actor: str) -> AlertRule:
    threshold = _check(ctx, data)
    values = {**data.model_dump(), "threshold": threshold, "updated_at": ctx.clock.now()}
    with ctx.db.write() as conn:
        _rule(conn, rule_id)
        conn.execute(store.update_rule(rule_id, values))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="analytics.alert_rule.updated",
            entity_type="alert_rule",
            entity_id=rule_id,
        )
        return _rule(conn, rule_id)


def delete_alert_rule(ctx: AppContext, rule_id: str, *, actor: str) -> None:
    """Delete a rule; its alert_incidents stay in the history, and an open one is resolved now with the
    reason ``rule deleted`` and notified like any resolution (``alert.resolved`` by webhook when the rule
    says so, an email to its users), once: only the incidents this transaction closed are notified."""
    found = get_alert_rule(ctx, rule_id)
    if found.user_ids:  # outside the write transaction: these read (and may write) on their own
        notices.install_templates(ctx)
    to = notices.addresses(notices.users(ctx), found.user_ids) if found.user_ids else {}
    now = ctx.clock.now()
    with ctx.db.write() as conn:
        rule = _rule(conn, rule_id)
        closed = list(conn.execute(store.resolve_rule_incidents(rule_id), {"at": now}))
        conn.execute(store.delete_rule(rule_id))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="analytics.alert_rule.deleted",
            entity_type="alert_rule",
            entity_id=rule_id,
            data={"resolved_incidents": [row.id for row in closed]} if closed else None,
        )
        for row in closed:
            incident = {**row._mapping, "resolved_at": now, "reason": RULE_DELETED}
            notices.alert(conn, ctx, rule.model_dump(), "alert.resolved", incident, to)


def alert_incidents(
    ctx: AppContext, *, rule_id: str | None = None, open_only: bool = False, limit: int = 100
) -> list[Incident]:
    with ctx.db.read() as conn:
        rows = conn.execute(store.incidents_page(rule_id, open_only, limit))
        return [
            Incident.model_validate({**r._mapping, "rule_name": r.name, "metric": r.metric}) for r in rows
        ]


# --- evaluation -------------------------------------------------------------------------------------


def _ratio(part: float, whole: float) -> dict[str, float]:
    return {"": part / whole} if whole else {}


def measure(ctx: AppContext, wanted: set[str]) -> dict[str, dict[str, float]]:
    """The figures of the metrics ``wanted``, by subject (missing: nothing to judge)."""
    now = ctx.clock.now()
    today = now.date()
    found: dict[str, dict[str, float]] = {name: {} for name in wanted}
    if "connector_success_rate" in wanted:
        for h in connectors.health_all(ctx):
            if h["success_rate"] is not None:
                found["connector_success_rate"][str(h["connector_id"])] = float(h["success_rate"])
    if "webhook_failures" in wanted:
        for w in webhooks.health(ctx, timedelta(hours=1)):
            found["webhook_failures"][str(w["endpoint_id"])] = float(w["counts"].get(webhooks.FAILED, 0))
    if "sla_breaches" in wanted:
        totals = health.sla_totals(ctx, Period(start=today, end=today))
        found["sla_breaches"][""] = totals["sla_response_breaches"]
    if wanted & {"bounce_rate", "complaint_rate"}:
        start: date = today - timedelta(days=EMAIL_DAYS - 1)
        f = kpis.kpis(ctx, start, today).figures
        found["bounce_rate"] = _ratio(f["emails_bounced"].current, f["emails_sent"].current)
        found["complaint_rate"] = _ratio(f["emails_complained"].current, f["emails_delivered"].current)
    if "processing_lag" in wanted:
        with ctx.db.read() as conn:
            _, oldest = events.backlog(conn)
        found["processing_lag"][""] = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
    return found


@dataclass(frozen=True)
class Outcome:
    opened: list[str]
    resolved: list[str]


def evaluate_alerts(ctx: AppContext) -> Outcome:
    """Open an incident for each rule and subject whose condition holds and has none open; resolve
    each open incident of an enabled rule whose condition no longer holds. Notifies each once."""
    with ctx.db.read() as conn:
        found = conn.execute(store.ENABLED_RULES)
        enabled = [AlertRule.model_validate(r, from_attributes=True) for r in found]
    if not enabled:
        return Outcome([], [])
    notices.install_templates(ctx)
    people = notices.users(ctx) if any(r.user_ids for r in enabled) else []
    to = {r.id: notices.addresses(people, r.user_ids) for r in enabled}
    values = measure(ctx, {r.metric for r in enabled})
    by_id = {r.id: r for r in enabled}
    now = ctx.clock.now()
    holding: dict[str, tuple[AlertRule, str, float]] = {}
    for rule in enabled:
        for subject, value in values[rule.metric].items():
            if breached(ALERT_METRICS[rule.metric], value, rule.threshold):
                holding[f"{rule.id}|{subject}"] = (rule, subject, value)
    with ctx.db.write() as conn:
        open_now = {row.open_key: row for row in conn.execute(store.OPEN_INCIDENTS)}
        fresh = [
            {
                "id": new_id(),
                "rule_id": rule.id,
                "subject": subject,
                "open_key": key,
                "opened_at": now,
                "opened_value": value,
            }
            for key, (rule, subject, value) in holding.items()
            if key not in open_now
        ]
        written: set[str] = set()
        if fresh:
            written = {r.id for r in conn.execute(store.open_incidents(conn.dialect.name), fresh)}
        opened = [row for row in fresh if row["id"] in written]
        ending = [key for key, row in open_now.items() if row.rule_id in by_id and key not in holding]
        resolved: list[Any] = []
        if ending:
            current = {
                f"v{n}": values[by_id[open_now[key].rule_id].metric].get(open_now[key].subject)
                for n, key in enumerate(ending)
            }
            resolved = list(conn.execute(store.resolve_incidents(ending), {"at": now, **current}))
        for row in opened:
            rule_id = str(row["rule_id"])
            notices.alert(conn, ctx, by_id[rule_id].model_dump(), "alert.opened", row, to[rule_id])
        for done in resolved:
            incident = {**done._mapping, "resolved_at": now}
            notices.alert(
                conn, ctx, by_id[done.rule_id].model_dump(), "alert.resolved", incident, to[done.rule_id]
            )
    return Outcome([str(row["id"]) for row in opened], [row.id for row in resolved])
