"""A/B readouts (pure statistics; no SQL): lift against control with a 95 % interval and the
Bayesian probability to beat control.

Rules (issue 15, "A/B readouts"):

* **Lift** is the variant's conversion rate minus control's (``absolute``) and that difference over
  control's rate (``relative``). The 95 % interval on the difference uses the unpooled standard error
  ``sqrt(p1(1-p1)/n1 + p2(1-p2)/n2)``; the two-sided p-value of the two-proportion z-test uses the
  pooled one ``sqrt(p(1-p)(1/n1 + 1/n2))``.
* **Probability to beat control**: ``P(B > A)`` for posteriors ``Beta(1+c, 1+n-c)``, computed exactly
  with the closed-form sum for integer parameters (Evan Miller), summed over the smaller side.
* A readout is shown only once every variant (control included) has at least
  :data:`MIN_EXPOSURES` exposures and :data:`MIN_CONVERSIONS` conversions; before that its status
  is ``collecting`` with what each variant still needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_EXPOSURES = 50
MIN_CONVERSIONS = 5
Z_95 = 1.959963984540054  # the 97.5th percentile of the standard normal


@dataclass(frozen=True)
class Lift:
    absolute: float
    relative: float | None
    low: float  # 95 % interval on the absolute difference (unpooled SE)
    high: float
    z: float | None  # pooled z statistic
    p_value: float | None


def rate(conversions: int, exposures: int) -> float:
    return conversions / exposures if exposures else 0.0


def lift(control: tuple[int, int], variant: tuple[int, int]) -> Lift:
    """``(conversions, exposures)`` of control and variant → the lift of the variant."""
    (c1, n1), (c2, n2) = control, variant
    if n1 <= 0 or n2 <= 0:
        raise ValueError("both groups need exposures")
    p1, p2 = c1 / n1, c2 / n2
    diff = p2 - p1
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    pooled = (c1 + c2) / (n1 + n2)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se_pooled > 0:
        z: float | None = diff / se_pooled
        p_value: float | None = math.erfc(abs(diff / se_pooled) / math.sqrt(2))
    else:
        z, p_value = None, None
    return Lift(
        absolute=diff,
        relative=diff / p1 if p1 > 0 else None,
        low=diff - Z_95 * se,
        high=diff + Z_95 * se,
        z=z,
        p_value=p_value,
    )


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beats(a1: int, b1: int, a2: int, b2: int) -> float:
    """P(X2 > X1) for X1 ~ Beta(a1, b1), X2 ~ Beta(a2, b2), integer parameters, summing ``a2`` terms:
    ``sum_{i<a2} B(a1+i, b1+b2) / ((b2+i) B(1+i, b2) B(a1, b1))``."""
    total = 0.0
    base = _log_beta(a1, b1)
    for i in range(a2):
        total += math.exp(_log_beta(a1 + i, b1 + b2) - math.log(b2 + i) - _log_beta(1 + i, b2) - base)
    return total


def probability_to_beat(control: tuple[int, int], variant: tuple[int, int]) -> float:
    """P(variant's rate > control's) with uniform priors: posteriors Beta(1+c, 1+n-c)."""
    (c1, n1), (c2, n2) = control, variant
    a1, b1, a2, b2 = 1 + c1, 1 + n1 - c1, 1 + c2, 1 + n2 - c2
    if a2 <= a1:
        value = _beats(a1, b1, a2, b2)
    else:
        value = 1.0 - _beats(a2, b2, a1, b1)
    return min(1.0, max(0.0, value))


def missing(exposures: int, conversions: int) -> dict[str, int]:
    """What a group still needs before a readout is shown (empty when it has enough)."""
    needs = {
        "exposures": max(0, MIN_EXPOSURES - exposures),
        "conversions": max(0, MIN_CONVERSIONS - conversions),
    }
    return {k: v for k, v in needs.items() if v}
