from __future__ import annotations

import json
from pathlib import Path

from integration_core.schema import PUBLIC_MODELS, render

COMMITTED = Path(__file__).parents[1] / "docs" / "schema" / "canonical.json"


def test_committed_json_schema_is_current() -> None:
    assert COMMITTED.read_text() == render(), "stale schema: run `make schema` and commit it"


def test_schema_covers_every_public_model_with_descriptions() -> None:
    defs = json.loads(COMMITTED.read_text())["$defs"]
    assert {m.__name__ for m in PUBLIC_MODELS} <= set(defs)
    assert "description" in defs["Movement"]["properties"]["quantity"]
