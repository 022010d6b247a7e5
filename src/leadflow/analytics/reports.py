"""CSV reports: every analytics answer flattened to one row per line (a figure's current, previous and
change in their own columns), so a spreadsheet reads it as it comes."""

from __future__ import annotations

import csv
import io
from typing import Any

from pydantic import BaseModel

from leadflow.analytics.schemas import EmailReport, Funnel, JourneyFunnel, Kpis, Sources


def _flat(prefix: str, value: Any, into: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flat(f"{prefix}{key}_", item, into)
    else:
        into[prefix.rstrip("_")] = value


def _row(model: BaseModel) -> dict[str, Any]:
    row: dict[str, Any] = {}
    _flat("", model.model_dump(mode="json"), row)
    return row


def row_of(item: dict[str, Any] | BaseModel) -> dict[str, Any]:
    """One CSV line of a mapping or a model, nested figures flattened into ``a_b`` columns."""
    if isinstance(item, BaseModel):
        return _row(item)
    row: dict[str, Any] = {}
    _flat("", item, row)
    return row


def _lines(report: BaseModel) -> list[dict[str, Any]]:
    if isinstance(report, Kpis):
        return [{"figure": name, **_row(figure)} for name, figure in report.figures.items()]
    if isinstance(report, Funnel):
        return [_row(step) for step in report.stages]
    if isinstance(report, Sources | EmailReport):
        return [_row(row) for row in report.rows]
    if isinstance(report, JourneyFunnel):
        steps = [{"step": "entered", "count": report.entered}]
        steps += [{"step": s.step_id, "count": s.reached} for s in report.steps]
        return [*steps, {"step": "converted", "count": report.converted}]
    raise TypeError(f"no CSV shape for {type(report).__name__}")


def to_csv(report: BaseModel) -> str:
    """The report as CSV text: a header line, then one line per figure, stage, source or key."""
    return write_csv(_lines(report))


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def safe_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run: text starting like a formula (``=``, ``+``, ``-``, ``@``, tab,
    carriage return) gets a leading ``'``; a number, and text that is only a number ("-0.5"), stay as
    they are. UTM values, journey names and link URLs come from outside, so every cell goes through it."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _number(value):
        return "'" + value
    return value


def write_csv(lines: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """CSV text of ``lines`` under ``columns`` (default: every key, in the order first met); every cell
    made safe for a spreadsheet (:func:`safe_cell`)."""
    if columns is None:
        columns = []
        for line in lines:
            columns += [name for name in line if name not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns or ["empty"], lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({key: safe_cell(value) for key, value in line.items()} for line in lines)
    return out.getvalue()
