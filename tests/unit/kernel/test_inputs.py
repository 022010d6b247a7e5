"""The strict JSON parser and the text/number/nesting rules of :mod:`leadflow.kernel.inputs`."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow.kernel import inputs
from leadflow.kernel.errors import BadRequest, LeadflowError


def refused(body: bytes | str) -> LeadflowError:
    with pytest.raises(LeadflowError) as caught:
        inputs.loads(body)
    return caught.value


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    return b'{"a":' * depth + leaf + b"}" * depth


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"a": "x\\u0000y"}', "invalid_text"),
        (b'{"x\\u0000": 1}', "invalid_text"),
        (b'["\\ud800"]', "invalid_text"),
        (b'["\\udc00"]', "invalid_text"),
        (b'"\xed\xa0\x80"', "invalid_json"),
        (b'"\xff"', "invalid_json"),
        (b"[9223372036854775808]", "number_out_of_range"),
        (b"[-9223372036854775809]", "number_out_of_range"),
        (b"[18446744073709551616]", "number_out_of_range"),
        (b'{"v": 123456789012345678901234567890}', "number_out_of_range"),
        (b"[1e400]", "number_out_of_range"),
        (b"[NaN]", "invalid_json"),
        (b"[Infinity]", "invalid_json"),
        (b"[-Infinity]", "invalid_json"),
        (b"{", "invalid_json"),
        (b"", "invalid_json"),
        (b"[" * 65 + b"]" * 65, "nesting_too_deep"),
        (b"[" * 300 + b"]" * 300, "nesting_too_deep"),
        (b"[" * 2000 + b"]" * 2000, "nesting_too_deep"),
        (nested(65), "nesting_too_deep"),
    ],
)
def test_refused_with_a_code(body: bytes, code: str) -> None:
    assert refused(body).code == code


def test_what_is_not_json_is_a_bad_request_and_the_rest_invalid() -> None:
    assert isinstance(refused(b"[NaN]"), BadRequest)
    error = refused(b'["\\u0000"]')
    assert isinstance(error, inputs.InputError)
    assert not isinstance(error, BadRequest)


@pytest.mark.parametrize(
    "body",
    [
        b"[9223372036854775807, -9223372036854775808]",
        b'{"id": "123456789012345678901234567890"}',
        b'{"text": "\\\\u0000 is how JSON writes NUL"}',
        b"[1.2345678901234567890123, 1e308, -0.0]",
        b'["\\ud83d\\ude00", "caf\xc3\xa9"]',
        b'{"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}',
        b'{"s": "\\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\\"}',
        b"[" * 64 + b"]" * 64,
    ],
)
def test_accepted(body: bytes) -> None:
    assert inputs.loads(body) == json.loads(body)


def test_depth_is_counted_in_containers() -> None:
    assert inputs.loads(nested(64)) is not None
    assert not inputs.depth_exceeds(b"1", 0)
    assert inputs.depth_exceeds(b"[]", 0)
    assert not inputs.depth_exceeds(b'[{"a":"]]]]"},[[]]]', 3)
    assert inputs.depth_exceeds(b'[{"a":"]]]]"},[[[]]]]', 3)


def test_a_str_body_with_a_lone_surrogate_is_refused() -> None:
    assert refused('["\ud800"]').code == "invalid_text"


def test_check_walks_python_values() -> None:
    inputs.check({"a": [1, 2.5, None, True, "x"]})
    for bad, code in (
        ({"a\x00": 1}, "invalid_text"),
        (["\udfff"], "invalid_text"),
        ([2**63], "number_out_of_range"),
        ([float("nan")], "number_out_of_range"),
        ([[[1]]], "nesting_too_deep"),
    ):
        with pytest.raises(inputs.InputError) as caught:
            inputs.check(bad, limit=2)
        assert caught.value.code == code


def test_text_problem_names_the_character() -> None:
    assert inputs.text_problem("fine") is None
    assert inputs.text_problem("a\x00") == "contains a NUL character"
    assert inputs.text_problem("\ud800") == "contains a lone UTF-16 surrogate"


good_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=inputs.INT_MIN, max_value=inputs.INT_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | good_text,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(good_text.filter(lambda key: len(key) < 6), children, max_size=3)
    ),
    max_leaves=20,
)


@given(json_values)
def test_every_accepted_value_round_trips(value: Any) -> None:
    body = orjson.dumps(value)
    assert inputs.loads(body) == value
    assert inputs.loads(json.dumps(value)) == value


@given(st.integers(min_value=1, max_value=200), st.sampled_from([b"[", b'{"k":']))
def test_depth_from_text_matches_the_structure(depth: int, opener: bytes) -> None:
    closer = b"]" if opener == b"[" else b"}"
    body = opener * depth + b'"]}["' + closer * depth
    assert inputs.depth_exceeds(body) == (depth > inputs.MAX_DEPTH)
