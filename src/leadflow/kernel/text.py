"""Case folding shared by every comparison leadflow makes in SQL and in Python.

Only ASCII letters are folded: SQLite's ``lower`` folds exactly those, and PostgreSQL is made to fold
the same ones (``translate``), so a rule means the same thing on both databases.
"""

from __future__ import annotations

UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = "abcdefghijklmnopqrstuvwxyz"
_FOLD = str.maketrans(UPPER, LOWER)


def fold(text: str) -> str:
    return text.translate(_FOLD)
