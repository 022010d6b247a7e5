"""The collector settings of long-running processes, checked in a fresh interpreter (they are global)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import gc, json
from leadflow.runtime import collector
before = gc.get_threshold()
collector.tune()
cycle = []
cycle.append(cycle)
del cycle
gc.collect()
print(json.dumps({"before": before, "after": gc.get_threshold(), "frozen": gc.get_freeze_count()}))
"""


def test_tune_freezes_the_start_up_heap_and_collects_young_objects_less_often() -> None:
    found = json.loads(subprocess.run([sys.executable, "-c", PROBE], check=True, capture_output=True).stdout)
    assert found["before"][0] == 700
    assert found["after"] == [10_000, found["before"][1], found["before"][2]]
    assert found["frozen"] > 1_000
