"""Case folding for comparisons that must mean the same in SQL and in Python (segment rules, tags).

Only ASCII letters are folded: SQLite's ``lower`` folds exactly those, and on PostgreSQL ``lower`` runs
under the ``C`` collation, which folds the same ones (``leadflow.segments.values.fold_sql``), so a rule
means the same thing on both databases.

Emails are another matter: they are stored lower-cased by Python's ``str.lower`` (every letter, see
``contacts.normalize.email``) and compared as stored, so they match alike on both databases too.
Two look-ups use the database's plain ``lower`` instead, against a Python-lowered value: the contact and
company search (``q``) and the CSV import's company names. They ignore the case of every letter on
PostgreSQL (the server's locale) but of ASCII letters only on SQLite.
"""

from __future__ import annotations

UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = "abcdefghijklmnopqrstuvwxyz"
_FOLD = str.maketrans(UPPER, LOWER)


def fold(text: str) -> str:
    return text.translate(_FOLD)
