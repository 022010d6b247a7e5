"""The deliverer records a pass's outcomes in one statement on PostgreSQL (``RECORD_JSON``) and with
``RECORD`` elsewhere: both set the same columns, under the same guard."""

from __future__ import annotations

import re

from leadflow.webhooks import queries


def test_the_json_record_sets_every_recorded_column_from_its_row() -> None:
    text = queries.RECORD_JSON.text
    assigned = re.findall(r"(\w+) = r\.(\w+)", text.split(" FROM ", 1)[0])
    assert [name for name, _ in assigned] == list(queries.RECORDED)
    assert all(name == source for name, source in assigned)
    declared = re.search(r"AS r\((.*?)\) WHERE", text)
    assert declared is not None
    names = [part.split()[0] for part in declared.group(1).split(", ")]
    assert names == ["id", "attempts", *queries.RECORDED]
    assert "d.attempts = r.attempts AND d.status = 'queued'" in text  # the claim's guard, as RECORD's
