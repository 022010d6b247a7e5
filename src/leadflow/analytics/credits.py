"""Attribution's fast path: every model's credits over many conversions in integer cents, from plain rows.

The same rules as :mod:`.attribution` (its :func:`~.attribution.attribute` is the reference; a property
test holds the two equal), arranged for 100k conversions in a few seconds (issue 15 §5):

* Rows stay tuples, never one object per touch. A contact's touches are ordered (time, id) and
  deduplicated once (a touch equal in time, source, medium, campaign and journey to the one before it is
  dropped — equal times are inside or outside a window together, so this is the reference's per-window
  rule); each conversion's window is then two binary searches in the contact's times.
* One touch: every model gives it the whole value. Otherwise first and last touch are one addition each,
  linear is ``divmod`` (its remainders are all equal, so the cents left go to the earliest touches), and
  only position-based (more than two touches) and time decay go through the largest-remainder split.
* Credits are summed as integer cents per key and shares per (key, denominator) as integers; the
  :class:`~.attribution.Result` is built once at the end, and :func:`share` reads a cell's share of
  conversions without summing the fractions exactly.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

from leadflow.analytics.attribution import (
    CENT,
    DEFAULT_LOOKBACK,
    DIMENSIONS,
    DIRECT,
    HALF_LIFE,
    MODELS,
    NONE,
    Cell,
    Dimension,
    Model,
    Result,
)

_HALF_LIFE = HALF_LIFE.total_seconds()
# a touch row: contact_id, at, source, medium, campaign, journey, ord (the touchpoint's id)
_COLUMN = {name: 2 + i for i, name in enumerate(DIMENSIONS)}


def split(cents: int, parts: Sequence[int]) -> list[int]:
    """``cents`` split by ``parts`` (shares ``part / sum(parts)``) into whole cents summing to it: the
    floors, then one cent each to the largest remainders, earlier first on ties; negative values mirror."""
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
    return [sign * c for c in floors] if sign < 0 else floors


def _decay(at: datetime, times: Sequence[datetime]) -> list[int]:
    """Time decay's weights ``2^(-age/half-life)`` (floats, so dyadic) as integers over the largest
    power of two among their denominators — exactly the reference's."""
    ratios = [(2 ** (-max((at - t).total_seconds(), 0.0) / _HALF_LIFE)).as_integer_ratio() for t in times]
    den = max(d for _, d in ratios)
    return [n * (den // d) for n, d in ratios]


class _Totals:
    """Per model: cents by key, and shares by key as ``{denominator: numerator}``; whole shares (the
    conversion's value to one key) are counted apart, without the dictionary of denominators."""

    def __init__(self) -> None:
        self.cents: dict[str, int] = {}
        self.wholes: dict[str, int] = {}
        self.shares: dict[str, dict[int, int]] = {}

    def whole(self, key: str, cents: int) -> None:
        self.cents[key] = self.cents.get(key, 0) + cents
        self.wholes[key] = self.wholes.get(key, 0) + 1

    def add(self, key: str, cents: int, part: int, total: int) -> None:
        self.cents[key] = self.cents.get(key, 0) + cents
        by_den = self.shares.get(key)
        if by_den is None:
            self.shares[key] = {total: part}
        else:
            by_den[total] = by_den.get(total, 0) + part

    def cells(self, single: _Totals) -> dict[str, Cell]:
        """The cells, with ``single`` (the conversions with at most one touch: the same under every
        model) added in."""
        cents = dict(single.cents)
        for key, value in self.cents.items():
            cents[key] = cents.get(key, 0) + value
        cells = {}
        for key, value in cents.items():
            by_den = dict(self.shares.get(key, {}))
            wholes = single.wholes.get(key, 0) + self.wholes.get(key, 0)
            if wholes:
                by_den[1] = by_den.get(1, 0) + wholes
            cells[key] = Cell(value=(Decimal(value) / 100).quantize(CENT), by_denominator=by_den)
        return cells


def share(by_denominator: dict[int, int], bits: int = 128) -> float:
    """A cell's share of conversions, ``sum(n / d)``, as a float rounded to 6 places — exactly
    ``round(float(cell.conversions), 6)`` without the exact sum, whose common denominator grows with every
    distinct time-decay total (tens of seconds at 100k conversions). Each ``n / d`` is floored to
    ``bits`` binary places, so the sum lies in ``[low, low + terms)`` units; when both ends round alike
    that is the answer (rounding is monotone), else (a sum at a rounding boundary) the exact sum is."""
    low = sum((n << bits) // d for d, n in by_denominator.items())
    unit = 1 << bits
    answer = round(float(Fraction(low, unit)), 6)
    if answer == round(float(Fraction(low + len(by_denominator), unit)), 6):
        return answer
    return round(float(sum((Fraction(n, d) for d, n in by_denominator.items()), Fraction(0))), 6)


def _contact(rows: list[Any], column: int) -> tuple[list[datetime], list[str]]:
    """A contact's touches, ordered and deduplicated: their times and their keys for the dimension."""
    rows.sort(key=lambda r: (r[1], r[6]))
    times: list[datetime] = []
    keys: list[str] = []
    before: Any = None
    for row in rows:
        if before is not None and row[1:6] == before[1:6]:
            continue
        before = row
        times.append(row[1])
        keys.append(row[column] or NONE)
    return times, keys


def attribute_rows(
    conversions: Iterable[tuple[str, datetime, int]],
    touches: Iterable[Sequence[Any]],
    *,
    models: Sequence[Model] = MODELS,
    by: Dimension = "source",
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> Result:
    """Every model's credits by ``by``. ``conversions``: (contact_id, at, value in cents); ``touches``:
    (contact_id, at, source, medium, campaign, journey, ord); both in the same contact order (the merge
    compares contact ids for equality only), each touch of a contact with a conversion."""
    column = _COLUMN[by]
    totals = {model: _Totals() for model in models}
    single = _Totals()
    first, last = totals.get("first_touch"), totals.get("last_touch")
    linear, position = totals.get("linear"), totals.get("position_based")
    decay = totals.get("time_decay")
    count = value_cents = 0
    touch_iter = iter(touches)
    head = next(touch_iter, None)
    contact: str | None = None
    times: list[datetime] = []
    keys: list[str] = []
    for contact_id, at, cents in conversions:
        if contact_id != contact:
            contact, rows = contact_id, []
            while head is not None and head[0] == contact_id:
                rows.append(head)
                head = next(touch_iter, None)
            times, keys = _contact(rows, column) if rows else ([], [])
        count += 1
        value_cents += cents
        lo, hi = bisect_left(times, at - lookback), bisect_right(times, at)
        n = hi - lo
        if n <= 1:
            single.whole(keys[lo] if n else DIRECT, cents)
            continue
        if first is not None:
            first.whole(keys[lo], cents)
        if last is not None:
            last.whole(keys[hi - 1], cents)
        if linear is not None or (position is not None and n == 2):
            whole, left = divmod(abs(cents), n)
            sign = -1 if cents < 0 else 1
            for i in range(n):
                cut = sign * (whole + 1 if i < left else whole)
                if linear is not None:
                    linear.add(keys[lo + i], cut, 1, n)
                if position is not None and n == 2:
                    position.add(keys[lo + i], cut, 1, n)
        if position is not None and n > 2:
            middle = n - 2
            parts = [2 * middle, *([1] * middle), 2 * middle]
            for i, cut in enumerate(split(cents, parts)):
                position.add(keys[lo + i], cut, parts[i], 5 * middle)
        if decay is not None:
            parts = _decay(at, times[lo:hi])
            total = sum(parts)
            for i, cut in enumerate(split(cents, parts)):
                if parts[i]:
                    decay.add(keys[lo + i], cut, parts[i], total)
    result = Result(conversions=count, value=(Decimal(value_cents) / 100).quantize(CENT))
    result.cells = {model: totals[model].cells(single) for model in models}
    return result
