"""Imports every domain's tables so that ``metadata`` describes the whole schema (Alembic, tests)."""

from __future__ import annotations

import importlib

from leadflow.kernel.db import metadata

MODEL_MODULES = (
    "leadflow.kernel.models",
    "leadflow.auth.models",
    "leadflow.audit.models",
    "leadflow.contacts.models",
    "leadflow.events.models",
    "leadflow.segments.models",
    "leadflow.scoring.models",
    "leadflow.journeys.models",
    "leadflow.messaging.models",
    "leadflow.webhooks.models",
    "leadflow.crm.models",
    "leadflow.capture.models",
    "leadflow.scheduling.models",
    "leadflow.connectors.models",
    "leadflow.analytics.models",
    "leadflow.web.models",
)


def load_models() -> None:
    for module in MODEL_MODULES:
        importlib.import_module(module)


load_models()

__all__ = ["metadata"]
