"""What staff do with a connector besides configuring it: test the connection, preview the mapping,
sync a contact now, backfill a segment, read the audit and the conflicts, see its health, list and
replay dead letters. None of these waits for a vendor except "test connection" (it exists to)."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from leadflow.connectors import config, mapping, outbox, queries, registry, sync
from leadflow.connectors.vendor import CONTACT, VendorError
from leadflow.connectors.worker import TIMEOUT, network_of
from leadflow.contacts import service as contacts
from leadflow.kernel import netguard
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import NotFound, Upstream
from leadflow.segments import service as segments

log = logging.getLogger(__name__)
BACKFILL_PAGE = 5000
HEALTH_WINDOW = timedelta(hours=1)
SUCCESS = frozenset({"written", "unchanged", "gone"})
FAILURE = frozenset({"failed", "dead", "conflict"})


def test_connection(ctx: AppContext, connector_id: str) -> dict[str, Any]:
    """One cheap authenticated call to the vendor: ``{"ok": true}`` or a 502 ``vendor_unreachable`` /
    ``vendor_refused`` naming HubSpot's status (never the credentials)."""
    connector = config.load(ctx, connector_id)
    network = network_of(ctx.settings, min(TIMEOUT, 10.0), ctx.clock)  # as the worker's: its CA bundle too
    try:
        vendor = registry.factory(connector.vendor).make(
            connector.credentials, connector.host, network, connector.options
        )
        try:
            vendor.check()
        finally:
            vendor.close()
    except netguard.Blocked as exc:
        raise Upstream(str(exc), code="vendor_blocked") from None
    except VendorError as exc:
        code = "vendor_unreachable" if exc.retry else "vendor_refused"
        raise Upstream(str(exc), code=code) from None
    return {"ok": True, "vendor": connector.vendor}


def preview(ctx: AppContext, connector_id: str, contact_id: str) -> dict[str, Any]:
    """What the mapping writes for this contact (owners left as their email: no vendor call)."""
    connector = config.load(ctx, connector_id)
    with ctx.db.read() as conn:
        resolved = contacts.live_id(conn, contact_id)
        found = sync.views(conn, [resolved] if resolved else [])
        link = conn.execute(queries.links_of(connector.id, CONTACT, [resolved or ""])).first()
    if not found or resolved is None:
        raise NotFound(f"no contact {contact_id}", code="contact_not_found")
    view = found[resolved]
    fields = mapping.render(
        connector.mapping, view, region=ctx.settings.default_phone_region, owners=lambda e: e
    )
    return {
        "contact_id": resolved,
        "remote_id": link.remote_id if link is not None else None,
        "match": view["email"],
        "properties": fields,
    }


def sync_now(ctx: AppContext, connector_id: str, contact_id: str) -> dict[str, Any]:
    """Queue this contact for the connector, due now; returns the outbox row (the worker writes it)."""
    with ctx.db.write() as conn:
        config.row_of(conn, connector_id)
        resolved = contacts.live_id(conn, contact_id)
        if resolved is None:
            raise NotFound(f"no contact {contact_id}", code="contact_not_found")
        now = ctx.clock.now()
        outbox.enqueue_many(
            conn, ctx, [outbox.row(connector_id, CONTACT, resolved, now, contact_id=resolved)]
        )
        row = conn.execute(queries.pending_of(connector_id, resolved)).one()
    return {"id": row.id, "contact_id": resolved, "state": row.state, "enqueued_at": row.enqueued_at}


def backfill(ctx: AppContext, connector_id: str, segment_id: str) -> dict[str, Any]:
    """Queue every member of a segment, set-based (one statement per page of members); progress is
    the connector's backlog (:func:`health`)."""
    segments.get(ctx, segment_id)
    after, queued = "", 0
    statement = segments.members_after(bounded=False)
    while True:
        with ctx.db.write() as conn:
            config.row_of(conn, connector_id)
            found = conn.execute(
                queries.members_page(statement, BACKFILL_PAGE), {"segment_id": segment_id, "after": after}
            )
            page = [row.contact_id for row in found]
            if not page:
                break
            now = ctx.clock.now()
            rows = [outbox.row(connector_id, CONTACT, cid, now, contact_id=cid) for cid in page]
            queued += outbox.enqueue_many(conn, ctx, rows)
        after = page[-1]
    with ctx.db.read() as conn:
        waiting = conn.execute(queries.backlog(connector_id)).one()
    return {"segment_id": segment_id, "queued": queued, "backlog": waiting.pending}


def audit(
    ctx: AppContext, *, connector_id: str | None, contact_id: str | None, before: int | None, limit: int
) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        rows = conn.execute(
            queries.audit_page(connector_id=connector_id, contact_id=contact_id, before=before, limit=limit)
        )
        return [dict(row._mapping) for row in rows]


def conflicts(ctx: AppContext, connector_id: str, limit: int) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        config.row_of(conn, connector_id)
        return [dict(row._mapping) for row in conn.execute(queries.conflicts_page(connector_id, limit))]


def _percentile(values: list[int], share: float) -> int | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return round(statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1])


def health(ctx: AppContext, connector_id: str) -> dict[str, Any]:
    """Over the last hour: success rate (records written or already in step, of all records settled),
    lag p50/p99 (first change → written), backlog, dead letters, the last error, and ``alerting``
    when the success rate is under the connector's threshold."""
    now = ctx.clock.now()
    since = now - HEALTH_WINDOW
    with ctx.db.read() as conn:
        row = config.row_of(conn, connector_id)
        outcomes = list(conn.execute(queries.outcomes_since(connector_id, since)))
        waiting = conn.execute(queries.backlog(connector_id)).one()
    good = sum(1 for o in outcomes if o.outcome in SUCCESS)
    bad = sum(1 for o in outcomes if o.outcome in FAILURE)
    rate = good / (good + bad) if good + bad else None
    lags = sorted(o.lag_ms for o in outcomes if o.outcome == "written" and o.lag_ms is not None)
    return {
        "connector_id": connector_id,
        "vendor": row.vendor,
        "since": since,
        "until": now,
        "succeeded": good,
        "failed": bad,
        "success_rate": rate,
        "lag_ms": {"p50": _percentile(lags, 0.5), "p99": _percentile(lags, 0.99), "measured": len(lags)},
        "backlog": waiting.pending,
        "oldest_waiting": waiting.oldest,
        "dead_letters": waiting.dead,
        "last_error": row.last_error,
        "threshold": row.health_threshold,
        "alerting": rate is not None and rate < row.health_threshold,
    }


def dead_letters(ctx: AppContext, connector_id: str | None, after: int, limit: int) -> list[dict[str, Any]]:
    with ctx.db.read() as conn:
        if connector_id is not None:
            config.row_of(conn, connector_id)
        return [dict(row._mapping) for row in conn.execute(queries.dead_page(connector_id, after, limit))]


def replay(
    ctx: AppContext,
    *,
    row_id: int | None = None,
    connector_id: str | None = None,
    since: datetime | None = None,
) -> int:
    """Dead letters due again now with fresh attempts: one, a connector's, or all dead since a time."""
    with ctx.db.write() as conn:
        if connector_id is not None:
            config.row_of(conn, connector_id)
        count = conn.execute(
            queries.replay(ctx.clock.now(), row_id=row_id, connector_id=connector_id, since=since)
        )
        if count.rowcount:
            outbox.announce(conn, ctx)
    return int(count.rowcount or 0)


def check_alerts(ctx: AppContext) -> list[str]:
    """Log a warning for each connector whose success rate over the last hour is under its threshold
    (the worker's scheduler runs it; ``alerting`` in the health and in ``/metrics`` says the same)."""
    alerting = [h for h in health_all(ctx) if h["alerting"]]
    for health in alerting:
        log.warning(
            "connector %s (%s): %.1f %% of syncs succeeded over the last hour, under %.1f %%; last error: %s",
            health["connector_id"],
            health["vendor"],
            100 * health["success_rate"],
            100 * health["threshold"],
            health["last_error"],
        )
    return [str(h["connector_id"]) for h in alerting]


def health_all(ctx: AppContext) -> list[Mapping[str, Any]]:
    """Each connector's health (the ``/metrics`` gauges)."""
    with ctx.db.read() as conn:
        ids = [row.id for row in conn.execute(queries.connectors_page(None, 1000))]
    return [health(ctx, connector_id) for connector_id in ids]
