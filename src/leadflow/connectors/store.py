"""The reads of conversions (GA4): the tracked events behind a batch of outbox rows, in one query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from leadflow.events.service import event_log
from leadflow.kernel.db import Sample

_e = event_log.c


def conversion_events(ids: Sequence[int]) -> sa.Select[Any]:
    """The events of these ids with what a GA4 hit needs (name, ids, context, properties, time)."""
    return sa.select(
        _e.id, _e.event, _e.anonymous_id, _e.user_id, _e.context, _e.properties, _e.timestamp
    ).where(_e.id.in_(list(ids)))


SAMPLES: list[Sample] = [lambda: conversion_events([1, 2])]
