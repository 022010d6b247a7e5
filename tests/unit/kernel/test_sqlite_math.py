"""The stand-ins for SQLite's math functions (a build without them) answer as the built-in ones do."""

from __future__ import annotations

import sqlite3

import pytest

from leadflow.kernel import db


@pytest.mark.parametrize("value", [0.0, -1.0, 1e-9, 0.5, 1.0, 2.0, 86_400.0, 1e12, None])
def test_ln_and_floor_stand_ins_equal_sqlites_own(value: float | None) -> None:
    builtin = sqlite3.connect(":memory:")
    try:
        own = builtin.execute("SELECT ln(?), floor(?)", (value, value)).fetchone()
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no math functions to compare with")
    assert (db._ln(value), db._floor(value)) == pytest.approx(own)
