"""``html_to_text`` on a corpus of HTML, compared byte for byte with the text it gave when recorded.

A regression net: each ``golden/htmltext/<case>.html`` has its expected ``<case>.txt`` next to it. A
change in the conversion fails here; when it is meant, regenerate the expected files and read the diff:

    LEADFLOW_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/messaging/test_htmltext_golden.py

The same corpus checks the derivation: HTML without holes derives to exactly the same text.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leadflow.messaging.build.htmltext import derive, html_to_text

GOLDEN = Path(__file__).parent / "golden" / "htmltext"
UPDATE = os.environ.get("LEADFLOW_UPDATE_GOLDEN") == "1"
CASES = sorted(path.stem for path in GOLDEN.glob("*.html"))


def _html(case: str) -> str:
    return (GOLDEN / f"{case}.html").read_bytes().decode("utf-8")


def test_the_corpus_is_there() -> None:
    assert len(CASES) >= 20
    orphans = sorted(path.name for path in GOLDEN.glob("*.txt") if path.stem not in CASES)
    assert not orphans, f"expected text without its HTML: {orphans}"


@pytest.mark.parametrize("case", CASES)
def test_html_to_text_matches_the_recorded_text(case: str) -> None:
    text = html_to_text(_html(case)).encode("utf-8")
    expected = GOLDEN / f"{case}.txt"
    if UPDATE:
        expected.write_bytes(text)
    assert expected.exists(), f"no {expected.name}: run with LEADFLOW_UPDATE_GOLDEN=1 to record it"
    assert text == expected.read_bytes()


@pytest.mark.parametrize("case", CASES)
def test_derived_text_of_html_without_holes_is_the_same(case: str) -> None:
    html = _html(case)
    shape = derive([html])
    if shape is not None:  # None: the derivation steps aside (then the HTML is converted)
        assert shape.text([]) == html_to_text(html)
