"""The collector's settings, applied in a fresh interpreter (they are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys

from integration_core.service.collector import YOUNG

_PROBE = (
    "import gc, json\n"
    "from integration_core.service.collector import tune_collector\n"
    "before = gc.get_threshold()\n"
    "tune_collector()\n"
    "print(json.dumps({'before': before, 'after': gc.get_threshold(),\n"
    "                  'frozen': gc.get_freeze_count()}))\n"
)


def test_start_up_objects_are_frozen_and_young_collections_are_rarer() -> None:
    out = json.loads(subprocess.run([sys.executable, "-c", _PROBE], capture_output=True,
                                    text=True, check=True).stdout)
    assert out["before"][0] < YOUNG
    assert out["after"][0] == YOUNG
    assert out["frozen"] > 1000  # the imported modules' objects, at least
