"""Incoming webhook senders, one module per signing scheme: :mod:`.stripe`, :mod:`.calendly`,
:mod:`.standard` (Standard Webhooks). :data:`KINDS` maps a source's ``kind`` to its :class:`~.common.Kind`."""

from __future__ import annotations

from leadflow.webhooks.sources import calendly, standard, stripe
from leadflow.webhooks.sources.common import Kind

KINDS: dict[str, Kind] = {kind.name: kind for kind in (stripe.KIND, calendly.KIND, standard.KIND)}
