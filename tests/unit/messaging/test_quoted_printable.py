"""Quoted-printable bodies are byte for byte what ``binascii.b2a_qp`` (with CRLF and ``From `` escaped)
gives, although built differently (whole-text escaping, Python line breaking, a cache of long lines)."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.messaging.build.mime import _escape_from, _quoted_printable


def reference(text: str) -> bytes:
    """The straightforward encoding: normalise line ends to CRLF, b2a_qp, escape ``From `` lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    data = text.replace("\n", "\r\n").encode("utf-8")
    encoded = binascii.b2a_qp(data, istext=True)
    if b"\r\n" not in data:
        encoded = encoded.replace(b"\n", b"\r\n")
    return b"\r\n".join(_escape_from(line) for line in encoded.split(b"\r\n"))


PIECES = ["a", "b", " ", "\t", "=", ".", "é", "€", "\n", "\r\n", "\r", "From ", "x" * 70, "=" * 30, "y" * 74]
PIECES += ["\x01", "\x7f", " \n", "\t\n", '<a href="https://x.example/t/c/abc">go</a>']


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30).map("".join))
def test_same_bytes_as_b2a_qp(text: str) -> None:
    assert _quoted_printable(text) == reference(text)
    assert _quoted_printable(text) == reference(text)  # again, from the cache of long lines


@settings(max_examples=100, deadline=None)
@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=300))
def test_same_bytes_as_b2a_qp_for_any_text(text: str) -> None:
    assert _quoted_printable(text) == reference(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "a\n.\nb",
        "trailing \nspace",
        "ends with a blank ",
        "ends with a tab\t",
        "x" * 75,
        "x" * 76,
        "x" * 76 + "\n",
        "x" * 73 + "=" + "y" * 10,
        "x" * 74 + "=" + "y" * 10,
        "x" * 75 + "From the start of a soft line",
        "From me\n" + "é" * 100,
    ],
)
def test_edge_cases(text: str) -> None:
    assert _quoted_printable(text) == reference(text)
