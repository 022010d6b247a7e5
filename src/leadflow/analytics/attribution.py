"""Attribution: each conversion's value shared among the touchpoints before it (pure; no SQL).

Rules (issue 15, "Attribution"):

* A conversion's touchpoints are the contact's touchpoints at or before it and no older than the
  lookback window (default 90 days), oldest first; touchpoints with equal timestamps keep their read
  order (the touchpoint id breaks ties); the same touch recorded twice at one moment counts once.
* Models: ``first_touch`` and ``last_touch`` (all the value to one), ``linear`` (equal shares),
  ``time_decay`` (weight ``2^(-age/half-life)``, half-life 7 days, normalised) and ``position_based``
  (40 % first, 40 % last, 20 % shared by the middle; one touch gets 100 %, two get 50 % each).
* **Credits sum to the value exactly**: the value is taken to the cent, shares are exact fractions and
  the cents are handed out by the largest remainder (ties to the earlier touch), so every model's
  credits for a conversion add up to its value to the cent.
* A conversion without touchpoints is credited to ``(direct)``; a touchpoint without a value for the
  dimension asked (no campaign, no journey) counts as ``(none)``.
* Reading is streamed per contact (:func:`by_contact`), so memory holds one contact's rows at a time.
* The report computes with :mod:`.credits` (integer cents over plain rows, same results, a property
  test holds them equal); this module is the readable reference and the shared types.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from math import gcd
from typing import Any, Literal

Model = Literal["first_touch", "last_touch", "linear", "time_decay", "position_based"]
Dimension = Literal["source", "medium", "campaign", "journey"]
MODELS: tuple[Model, ...] = ("first_touch", "last_touch", "linear", "time_decay", "position_based")
DIMENSIONS: tuple[Dimension, ...] = ("source", "medium", "campaign", "journey")
DIRECT = "(direct)"
NONE = "(none)"
HALF_LIFE = timedelta(days=7)
DEFAULT_LOOKBACK = timedelta(days=90)
CENT = Decimal("0.01")


@dataclass(frozen=True)
class Touch:
    at: datetime
    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    journey: str | None = None
    order: int = 0  # tie-breaker for equal timestamps (the touchpoint's id)

    def key(self, by: Dimension) -> str:
        value: str | None = getattr(self, by)
        return value if value else NONE


@dataclass(frozen=True)
class Conversion:
    contact_id: str
    at: datetime
    value: Decimal


def to_cents(value: Any) -> Decimal:
    """A value (number or numeric string) to the cent; anything else is 0."""
    if value is None or isinstance(value, bool):
        return Decimal(0).quantize(CENT)
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return Decimal(0).quantize(CENT)
    if not number.is_finite():
        return Decimal(0).quantize(CENT)
    return number.quantize(CENT, rounding=ROUND_HALF_EVEN)


def weights(model: Model, touches: Sequence[Touch], at: datetime) -> list[Fraction]:
    """Each touch's share of the conversion at ``at`` under ``model`` (they sum to 1)."""
    n = len(touches)
    if n == 0:
        return []
    if model == "first_touch":
        return [Fraction(1 if i == 0 else 0) for i in range(n)]
    if model == "last_touch":
        return [Fraction(1 if i == n - 1 else 0) for i in range(n)]
    if model == "linear":
        return [Fraction(1, n)] * n
    if model == "position_based":
        if n == 1:
            return [Fraction(1)]
        if n == 2:
            return [Fraction(1, 2)] * 2
        middle = Fraction(1, 5) / (n - 2)
        return [Fraction(2, 5), *([middle] * (n - 2)), Fraction(2, 5)]
    if model == "time_decay":
        half_life = HALF_LIFE.total_seconds()
        raw = [Fraction(2 ** (-max((at - t.at).total_seconds(), 0.0) / half_life)) for t in touches]
        total = sum(raw, Fraction(0))
        return [w / total for w in raw]
    raise ValueError(f"unknown model {model!r}")


def allocate(value: Decimal, shares: Sequence[Fraction]) -> list[Decimal]:
    """``value`` (to the cent) split by ``shares`` into cents summing to it exactly: each gets the
    floor of its exact share, and the cents left go to the largest remainders (earlier first on ties)."""
    if not shares:
        return []
    den = 1
    for share in shares:
        den = den * share.denominator // gcd(den, share.denominator)
    return _allocate(int(to_cents(value) * 100), [int(s * den) for s in shares])


def _allocate(cents: int, parts: Sequence[int]) -> list[Decimal]:
    """:func:`allocate` in integers: shares ``parts[i] / sum(parts)`` (one common denominator, so the
    remainders compare as integers — the same order as the exact fractions')."""
    sign, cents = (-1 if cents < 0 else 1), abs(cents)
    total = sum(parts)
    floors, remainders = [], []
    for part in parts:
        whole, rest = divmod(cents * part, total)
        floors.append(whole)
        remainders.append(rest)
    left = cents - sum(floors)
    if left:
        for i in sorted(range(len(parts)), key=lambda i: (-remainders[i], i))[:left]:
            floors[i] += 1
    return [(Decimal(sign * c) / 100).quantize(CENT) for c in floors]


def _parts(model: Model, touches: Sequence[Touch], at: datetime) -> list[int]:
    """The weights of :func:`weights` as integers over one common denominator (their sum)."""
    n = len(touches)
    if model == "first_touch":
        return [1] + [0] * (n - 1)
    if model == "last_touch":
        return [0] * (n - 1) + [1]
    if model == "linear":
        return [1] * n
    if model == "position_based" and n > 2:
        return [2 * (n - 2), *([1] * (n - 2)), 2 * (n - 2)]  # 2/5, 1/5 shared, 2/5 over 5(n - 2)
    if model == "position_based":
        return [1] * n
    if model == "time_decay":  # 2^(-age/half-life) as floats are dyadic: over the largest power of two
        half_life = HALF_LIFE.total_seconds()
        ratios = [
            (2 ** (-max((at - t.at).total_seconds(), 0.0) / half_life)).as_integer_ratio() for t in touches
        ]
        den = max(d for _, d in ratios)
        return [n * (den // d) for n, d in ratios]
    raise ValueError(f"unknown model {model!r}")


def window(touches: Sequence[Touch], conversion: Conversion, lookback: timedelta) -> list[Touch]:
    """The touches of ``conversion`` (at or before it, within ``lookback``), oldest first. One moment
    recorded twice (a form post is both a page view and a ``form.submitted`` event with the same
    campaign) is one touch: a touch equal to the previous one in time and source is dropped."""
    since = conversion.at - lookback
    ordered = sorted((t for t in touches if since <= t.at <= conversion.at), key=lambda t: (t.at, t.order))
    kept: list[Touch] = []
    for touch in ordered:
        if kept and _same(kept[-1], touch):
            continue
        kept.append(touch)
    return kept


def _same(a: Touch, b: Touch) -> bool:
    return (a.at, a.source, a.medium, a.campaign, a.journey) == (
        b.at,
        b.source,
        b.medium,
        b.campaign,
        b.journey,
    )


@dataclass
class Cell:
    """What one dimension value earned under one model."""

    value: Decimal = field(default_factory=lambda: Decimal(0).quantize(CENT))
    by_denominator: dict[int, int] = field(default_factory=dict)  # shares summed per denominator

    def add(self, part: int, total: int) -> None:
        """Add the share ``part / total`` (exact; summed as integers per denominator, one fraction at
        the end: a sum of fractions normalises at every step)."""
        self.by_denominator[total] = self.by_denominator.get(total, 0) + part

    @property
    def conversions(self) -> Fraction:
        return sum((Fraction(n, d) for d, n in self.by_denominator.items()), Fraction(0))


@dataclass
class Result:
    conversions: int = 0
    value: Decimal = field(default_factory=lambda: Decimal(0).quantize(CENT))
    cells: dict[Model, dict[str, Cell]] = field(default_factory=dict)


def attribute_one(
    result: Result,
    conversion: Conversion,
    touches: Sequence[Touch],
    *,
    models: Sequence[Model],
    by: Dimension,
    lookback: timedelta,
) -> None:
    """Add one conversion's credits to ``result`` (``touches``: the contact's, any order)."""
    chosen = window(touches, conversion, lookback)
    value = to_cents(conversion.value)
    result.conversions += 1
    result.value += value
    for model in models:
        cells = result.cells.setdefault(model, {})
        if not chosen:
            cell = cells.setdefault(DIRECT, Cell())
            cell.value += value
            cell.add(1, 1)
            continue
        parts = _parts(model, chosen, conversion.at)
        total = sum(parts)
        credits = _allocate(int(value * 100), parts)
        for touch, part, credit in zip(chosen, parts, credits, strict=True):
            if part == 0:
                continue
            cell = cells.setdefault(touch.key(by), Cell())
            cell.value += credit
            cell.add(part, total)


def by_contact(
    conversions: Iterable[Conversion], touches: Iterable[tuple[str, Touch]]
) -> Iterator[tuple[list[Conversion], list[Touch]]]:
    """Merge two streams into each contact's conversions and touches. Both come in the same contact
    order (one database, one ORDER BY) and every touch belongs to a contact with a conversion, so the
    merge compares contact ids for equality only (never the collation's order)."""
    touch_iter = iter(touches)
    head = [next(touch_iter, None)]
    group: list[Conversion] = []
    for conversion in conversions:
        if group and group[0].contact_id != conversion.contact_id:
            yield group, _touches_of(group[0].contact_id, touch_iter, head)
            group = []
        group.append(conversion)
    if group:
        yield group, _touches_of(group[0].contact_id, touch_iter, head)


def _touches_of(
    contact_id: str, touch_iter: Iterator[tuple[str, Touch]], head: list[tuple[str, Touch] | None]
) -> list[Touch]:
    """The touches of ``contact_id`` at the head of the stream; ``head[0]`` is the look-ahead row."""
    found: list[Touch] = []
    while head[0] is not None and head[0][0] == contact_id:
        found.append(head[0][1])
        head[0] = next(touch_iter, None)
    return found


def attribute(
    conversions: Iterable[Conversion],
    touches: Iterable[tuple[str, Touch]],
    *,
    models: Sequence[Model] = MODELS,
    by: Dimension = "source",
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> Result:
    """Every model's credits by ``by`` for the conversions; both streams ordered by contact id."""
    result = Result(cells={model: {} for model in models})
    for group, contact_touches in by_contact(conversions, touches):
        for conversion in group:
            attribute_one(result, conversion, contact_touches, models=models, by=by, lookback=lookback)
    return result
