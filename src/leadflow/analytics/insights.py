"""Attribution reports and A/B readouts from the database: the reads of :mod:`.store` fed to the pure
models of :mod:`.attribution` and :mod:`.abtest`, and the response shapes of their API.

* ``conversion`` is an event name (``order.completed``) or ``stage:NAME`` (the contact entering a
  lifecycle stage). Its value is ``value`` when given, else the event's ``revenue`` or ``value``
  property, else 0.
* Experiments: every journey ``split`` step (the path taken is recorded on the split's step row).
  A conversion is the journey's goal when the journey has one, else a human email click from the
  journey after the split. Control is the split's first path; a ``holdout`` group, when the split has
  one, gives the journey's incremental lift (every path together against the holdout). Broadcasts
  have no variants, so they have no readouts.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

from leadflow.analytics import abtest, attribution, credits, kpis, store
from leadflow.analytics.attribution import DIMENSIONS, MODELS, Dimension, Model
from leadflow.analytics.reports import write_csv
from leadflow.journeys import service as journeys
from leadflow.kernel import snapshot_reads
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Invalid, NotFound

MAX_DAYS = 366
MAX_LOOKBACK = 365
HOLDOUT = "holdout"


# ---- response shapes ------------------------------------------------------------------------------


class Credit(BaseModel):
    key: str = Field(description="the source, medium, campaign or journey; (direct) without touchpoints")
    value: Decimal = Field(description="the value credited, to the cent")
    conversions: float = Field(description="the share of conversions credited")


class ModelCredits(BaseModel):
    model: Model
    credits: list[Credit]


class Attribution(BaseModel):
    conversion: str
    start: date
    end: date
    by: Dimension
    lookback_days: int
    conversions: int
    value: Decimal = Field(description="the conversions' total value; each model's credits sum to it")
    models: list[ModelCredits]


class Variant(BaseModel):
    name: str
    exposures: int
    conversions: int
    rate: float
    control: bool = False
    lift: float | None = Field(None, description="rate minus control's rate")
    relative_lift: float | None = Field(None, description="lift over control's rate")
    interval: tuple[float, float] | None = Field(None, description="95 % interval on the lift")
    p_value: float | None = Field(None, description="two-proportion z-test, pooled")
    probability_to_beat_control: float | None = None


class Needed(BaseModel):
    variant: str
    exposures: int = 0
    conversions: int = 0


class Incremental(BaseModel):
    holdout_exposures: int
    holdout_conversions: int
    treated_exposures: int
    treated_conversions: int
    lift: float | None = None
    interval: tuple[float, float] | None = None
    p_value: float | None = None


class Experiment(BaseModel):
    journey_id: str
    journey: str | None
    step_id: str
    conversion: Literal["goal", "click"]
    status: Literal["ready", "collecting"]
    needed: list[Needed] = Field(default_factory=list, description="what each variant still needs")
    variants: list[Variant]
    holdout: Incremental | None = None


class Experiments(BaseModel):
    experiments: list[Experiment]


# ---- attribution ----------------------------------------------------------------------------------


def parse_conversion(conversion: str) -> tuple[str | None, str | None]:
    """``stage:NAME`` → (None, NAME); an event name → (name, None)."""
    text = conversion.strip()
    if text.startswith("stage:"):
        stage = text[len("stage:") :].strip()
        if not stage:
            raise Invalid("'conversion' needs a stage after 'stage:'", code="invalid_conversion")
        return None, stage
    if not text or len(text) > 255:
        raise Invalid("'conversion' is an event name or stage:NAME", code="invalid_conversion")
    return text, None


def _period(start: date | None, end: date | None, today: date) -> tuple[date, date]:
    kpis.within_days(start, end)
    end = end or today
    start = start or end - timedelta(days=29)
    kpis.within_days(start)
    if start > end:
        raise Invalid("'from' is after 'to'", code="invalid_period")
    if (end - start).days + 1 > MAX_DAYS:
        raise Invalid(f"a period is at most {MAX_DAYS} days", code="invalid_period")
    return start, end


def _value(properties: Any, fixed: Decimal | None) -> Decimal:
    if fixed is not None:
        return attribution.to_cents(fixed)
    props = properties if isinstance(properties, dict) else {}
    raw = props.get("revenue", props.get("value"))
    return attribution.to_cents(raw)


def _cents(properties: Any, fixed: Decimal | None) -> int:
    """:func:`_value` in cents; a whole-number value (the usual ``revenue``) without the detour through
    :class:`~decimal.Decimal`."""
    if fixed is None and isinstance(properties, dict):
        raw = properties.get("revenue", properties.get("value"))
        if type(raw) is int:
            return raw * 100
    return int(_value(properties, fixed) * 100)


def attribution_report(
    ctx: AppContext,
    conversion: str,
    *,
    start: date | None = None,
    end: date | None = None,
    models: list[Model] | None = None,
    by: Dimension = "source",
    lookback_days: int = 90,
    value: Decimal | None = None,
) -> Attribution:
    event, stage = parse_conversion(conversion)
    if by not in DIMENSIONS:
        raise Invalid(f"'by' is one of {', '.join(DIMENSIONS)}", code="invalid_dimension")
    if not 1 <= lookback_days <= MAX_LOOKBACK:
        raise Invalid(f"'lookback_days' is between 1 and {MAX_LOOKBACK}", code="invalid_lookback")
    chosen = models or list(MODELS)
    if any(m not in MODELS for m in chosen):
        raise Invalid(f"'model' is one of {', '.join(MODELS)}", code="invalid_model")
    first, last = _period(start, end, ctx.clock.now().astimezone(UTC).date())
    lookback = timedelta(days=lookback_days)
    begin = datetime.combine(first, time(), UTC)
    params = {"start": begin, "end": datetime.combine(last + timedelta(days=1), time(), UTC)}
    params["since"] = begin - lookback
    reads = [(store.conversions(event, stage), params), (store.touches(event, stage), params)]
    with snapshot_reads.streamed(ctx.db, reads, settings=store.ATTRIBUTION_SETTINGS) as (rows, touches):
        conversions = ((r.contact_id, r.timestamp, _cents(r.properties, value)) for r in rows)
        result = credits.attribute_rows(conversions, touches, models=chosen, by=by, lookback=lookback)
    return Attribution(
        conversion=conversion,
        start=first,
        end=last,
        by=by,
        lookback_days=lookback_days,
        conversions=result.conversions,
        value=result.value,
        models=[
            ModelCredits(
                model=model,
                credits=[
                    Credit(key=key, value=cell.value, conversions=credits.share(cell.by_denominator))
                    for key, cell in sorted(
                        result.cells.get(model, {}).items(), key=lambda kv: (-kv[1].value, kv[0])
                    )
                ],
            )
            for model in chosen
        ],
    )


# ---- experiments ----------------------------------------------------------------------------------


def _split_step(definition: dict[str, Any], step_id: str) -> dict[str, Any]:
    for step in definition.get("steps") or []:
        if isinstance(step, dict) and step.get("id") == step_id:
            return step
    return {}


def _readout(
    journey_id: str, step_id: str, groups: dict[str, tuple[int, int, int]], journey: Any
) -> Experiment:
    """``groups``: path → (exposures, goals, clicks)."""
    definition: dict[str, Any] = journey.definition if journey is not None else {}
    settings = definition.get("settings") or {}
    kind: Literal["goal", "click"] = "goal" if settings.get("goal") else "click"
    step = _split_step(definition, step_id)
    order = [p.get("name") for p in step.get("paths") or [] if isinstance(p, dict)]
    names = [n for n in order if isinstance(n, str)]
    names += sorted(n for n in groups if n not in names and n != HOLDOUT)
    counts = {
        name: (groups.get(name, (0, 0, 0))[0], groups.get(name, (0, 0, 0))[1 if kind == "goal" else 2])
        for name in [*names, HOLDOUT]
    }
    needed = [
        Needed(variant=name, **abtest.missing(*counts[name]))
        for name in names
        if abtest.missing(*counts[name])
    ]
    ready = not needed and len(names) >= 2
    control = counts[names[0]] if names else (0, 0)
    variants = []
    for index, name in enumerate(names):
        n, c = counts[name]
        variant = Variant(name=name, exposures=n, conversions=c, rate=abtest.rate(c, n), control=index == 0)
        if ready and index > 0:
            lift = abtest.lift((control[1], control[0]), (c, n))
            variant.lift, variant.relative_lift = lift.absolute, lift.relative
            variant.interval, variant.p_value = (lift.low, lift.high), lift.p_value
            variant.probability_to_beat_control = abtest.probability_to_beat((control[1], control[0]), (c, n))
        variants.append(variant)
    holdout = None
    if HOLDOUT in groups:
        hn, hc = counts[HOLDOUT]
        tn, tc = sum(counts[n][0] for n in names), sum(counts[n][1] for n in names)
        holdout = Incremental(
            holdout_exposures=hn, holdout_conversions=hc, treated_exposures=tn, treated_conversions=tc
        )
        if not abtest.missing(hn, hc) and not abtest.missing(tn, tc):
            lift = abtest.lift((hc, hn), (tc, tn))
            holdout.lift, holdout.interval, holdout.p_value = (
                lift.absolute,
                (lift.low, lift.high),
                lift.p_value,
            )
        elif ready:
            needed.append(Needed(variant=HOLDOUT, **abtest.missing(hn, hc)))
    return Experiment(
        journey_id=journey_id,
        journey=journey.name if journey is not None else None,
        step_id=step_id,
        conversion=kind,
        status="ready" if ready else "collecting",
        needed=needed,
        variants=variants,
        holdout=holdout,
    )


def experiments(ctx: AppContext, journey_id: str | None = None, step_id: str | None = None) -> Experiments:
    """Readouts for every journey split (or one); a journey deleted since keeps its numbers."""
    groups: dict[tuple[str, str], dict[str, tuple[int, int, int]]] = defaultdict(dict)
    with ctx.db.read() as conn:  # the journeys' per-day split counters: a few rows per split and day
        for row in conn.execute(store.splits(journey_id, step_id)):
            counts = (int(row.exposures), int(row.goals), int(row.clicks))
            groups[(row.journey_id, row.step_id)][row.branch] = counts
    found: dict[str, Any] = {}
    for jid in {key[0] for key in groups}:
        try:
            found[jid] = journeys.get(ctx, jid)
        except NotFound:
            found[jid] = None
    return Experiments(
        experiments=[_readout(jid, sid, paths, found[jid]) for (jid, sid), paths in sorted(groups.items())]
    )


def experiment(ctx: AppContext, journey_id: str, step_id: str) -> Experiment:
    answer = experiments(ctx, journey_id, step_id).experiments
    if not answer:
        raise NotFound("no split with exposures at this journey step", code="experiment_not_found")
    return answer[0]


# ---- CSV ------------------------------------------------------------------------------------------


def to_csv(report: Attribution | Experiment | Experiments) -> str:
    """One line per model and key (attribution) or per experiment variant, with a header line."""
    rows: list[dict[str, Any]] = []
    if isinstance(report, Attribution):
        for block in report.models:
            rows += [
                {"model": block.model, report.by: c.key, "value": str(c.value), "conversions": c.conversions}
                for c in block.credits
            ]
        columns = ["model", report.by, "value", "conversions"]
    else:
        found = report.experiments if isinstance(report, Experiments) else [report]
        for item in found:
            for v in item.variants:
                line: dict[str, Any] = {
                    "journey_id": item.journey_id,
                    "step_id": item.step_id,
                    "status": item.status,
                }
                line |= v.model_dump(mode="json", exclude={"interval"})
                line["low"], line["high"] = v.interval if v.interval else (None, None)
                rows.append(line)
        columns = ["journey_id", "step_id", "status", *Variant.model_fields, "low", "high"]
        columns.remove("interval")
    return write_csv(rows, columns)
