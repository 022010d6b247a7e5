"""What analytics sends: alert emails and webhooks, and the weekly KPI digest email.

Emails are internal notices through the messaging outbox, as the console's password mails are
(``kind`` internal, to a CRM user's address: no consent, topic or cap applies), each with an HTML and a
text part from a shipped template installed on first use. Each message's outbox key names what it is
about (``alert:<incident>:<opened|resolved>:<user>``, ``digest:<digest>:<due time>:<user>``), so the
outbox itself refuses a second copy.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.crm import service as crm
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict
from leadflow.messaging import service as messaging
from leadflow.webhooks import service as webhooks

ALERT_TEMPLATE = "analytics-alert"
DIGEST_TEMPLATE = "analytics-kpi-digest"
_TEMPLATES = {
    ALERT_TEMPLATE: {
        "key": ALERT_TEMPLATE,
        "name": "Analytics: threshold alert",
        "kind": "transactional",
        "subject": "{{ vars.subject }}",
        "html": (
            "<p>{{ vars.headline }}</p><ul>"
            "<li>AlertRule: {{ vars.rule }}</li><li>Figure: {{ vars.metric }}{% if vars.subject_name %}"
            " ({{ vars.subject_name }}){% endif %}</li><li>Value: {{ vars.value }}</li>"
            "<li>Threshold: {{ vars.threshold }}</li><li>Opened: {{ vars.opened_at }}</li>"
            "{% if vars.resolved_at %}<li>Resolved: {{ vars.resolved_at }}</li>{% endif %}</ul>"
        ),
        "text": (
            "{{ vars.headline }}\n\nRule: {{ vars.rule }}\n"
            "Figure: {{ vars.metric }} {{ vars.subject_name }}\n"
            "Value: {{ vars.value }}\nThreshold: {{ vars.threshold }}\nOpened: {{ vars.opened_at }}\n"
            "{% if vars.resolved_at %}Resolved: {{ vars.resolved_at }}\n{% endif %}"
        ),
    },
    DIGEST_TEMPLATE: {
        "key": DIGEST_TEMPLATE,
        "name": "Analytics: weekly KPI digest",
        "kind": "transactional",
        "subject": "{{ vars.subject }}",
        "html": (
            "<p>{{ vars.period }}, against {{ vars.previous }}.</p>"
            "<table><thead><tr><th>Figure</th><th>This week</th><th>Previous</th><th>Change</th></tr></thead>"
            "<tbody>{% for f in vars.figures %}<tr><td>{{ f.label }}</td><td>{{ f.current }}</td>"
            "<td>{{ f.previous }}</td><td>{{ f.change }}</td></tr>{% endfor %}</tbody></table>"
        ),
        "text": (
            "{{ vars.period }}, against {{ vars.previous }}.\n\n"
            "{% for f in vars.figures %}{{ f.label }}: {{ f.current }} (previous {{ f.previous }}, "
            "{{ f.change }})\n{% endfor %}"
        ),
    },
}


def install_templates(ctx: AppContext) -> None:
    with ctx.db.read() as conn:
        present = messaging.template_ids(conn, list(_TEMPLATES))
    for key, source in _TEMPLATES.items():
        if key not in present:
            with contextlib.suppress(Conflict):  # created meanwhile by another process
                messaging.create_template(ctx, messaging.TemplateCreate(**source), actor="system")


def users(ctx: AppContext) -> list[crm.User]:
    """The active CRM users (the recipients one may choose)."""
    return crm.list_users(ctx, after=None, active=True, limit=1000)


def addresses(found: list[crm.User], user_ids: list[str]) -> dict[str, str]:
    """user id → address of the active ones (``found``) among ``user_ids``."""
    wanted = set(user_ids)
    return {u.id: u.email for u in found if u.id in wanted}


def send(
    conn: Connection, ctx: AppContext, key: str, template: str, to: dict[str, str], values: dict[str, Any]
) -> int:
    """Queue one internal email per recipient (``to``: user id → address) in ``conn``'s transaction."""
    rows = [
        {
            "key": f"{key}:{user_id}",
            "kind": "internal",
            "to_address": address,
            "template": template,
            "context": {"vars": values},
        }
        for user_id, address in sorted(to.items())
    ]
    return messaging.enqueue_many(conn, ctx, rows, ctx.clock.now()) if rows else 0


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    number = float(value)
    return f"{number:g}" if number >= 1 or number == 0 else f"{number:.4%}"


def alert(
    conn: Connection,
    ctx: AppContext,
    rule: dict[str, Any],
    kind: str,
    incident: dict[str, Any],
    to: dict[str, str],
) -> None:
    """Notify ``alert.opened`` / ``alert.resolved`` of one incident: a webhook (when the rule says so)
    and an email to ``to`` (user id → address). ``rule``: the rule's fields (``AlertRule.model_dump()``)."""
    resolved = kind == "alert.resolved"
    value = incident.get("resolved_value") if resolved else incident.get("opened_value")
    data = {
        "incident_id": incident["id"],
        "rule_id": rule["id"],
        "rule_name": rule["name"],
        "metric": rule["metric"],
        "subject": incident["subject"],
        "value": value,
        "threshold": rule["threshold"],
        "opened_at": incident["opened_at"].isoformat(),
    }
    if resolved:  # why: the condition ended (or its subject is gone), or the rule was deleted
        data["resolved_at"] = incident["resolved_at"].isoformat()
        data["reason"] = incident.get("reason") or "condition ended"
    if rule["webhook"]:
        webhooks.notify(conn, ctx, kind, f"alert:{incident['id']}:{kind}", data)
    if to:
        word = "resolved" if resolved else "opened"
        values = {
            "subject": f"[leadflow] {'Resolved' if resolved else 'Alert'}: {rule['name']}",
            "headline": f"The alert “{rule['name']}” {word}"
            + (f" ({incident['reason']})." if incident.get("reason") else "."),
            "rule": rule["name"],
            "metric": rule["metric"],
            "subject_name": incident["subject"],
            "value": _shown(value),
            "threshold": _shown(rule["threshold"]),
            "opened_at": data["opened_at"],
            "resolved_at": data.get("resolved_at", ""),
        }
        send(conn, ctx, f"alert:{incident['id']}:{word}", ALERT_TEMPLATE, to, values)
