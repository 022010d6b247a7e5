"""Scheduled email reports: the weekly KPI digest — the dashboard's KPIs for the last 7 days against
the 7 before — sent to chosen CRM users on a schedule (a cron expression in a time zone; default
Monday 08:00 in the first recipient's time zone).

Due times are on the injected clock. **Exactly once per period**: the worker (every minute) reads the
digests due and, for each, writes the row (digest, due time) of ``report_digest_sends`` — its primary
key lets one worker write it — and, in that same transaction, queues the emails (internal notices
through the messaging outbox, keys ``digest:<digest>:<due time>:<user>``) and moves ``next_at`` to the
next due time after now. A worker that finds the row written sends nothing. A worker down for weeks
sends one digest (the latest due), not one per missed week.

The 7 days end the day before the due time's local date (UTC days, as the dashboard's).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from leadflow.analytics import kpis, notices, store
from leadflow.audit import service as audit
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid, NotFound
from leadflow.kernel.ids import new_id

DEFAULT_CRON = "0 8 * * 1"  # Monday 08:00
DAYS = 7
DUE_AT_ONCE = 50
FIGURES = (
    ("visitors", "Visitors"),
    ("leads", "Leads"),
    ("mql", "MQL"),
    ("sql", "SQL"),
    ("customers", "Customers"),
    ("emails_sent", "Emails sent"),
    ("emails_delivered", "Emails delivered"),
    ("emails_opened", "Emails opened"),
    ("emails_clicked", "Emails clicked"),
    ("emails_unsubscribed", "Unsubscribed"),
    ("emails_bounced", "Bounced"),
    ("emails_complained", "Complaints"),
    ("leads_qualified", "Leads qualified"),
    ("sla_response_breaches", "SLA response breaches"),
)


class DigestFields(BaseModel):
    name: str = Field("Weekly KPI digest", min_length=1, max_length=200)
    user_ids: list[str] = Field(min_length=1, description="the CRM users it is sent to")
    cron: str = Field(DEFAULT_CRON, max_length=100, description="when, in 'timezone' (default Monday 08:00)")
    timezone: str | None = Field(None, max_length=64, description="default: the first user's time zone")
    enabled: bool = True


class Digest(BaseModel):
    id: str
    name: str
    user_ids: list[str]
    cron: str
    timezone: str
    enabled: bool
    next_at: datetime
    created_at: datetime
    updated_at: datetime


def next_due(cron: str, zone: str, after: datetime) -> datetime:
    """The first time after ``after`` that ``cron`` names in ``zone`` (UTC)."""
    found: datetime = croniter(cron, after.astimezone(ZoneInfo(zone))).get_next(datetime)
    return found.astimezone(ZoneInfo("UTC"))


def _checked(ctx: AppContext, data: DigestFields) -> dict[str, object]:
    people = {u.id: u for u in notices.users(ctx)}
    unknown = [u for u in data.user_ids if u not in people]
    if unknown:
        raise Invalid(f"no active user {', '.join(unknown[:5])}", code="unknown_user")
    if not croniter.is_valid(data.cron):
        raise Invalid(f"'cron' is not a cron expression: {data.cron!r}", code="invalid_cron")
    zone = data.timezone or people[data.user_ids[0]].timezone or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise Invalid(f"'timezone' is not a time zone: {zone!r}", code="invalid_timezone") from None
    now = ctx.clock.now()
    return {
        **data.model_dump(),
        "timezone": zone,
        "next_at": next_due(data.cron, zone, now),
        "updated_at": now,
    }


def _digest(conn: Connection, digest_id: str) -> Digest:
    found = conn.execute(store.digest(digest_id)).first()
    if found is None:
        raise NotFound(f"no digest {digest_id}", code="digest_not_found")
    return Digest.model_validate(found, from_attributes=True)


def create_digest(ctx: AppContext, data: DigestFields, *, actor: str) -> Digest:
    row = {**_checked(ctx, data), "id": new_id(), "created_at": ctx.clock.now()}
    with ctx.db.write() as conn:
        conn.execute(store.INSERT_DIGEST, row)
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="analytics.digest.created",
            entity_type="digest",
            entity_id=str(row["id"]),
        )
        return _digest(conn, str(row["id"]))


def update_digest(ctx: AppContext, digest_id: str, data: DigestFields, *, actor: str) -> Digest:
    values = _checked(ctx, data)
    with ctx.db.write() as conn:
        _digest(conn, digest_id)
        conn.execute(store.update_digest(digest_id, values))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="analytics.digest.updated",
            entity_type="digest",
            entity_id=digest_id,
        )
        return _digest(conn, digest_id)


def delete_digest(ctx: AppContext, digest_id: str, *, actor: str) -> None:
    with ctx.db.write() as conn:
        _digest(conn, digest_id)
        conn.execute(store.delete_digest(digest_id))
        audit.record(
            conn,
            ctx.clock,
            actor=actor,
            action="analytics.digest.deleted",
            entity_type="digest",
            entity_id=digest_id,
        )


def get_digest(ctx: AppContext, digest_id: str) -> Digest:
    with ctx.db.read() as conn:
        return _digest(conn, digest_id)


def digests(ctx: AppContext) -> list[Digest]:
    with ctx.db.read() as conn:
        return [Digest.model_validate(r, from_attributes=True) for r in conn.execute(store.ALL_DIGESTS)]


def _change(current: float, previous: float) -> str:
    if not previous:
        return "new" if current else "—"
    return f"{(current - previous) / previous:+.0%}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def contents(ctx: AppContext, digest: Digest, due: datetime) -> dict[str, object]:
    """The digest's email variables for the period ending the day before ``due``'s local date."""
    end: date = due.astimezone(ZoneInfo(digest.timezone)).date() - timedelta(days=1)
    report = kpis.kpis(ctx, end - timedelta(days=DAYS - 1), end)
    figures = [
        {
            "label": label,
            "current": _number(report.figures[name].current),
            "previous": _number(report.figures[name].previous),
            "change": _change(report.figures[name].current, report.figures[name].previous),
        }
        for name, label in FIGURES
        if name in report.figures
    ]
    return {
        "subject": f"{digest.name}: {report.period.start} to {report.period.end}",
        "period": f"{report.period.start} to {report.period.end}",
        "previous": f"{report.previous.start} to {report.previous.end}",
        "figures": figures,
    }


def send_due_digests(ctx: AppContext) -> list[tuple[str, datetime]]:
    """Send each digest due now, once per due time; returns the (digest, due time) this call sent."""
    now = ctx.clock.now()
    with ctx.db.read() as conn:
        due = [
            Digest.model_validate(r, from_attributes=True)
            for r in conn.execute(store.due_digests(DUE_AT_ONCE), {"now": now})
        ]
    if not due:
        return []
    notices.install_templates(ctx)
    people = notices.users(ctx)
    sent: list[tuple[str, datetime]] = []
    for digest in due:
        values = contents(ctx, digest, digest.next_at)
        to = notices.addresses(people, digest.user_ids)
        following = next_due(digest.cron, digest.timezone, max(now, digest.next_at))
        with ctx.db.write() as conn:
            claim = {"digest_id": digest.id, "due_at": digest.next_at, "sent_at": now, "recipients": len(to)}
            if conn.execute(store.claim_send(conn.dialect.name), claim).first() is None:
                continue  # another worker sent this period's digest
            key = f"digest:{digest.id}:{digest.next_at.isoformat()}"
            notices.send(conn, ctx, key, notices.DIGEST_TEMPLATE, to, values)
            conn.execute(
                store.advance_digest(digest.id), {"due": digest.next_at, "next": following, "now": now}
            )
        sent.append((digest.id, digest.next_at))
    return sent
