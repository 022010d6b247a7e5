"""Lifecycle stages: visitor → lead → MQL → SQL → customer → advocate.

Automatic changes only move a contact forward; a person with a known email address is at least a
lead. A manual change (API, CLI) may move a contact anywhere and is audited.
"""

from __future__ import annotations

from leadflow.kernel.errors import Invalid

STAGES = ("visitor", "lead", "mql", "sql", "customer", "advocate")
_RANK = {stage: rank for rank, stage in enumerate(STAGES)}


def rank(stage: str) -> int:
    return _RANK[stage]


def validate(stage: str) -> str:
    if stage not in _RANK:
        raise Invalid(
            f"unknown lifecycle stage {stage!r}; use one of {', '.join(STAGES)}", code="invalid_stage"
        )
    return stage


def forward(current: str, proposed: str) -> str:
    """The later of two stages: automatic changes never move backwards."""
    return proposed if _RANK[proposed] > _RANK[current] else current


def floor_for(current: str, *, has_email: bool) -> str:
    """A contact we can email is at least a lead."""
    return forward(current, "lead") if has_email else current
