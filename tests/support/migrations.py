"""A migration module loaded by its file name, for the tests that run its backfill SQL by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import leadflow


def load(filename: str) -> Any:
    """``src/leadflow/migrations/versions/<filename>`` as a module (its SQL constants, its functions)."""
    path = Path(leadflow.__file__).parent / "migrations" / "versions" / filename
    spec = importlib.util.spec_from_file_location(f"migration_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
