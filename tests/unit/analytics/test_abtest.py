"""A/B statistics against hand-computed cases and a reference written here from textbook formulas:
the two-proportion z-test (normal tail by integrating the density) and P(B > A) for Beta posteriors
by numerical integration of ``f_B(x) F_A(x)``. (Cross-checked once against ``scipy.stats`` by hand;
scipy is not a dependency.)"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.analytics import abtest


def _normal_tail(z: float, steps: int = 20000) -> float:
    """P(|Z| > z) = 1 - 2 ∫_0^z φ(t) dt, Simpson's rule."""
    h = z / steps
    total = 0.0
    for i in range(steps + 1):
        t = i * h
        weight = 1 if i in (0, steps) else (4 if i % 2 else 2)
        total += weight * math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    return 1 - 2 * total * h / 3


def _beta_pdf(a: int, b: int, x: float) -> float:
    if x <= 0 or x >= 1:
        return 0.0
    log = (a - 1) * math.log(x) + (b - 1) * math.log(1 - x)
    return math.exp(log + math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b))


def _beats_reference(control: tuple[int, int], variant: tuple[int, int], steps: int = 20000) -> float:
    """P(B > A) = ∫ f_B(x) F_A(x) dx with A ~ Beta(1+c1, 1+n1-c1), B ~ Beta(1+c2, 1+n2-c2): the
    trapezoid rule on a grid, F_A accumulated on the same grid."""
    (c1, n1), (c2, n2) = control, variant
    a1, b1, a2, b2 = 1 + c1, 1 + n1 - c1, 1 + c2, 1 + n2 - c2
    h = 1 / steps
    cdf, total = 0.0, 0.0
    previous_a, previous = _beta_pdf(a1, b1, 0.0), 0.0
    for i in range(1, steps + 1):
        x = i * h
        fa = _beta_pdf(a1, b1, x)
        cdf += (previous_a + fa) * h / 2
        current = _beta_pdf(a2, b2, x) * cdf
        total += (previous + current) * h / 2
        previous_a, previous = fa, current
    return total


def test_lift_by_hand() -> None:
    # control 50 / 1000, variant 70 / 1000
    lift = abtest.lift((50, 1000), (70, 1000))
    assert lift.absolute == pytest.approx(0.02)
    assert lift.relative == pytest.approx(0.4)
    se = math.sqrt(0.05 * 0.95 / 1000 + 0.07 * 0.93 / 1000)  # unpooled: 0.010611…
    assert (lift.low, lift.high) == pytest.approx((0.02 - 1.959964 * se, 0.02 + 1.959964 * se))
    assert (lift.low, lift.high) == pytest.approx((-0.000798, 0.040798), abs=1e-6)
    pooled = math.sqrt(0.06 * 0.94 * (2 / 1000))  # 0.010621…
    assert lift.z == pytest.approx(0.02 / pooled)
    assert lift.z == pytest.approx(1.8831, abs=1e-4)
    assert lift.p_value == pytest.approx(0.05968, abs=1e-4)
    assert lift.p_value == pytest.approx(_normal_tail(0.02 / pooled), abs=1e-9)


def test_lift_without_variance_has_no_p_value() -> None:
    lift = abtest.lift((0, 60), (0, 60))
    assert (lift.absolute, lift.relative, lift.z, lift.p_value) == (0.0, None, None, None)
    with pytest.raises(ValueError):
        abtest.lift((0, 0), (1, 10))


@pytest.mark.parametrize(
    ("control", "variant"),
    [
        ((5, 50), (8, 50)),
        ((10, 100), (12, 90)),
        ((40, 1000), (60, 1000)),
        ((30, 60), (20, 70)),
        ((0, 0), (0, 0)),
    ],
)
def test_probability_to_beat_against_numerical_integration(
    control: tuple[int, int], variant: tuple[int, int]
) -> None:
    assert abtest.probability_to_beat(control, variant) == pytest.approx(
        _beats_reference(control, variant), abs=2e-4
    )


def test_probability_to_beat_by_hand_and_symmetry() -> None:
    # Beta(1,1) vs Beta(2,1): P(B > A) = ∫ 2x · x dx = 2/3
    assert abtest.probability_to_beat((0, 0), (1, 1)) == pytest.approx(2 / 3)
    assert abtest.probability_to_beat((5, 50), (5, 50)) == pytest.approx(0.5)


@settings(max_examples=60, deadline=None)
@given(
    n1=st.integers(1, 400),
    n2=st.integers(1, 400),
    f1=st.floats(0, 1),
    f2=st.floats(0, 1),
)
def test_probability_to_beat_is_complementary(n1: int, n2: int, f1: float, f2: float) -> None:
    c1, c2 = round(n1 * f1), round(n2 * f2)
    forward = abtest.probability_to_beat((c1, n1), (c2, n2))
    backward = abtest.probability_to_beat((c2, n2), (c1, n1))
    assert 0 <= forward <= 1
    assert forward + backward == pytest.approx(1, abs=1e-9)


def test_missing_counts_what_a_group_still_needs() -> None:
    assert abtest.missing(49, 5) == {"exposures": 1}
    assert abtest.missing(50, 4) == {"conversions": 1}
    assert abtest.missing(10, 0) == {"exposures": 40, "conversions": 5}
    assert abtest.missing(50, 5) == {}
