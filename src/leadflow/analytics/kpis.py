"""KPIs read from the rollups: each for a period of UTC days against the previous period of the same
length (``[start - n days, start)``).

Definitions (business rules):

* A stage count (visitors, leads, MQL, SQL, customers, advocates) is the number of contacts whose
  **first** entry into that stage falls in the period. A visitor is a contact's first event from outside.
* The funnel's conversion from a stage to the next is ``entered(next) / entered(stage)`` in the same
  period (a flow rate); the median time is, for the contacts who entered the next stage in the period
  having entered the stage before, the median of the time between the two entries. By default it is
  an **approximate median (±0.5 %)** read from the rollups' gap histograms (log-spaced buckets 0.5 %
  wide, interpolated inside the median's bucket; a gap under a millisecond counts as 0); ``exact``
  computes it from the stage entries (reads every contact who entered a stage in the period).
* Leads by source: the lead's first touchpoint (source, medium, campaign; ``(direct)`` / ``(none)``).
* Email: unique human opens and clicks (one per message); machine opens and clicks apart; delivered is
  sent minus bounced; open, click, unsubscribe and complaint rates are over delivered, the bounce rate
  over sent. Clicks by link (a template's): each message's first human click counts for the link it
  was on, a machine's first click apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any

from sqlalchemy.engine import Connection

from leadflow.analytics import health, queries, store
from leadflow.analytics.schemas import (
    EmailReport,
    EmailRow,
    Figure,
    Funnel,
    FunnelStep,
    JourneyFunnel,
    JourneyStepCount,
    Kpis,
    LinkClicks,
    Period,
    SourceRow,
    Sources,
)
from leadflow.journeys import service as journeys
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid

STAGES = ("visitor", "lead", "mql", "sql", "customer", "advocate")
STAGE_FIGURES = ("visitors", "leads", "mql", "sql", "customers", "advocates")
EMAIL_STATUSES = ("sent", "bounced", "opened", "clicked", "unsubscribed", "complained")
EMAIL_BY = ("template", "journey", "step", "broadcast")
MAX_DAYS = 3 * 366


EARLIEST, LATEST = date(1900, 1, 1), date(9998, 12, 31)
"""The days a period may name: the period before it and the day after it must still be dates."""


def within_days(*days: date | None) -> None:
    """Refuse a day outside :data:`EARLIEST` … :data:`LATEST` (``400 invalid_period``, not an overflow)."""
    for day in days:
        if day is not None and not EARLIEST <= day <= LATEST:
            raise Invalid(f"a day is between {EARLIEST} and {LATEST}", code="invalid_period")


def period(start: date | None, end: date | None, today: date) -> tuple[Period, Period]:
    """The period asked for (default: the last 30 days up to today) and the one before it."""
    within_days(start, end)
    end = end or today
    start = start or end - timedelta(days=29)
    within_days(start)
    if start > end:
        raise Invalid("'from' is after 'to'", code="invalid_period")
    days = (end - start).days + 1
    if days > MAX_DAYS:
        raise Invalid(f"a period is at most {MAX_DAYS} days", code="invalid_period")
    previous = Period(start=start - timedelta(days=days), end=start - timedelta(days=1))
    return Period(start=start, end=end), previous


def _bounds(p: Period) -> dict[str, date]:
    return {"start": p.start, "end": p.end + timedelta(days=1)}


def _instants(p: Period) -> dict[str, datetime]:
    return {
        "start": datetime.combine(p.start, time(), tzinfo=UTC),
        "end": datetime.combine(p.end + timedelta(days=1), time(), tzinfo=UTC),
    }


def entrants(stage: str, start: date, end: date, *, first_touch: tuple[str, str, str] | None = None) -> Any:
    """``SELECT contact_id`` of the contacts counted in a stage KPI for the UTC days ``start`` to
    ``end`` (inclusive): those whose first entry into ``stage`` falls in them (an erased or merged
    contact's entry is counted but no longer names a contact). ``first_touch`` (source, medium,
    campaign, as a row of :func:`sources` shows them) keeps those of one row of leads by source."""
    if stage not in STAGES:
        raise Invalid(f"unknown stage {stage!r}; use one of {', '.join(STAGES)}", code="invalid_stage")
    bounds = _instants(Period(start=start, end=end))
    utm = queries.SEP.join(first_touch) if first_touch else None
    return queries.stage_entrants(stage, bounds["start"], bounds["end"], utm)


def _figure(current: float, previous: float) -> Figure:
    change = None if previous == 0 else (current - previous) / previous
    return Figure(current=current, previous=previous, change=change)


def _ratio(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole


def _counts(
    conn: Connection, p: Period, metrics: list[str] | None, dimension: str, prefix: str | None = None
) -> dict[tuple[str, str], int]:
    rows = conn.execute(queries.sums(metrics, dimension, prefix=prefix), _bounds(p))
    return {(row.metric, row.key): int(row.n) for row in rows}


def _stages(conn: Connection, p: Period) -> dict[str, int]:
    counts = _counts(conn, p, ["stage.entered"], "stage")
    return {stage: counts.get(("stage.entered", stage), 0) for stage in STAGES}


def _email_totals(conn: Connection, p: Period) -> dict[str, int]:
    counts = _counts(conn, p, None, "", prefix="email.")
    return {status: counts.get((f"email.{status}", ""), 0) for status in EMAIL_STATUSES}


def kpis(ctx: AppContext, start: date | None, end: date | None) -> Kpis:
    current, previous = period(start, end, ctx.clock.now().date())
    with ctx.db.read() as conn:
        stages = [_stages(conn, p) for p in (current, previous)]
        email = [_email_totals(conn, p) for p in (current, previous)]
    figures = {
        name: _figure(stages[0][stage], stages[1][stage])
        for name, stage in zip(STAGE_FIGURES, STAGES, strict=True)
    }
    for status in EMAIL_STATUSES:
        figures[f"emails_{status}"] = _figure(email[0][status], email[1][status])
    figures["emails_delivered"] = _figure(*(e["sent"] - e["bounced"] for e in email))
    sla = [health.sla_totals(ctx, p) for p in (current, previous)]
    figures |= {name: _figure(sla[0][name], sla[1][name]) for name in sla[0]}
    return Kpis(period=current, previous=previous, figures=figures)


def _median(conn: Connection, dialect: str, earlier: str, later: str, p: Period) -> float:
    count_query, values_query = queries.stage_gaps(dialect)
    params = {"from_stage": earlier, "to_stage": later, **_instants(p)}
    count = int(conn.execute(count_query, params).scalar() or 0)
    if count == 0:
        return 0.0
    middle = [
        float(v)
        for v in conn.execute(
            values_query, {**params, "offset": (count - 1) // 2, "limit": 2 - count % 2}
        ).scalars()
    ]
    return sum(middle) / len(middle)


def _medians(conn: Connection, current: Period, previous: Period) -> dict[str, tuple[float, float]]:
    """The median seconds from each stage to the next (current, previous period), keyed by the later."""
    pairs = list(pairwise(STAGES))
    if conn.dialect.name == "postgresql":  # one pass over the entries for every pair and both periods
        now, before = _instants(current), _instants(previous)
        params = {**now, "pstart": before["start"], "pend": before["end"]}
        found = {row.stage: (float(row.current), float(row.previous)) for row in
                 conn.execute(queries.stage_medians(pairs), params)}  # fmt: skip
        return {later: found.get(later, (0.0, 0.0)) for _, later in pairs}
    return {
        later: (_median(conn, "sqlite", earlier, later, p), _median(conn, "sqlite", earlier, later, q))
        for earlier, later in pairs
        for p, q in [(current, previous)]
    }


def _ranked(histogram: Mapping[int, int], rank: int) -> float:
    """The ``rank``-th smallest gap (0-based, seconds) estimated from a histogram ``{bucket: count}``:
    inside its bucket ``[B**k, B**(k+1))`` ms the values are taken as spread evenly on a log scale,
    the i-th of n at ``B**(k + (i + 0.5) / n)`` — within the bucket, so within 0.5 % of the true one."""
    seen = 0
    for bucket in sorted(histogram):
        n = histogram[bucket]
        if rank < seen + n:
            if bucket == queries.GAP_ZERO:
                return 0.0
            return float(queries.GAP_BASE ** (bucket + (rank - seen + 0.5) / n)) / 1000.0
        seen += n
    raise ValueError("rank beyond the histogram")


def histogram_median(histogram: Mapping[int, int]) -> float:
    """The approximate median of a gap histogram: the middle value, or the mean of the two middle ones."""
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    if total % 2:
        return _ranked(histogram, total // 2)
    return (_ranked(histogram, total // 2 - 1) + _ranked(histogram, total // 2)) / 2


def _approximate_medians(
    conn: Connection, current: Period, previous: Period
) -> dict[str, tuple[float, float]]:
    """The approximate median seconds from each stage to the next, from the summed daily histograms."""
    metrics = {queries.gap_metric(a, b): b for a, b in queries.GAP_PAIRS}
    found: dict[str, list[float]] = {}
    for p in (current, previous):
        histograms: dict[str, dict[int, int]] = defaultdict(dict)
        for row in conn.execute(queries.sums(list(metrics), queries.GAP_DIMENSION), _bounds(p)):
            histograms[metrics[row.metric]][int(row.key)] = int(row.n)
        for later in metrics.values():
            found.setdefault(later, []).append(histogram_median(histograms.get(later, {})))
    return {later: (values[0], values[1]) for later, values in found.items()}


def funnel(ctx: AppContext, start: date | None, end: date | None, *, exact: bool = False) -> Funnel:
    current, previous = period(start, end, ctx.clock.now().date())
    steps: list[FunnelStep] = []
    with ctx.db.read() as conn:
        counts = [_stages(conn, p) for p in (current, previous)]
        if exact:
            medians = _medians(conn, current, previous)
        else:
            medians = _approximate_medians(conn, current, previous)
        for index, stage in enumerate(STAGES):
            entered = _figure(counts[0][stage], counts[1][stage])
            conversion = median = None
            if index:
                before = STAGES[index - 1]
                rates = [_ratio(c[stage], c[before]) or 0.0 for c in counts]
                conversion = _figure(*rates)
                median = _figure(*medians[stage])
            steps.append(
                FunnelStep(stage=stage, entered=entered, conversion=conversion, median_seconds=median)
            )
    return Funnel(period=current, previous=previous, stages=steps, exact_medians=exact)


def sources(ctx: AppContext, start: date | None, end: date | None) -> Sources:
    current, previous = period(start, end, ctx.clock.now().date())
    with ctx.db.read() as conn:
        now, before = (_counts(conn, p, ["leads"], "utm") for p in (current, previous))
    keys = sorted({key for _, key in now} | {key for _, key in before})
    rows = []
    for key in keys:
        source, medium, campaign = [*key.split(queries.SEP, 2), "", ""][:3]
        figure = _figure(now.get(("leads", key), 0), before.get(("leads", key), 0))
        rows.append(SourceRow(source=source, medium=medium, campaign=campaign, leads=figure))
    rows.sort(key=lambda row: (-row.leads.current, row.source, row.medium, row.campaign))
    return Sources(period=current, previous=previous, rows=rows)


def _by_key(counts: Mapping[tuple[str, str], int]) -> dict[str, dict[str, int]]:
    found: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for (metric, key), count in counts.items():
        found[key][metric.removeprefix("email.")] += count
    return found


def email(ctx: AppContext, by: str, start: date | None, end: date | None) -> EmailReport:
    if by not in EMAIL_BY:
        raise Invalid(f"'by' is one of {', '.join(EMAIL_BY)}", code="invalid_dimension")
    current, previous = period(start, end, ctx.clock.now().date())
    with ctx.db.read() as conn:
        now, before = (_by_key(_counts(conn, p, None, by, prefix="email.")) for p in (current, previous))
    rows = [_email_row(key, now[key], before.get(key, {})) for key in sorted(now)]
    return EmailReport(period=current, previous=previous, by=by, rows=rows)


def _email_row(key: str, c: Mapping[str, int], b: Mapping[str, int]) -> EmailRow:
    sent, bounced = c.get("sent", 0), c.get("bounced", 0)
    delivered = max(sent - bounced, 0)
    before_delivered = max(b.get("sent", 0) - b.get("bounced", 0), 0)
    return EmailRow(
        key=key,
        sent=sent,
        delivered=delivered,
        opened=c.get("opened", 0),
        clicked=c.get("clicked", 0),
        unsubscribed=c.get("unsubscribed", 0),
        bounced=bounced,
        complained=c.get("complained", 0),
        machine_opened=c.get("opened.machine", 0),
        machine_clicked=c.get("clicked.machine", 0),
        open_rate=_ratio(c.get("opened", 0), delivered),
        click_rate=_ratio(c.get("clicked", 0), delivered),
        unsubscribe_rate=_ratio(c.get("unsubscribed", 0), delivered),
        bounce_rate=_ratio(bounced, sent),
        complaint_rate=_ratio(c.get("complained", 0), delivered),
        previous_sent=b.get("sent", 0),
        previous_open_rate=_ratio(b.get("opened", 0), before_delivered),
        previous_click_rate=_ratio(b.get("clicked", 0), before_delivered),
    )


def email_links(ctx: AppContext, template_id: str, start: date | None, end: date | None) -> list[LinkClicks]:
    """Clicks per link of one template's messages in the period, most clicked first: unique human
    clicks (a message's first click, on the link clicked first) and machine clicks apart. A url longer
    than the rollup key allows is cut (shown as its first ~220 characters)."""
    current, _ = period(start, end, ctx.clock.now().date())
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    with ctx.db.read() as conn:
        for row in conn.execute(queries.link_sums(template_id), _bounds(current)):
            url = row.key.partition(queries.SEP)[2]
            counts[url]["machine" if row.metric.endswith(".machine") else "human"] += int(row.n)
    found = [
        LinkClicks(url=url, clicked=c["human"], machine_clicked=c["machine"]) for url, c in counts.items()
    ]
    return sorted(found, key=lambda link: (-link.clicked, -link.machine_clicked, link.url))


def journey_funnel(ctx: AppContext, journey_id: str, start: date | None, end: date | None) -> JourneyFunnel:
    """Runs entered in the period (by their UTC day of entry) → how many of them reached each step (in
    the order steps were first reached) → how many of them converted (the journey's goal), whenever
    they did: read from the journey's per-day funnel counters (``journeys/funnels.py``)."""
    current, _ = period(start, end, ctx.clock.now().date())
    journeys.get(ctx, journey_id)  # 404 for a journey that does not exist
    with ctx.db.read() as conn:  # the journey's per-day funnel counters: a few rows per day and step
        head = conn.execute(store.journey_entered(journey_id, current.start, current.end)).one()
        steps = [
            JourneyStepCount(step_id=r.step_id, reached=int(r.reached))
            for r in conn.execute(store.journey_reached(journey_id, current.start, current.end))
        ]
    entered, converted = int(head.entered), int(head.converted)
    return JourneyFunnel(
        journey_id=journey_id,
        period=current,
        entered=entered,
        steps=steps,
        converted=converted,
        conversion_rate=_ratio(converted, entered),
    )


def by_hour(
    ctx: AppContext, metric: str, dimension: str = "", since: datetime | None = None
) -> list[dict[str, Any]]:
    """Hourly rows of one metric (``hour``, ``key``, ``count``, ``value``) from ``since`` (default: the
    start of today, UTC): the console's "today" charts."""
    start = since or datetime.combine(ctx.clock.now().date(), time(), tzinfo=UTC)
    with ctx.db.read() as conn:
        return [
            dict(row._mapping) for row in conn.execute(queries.hourly(metric, dimension), {"since": start})
        ]
