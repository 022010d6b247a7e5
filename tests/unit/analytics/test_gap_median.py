"""The funnel's approximate median from a gap histogram (log-spaced buckets 0.5 % wide) stays within
0.5 % of the exact median, whatever the gaps (the rollups' bucket rule applied in Python here)."""

from __future__ import annotations

import math
import statistics
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from leadflow.analytics import queries
from leadflow.analytics.kpis import histogram_median


def _histogram(seconds: list[float]) -> Counter[int]:
    found: Counter[int] = Counter()
    for value in seconds:
        ms = value * 1000
        found[queries.GAP_ZERO if ms < 1 else math.floor(math.log(ms) / math.log(queries.GAP_BASE))] += 1
    return found


@given(st.lists(st.floats(0.001, 3e7, allow_nan=False), min_size=1, max_size=60))
def test_within_half_a_percent_of_the_exact_median(seconds: list[float]) -> None:
    exact = statistics.median(seconds)
    assert math.isclose(histogram_median(_histogram(seconds)), exact, rel_tol=0.005)


def test_edges() -> None:
    assert histogram_median({}) == 0.0
    assert histogram_median(_histogram([0.0, 0.0, 5.0])) == 0.0  # under a millisecond reads as 0
    one = histogram_median(_histogram([3600.0]))
    assert one != 3600.0
    assert math.isclose(one, 3600.0, rel_tol=0.005)
    # all the values at the bottom of one bucket: the estimate stays inside it
    low = queries.GAP_BASE**1000 / 1000
    assert math.isclose(histogram_median(_histogram([low] * 7)), low, rel_tol=0.005)
