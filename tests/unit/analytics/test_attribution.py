"""Attribution models against hand-computed cases, and the property that every model's credits for a
conversion sum to its value exactly (to the cent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.analytics import attribution as a
from leadflow.analytics import credits
from leadflow.analytics.attribution import MODELS, Conversion, Touch

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)
D = Decimal


def _touches(*days_before: float, sources: str = "abcdefghij") -> list[Touch]:
    return [Touch(AT - timedelta(days=d), source=sources[i], order=i) for i, d in enumerate(days_before)]


def _credits(touches: list[Touch], value: str, model: a.Model, lookback_days: int = 90) -> dict[str, Decimal]:
    result = a.Result()
    conversion = Conversion("c1", AT, D(value))
    a.attribute_one(
        result, conversion, touches, models=[model], by="source", lookback=timedelta(days=lookback_days)
    )
    return {key: cell.value for key, cell in result.cells[model].items()}


def test_one_touch_gets_everything_under_every_model() -> None:
    for model in MODELS:
        assert _credits(_touches(3), "10.00", model) == {"a": D("10.00")}


def test_two_touches() -> None:
    touches = _touches(14, 0)  # a is two half-lives old
    assert _credits(touches, "10", "first_touch") == {"a": D("10.00")}
    assert _credits(touches, "10", "last_touch") == {"b": D("10.00")}
    assert _credits(touches, "10", "linear") == {"a": D("5.00"), "b": D("5.00")}
    assert _credits(touches, "10", "position_based") == {"a": D("5.00"), "b": D("5.00")}
    # weights 1/4 and 1 → 1/5 and 4/5
    assert _credits(touches, "10", "time_decay") == {"a": D("2.00"), "b": D("8.00")}


def test_three_touches_and_100_over_three_sums_exactly() -> None:
    touches = _touches(10, 5, 1)
    linear = _credits(touches, "100.00", "linear")
    # 33.333… each: the one cent left goes to the first (largest remainders tie → earliest)
    assert linear == {"a": D("33.34"), "b": D("33.33"), "c": D("33.33")}
    assert sum(linear.values()) == D("100.00")
    assert _credits(touches, "100.00", "position_based") == {
        "a": D("40.00"),
        "b": D("20.00"),
        "c": D("40.00"),
    }
    decay = _credits(touches, "100.00", "time_decay")
    w = [2 ** (-10 / 7), 2 ** (-5 / 7), 2 ** (-1 / 7)]
    expected = [100 * x / sum(w) for x in w]
    assert [float(decay[k]) for k in "abc"] == pytest.approx(expected, abs=0.01)
    assert sum(decay.values()) == D("100.00")


def test_five_touches_position_based_and_linear() -> None:
    touches = _touches(40, 30, 20, 10, 0)
    assert _credits(touches, "50", "position_based") == {
        "a": D("20.00"),
        "b": D("3.34"),  # 10 / 3 = 3.333…: one cent left over, to the earliest middle touch
        "c": D("3.33"),
        "d": D("3.33"),
        "e": D("20.00"),
    }
    assert _credits(touches, "50", "linear") == {k: D("10.00") for k in "abcde"}
    assert _credits(touches, "50", "first_touch") == {"a": D("50.00")}
    assert _credits(touches, "50", "last_touch") == {"e": D("50.00")}


def test_equal_timestamps_keep_their_order_and_share_time_decay_equally() -> None:
    same = [Touch(AT - timedelta(days=2), source=s, order=i) for i, s in enumerate("xyz")]
    assert _credits(list(reversed(same)), "3", "first_touch") == {"x": D("3.00")}
    assert _credits(same, "3", "last_touch") == {"z": D("3.00")}
    assert _credits(same, "3", "time_decay") == {k: D("1.00") for k in "xyz"}


def test_one_moment_recorded_twice_is_one_touch() -> None:
    # a form post: a page view and form.submitted, same time and campaign
    at = AT - timedelta(days=1)
    twice = [Touch(at, source="ads", campaign="c", order=1), Touch(at, source="ads", campaign="c", order=2)]
    other = Touch(at, source="mail", order=3)
    assert _credits([*twice, other], "10", "linear") == {"ads": D("5.00"), "mail": D("5.00")}


def test_outside_the_lookback_and_after_the_conversion_do_not_count() -> None:
    touches = [
        Touch(AT - timedelta(days=91), source="old", order=0),
        Touch(AT - timedelta(days=30), source="inside", order=1),
        Touch(AT + timedelta(seconds=1), source="later", order=2),
    ]
    assert _credits(touches, "7", "first_touch") == {"inside": D("7.00")}
    assert _credits(touches, "7", "first_touch", lookback_days=7) == {a.DIRECT: D("7.00")}


def test_no_touchpoints_is_direct_and_value_zero_credits_zero() -> None:
    for model in MODELS:
        assert _credits([], "12.5", model) == {a.DIRECT: D("12.50")}
        zero = _credits(_touches(3, 2, 1), "0", model)
        assert set(zero.values()) == {D("0.00")}


def test_missing_dimension_is_none_and_values_are_taken_to_the_cent() -> None:
    result = a.attribute(
        [Conversion("c1", AT, D("1")), Conversion("c2", AT, D("2"))],
        [("c1", Touch(AT, source="s", order=1)), ("c2", Touch(AT, source="t", order=2))],
        models=["linear"],
        by="campaign",
    )
    assert {k: c.value for k, c in result.cells["linear"].items()} == {a.NONE: D("3.00")}
    assert a.to_cents("19.999") == D("20.00")
    assert a.to_cents("abc") == D("0.00")
    assert a.to_cents(None) == D("0.00")


def test_streams_are_merged_per_contact() -> None:
    conversions = [Conversion("c1", AT, D("10")), Conversion("c1", AT, D("5")), Conversion("c3", AT, D("1"))]
    touches = [("c1", Touch(AT, source="x", order=1)), ("c3", Touch(AT, source="y", order=2))]
    groups = list(a.by_contact(conversions, touches))
    assert [(g[0].contact_id, len(g), [t.source for t in ts]) for g, ts in groups] == [
        ("c1", 2, ["x"]),
        ("c3", 1, ["y"]),
    ]


@settings(max_examples=150, deadline=None)
@given(
    value=st.decimals(min_value=-100000, max_value=1000000, places=2, allow_nan=False, allow_infinity=False),
    ages=st.lists(st.floats(min_value=0, max_value=89, allow_nan=False), min_size=0, max_size=12),
)
def test_credits_sum_to_the_value_exactly_for_every_model(value: Decimal, ages: list[float]) -> None:
    touches = [Touch(AT - timedelta(days=d), source=f"s{i % 4}", order=i) for i, d in enumerate(ages)]
    result = a.Result()
    a.attribute_one(
        result, Conversion("c", AT, value), touches, models=MODELS, by="source", lookback=a.DEFAULT_LOOKBACK
    )
    for model in MODELS:
        credits = [cell.value for cell in result.cells[model].values()]
        assert sum(credits, D(0)) == value
        assert all(c == c.quantize(a.CENT) for c in credits)
        shares = sum((cell.conversions for cell in result.cells[model].values()), start=Fraction(0))
        assert shares == 1


# ---- the fast path (analytics.credits) equals the reference ---------------------------------------------

_NAMES = st.sampled_from([None, "", "a", "b", "c"])
_TOUCH = st.tuples(
    st.integers(min_value=0, max_value=130 * 24),  # hours before AT (some outside a 90-day lookback)
    _NAMES,
    _NAMES,
    _NAMES,
    _NAMES,
    st.booleans(),  # recorded twice at one moment
)
_CONVERSION = st.tuples(
    st.integers(min_value=-5 * 24, max_value=20 * 24),  # hours before AT (negative: after)
    st.decimals(min_value=-1000, max_value=100000, places=3, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None)
@given(
    contacts=st.lists(
        st.tuples(st.lists(_TOUCH, max_size=9), st.lists(_CONVERSION, min_size=1, max_size=3)),
        min_size=1,
        max_size=4,
    ),
    lookback_days=st.integers(min_value=1, max_value=120),
    shuffle=st.randoms(use_true_random=False),
)
def test_the_fast_path_equals_the_reference_exactly(
    contacts: list[
        tuple[
            list[tuple[int, str | None, str | None, str | None, str | None, bool]], list[tuple[int, Decimal]]
        ]
    ],
    lookback_days: int,
    shuffle: Any,
) -> None:
    conversions: list[Conversion] = []
    touch_rows: list[tuple[Any, ...]] = []
    order = 0
    for index, (touches, orders) in enumerate(contacts):
        contact = f"c{index}"
        rows = []
        for hours, source, medium, campaign, journey, twice in touches:
            for _ in range(2 if twice else 1):
                order += 1
                rows.append((contact, AT - timedelta(hours=hours), source, medium, campaign, journey, order))
        shuffle.shuffle(rows)  # any order within a contact: both sort by (time, id)
        touch_rows += rows
        conversions += [Conversion(contact, AT - timedelta(hours=h), value) for h, value in sorted(orders)]
    lookback = timedelta(days=lookback_days)
    for by in a.DIMENSIONS:
        expected = a.attribute(
            conversions,
            [(r[0], Touch(r[1], r[2], r[3], r[4], r[5], r[6])) for r in touch_rows],
            by=by,
            lookback=lookback,
        )
        fast = credits.attribute_rows(
            [(c.contact_id, c.at, int(a.to_cents(c.value) * 100)) for c in conversions],
            touch_rows,
            by=by,
            lookback=lookback,
        )
        assert (fast.conversions, fast.value) == (expected.conversions, expected.value)
        for model in MODELS:
            assert {k: (c.value, c.conversions) for k, c in fast.cells[model].items()} == {
                k: (c.value, c.conversions) for k, c in expected.cells[model].items()
            }, (by, model)
    one = credits.attribute_rows(
        [(c.contact_id, c.at, 100) for c in conversions], touch_rows, models=["linear"]
    )
    assert list(one.cells) == ["linear"]


@settings(max_examples=200, deadline=None)
@given(
    shares=st.dictionaries(
        st.integers(min_value=1, max_value=2**60), st.integers(min_value=0, max_value=2**62), max_size=30
    ),
    bits=st.sampled_from([2, 8, 128]),  # few bits: the bounds often straddle a rounding point (exact sum)
)
def test_a_cells_share_is_its_exact_sum_rounded(shares: dict[int, int], bits: int) -> None:
    exact = sum((Fraction(n, d) for d, n in shares.items()), Fraction(0))
    assert credits.share(shares, bits) == round(float(exact), 6)
