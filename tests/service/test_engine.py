"""The engine's hot-path shortcuts give exactly what the validated path gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration_core.envelope import Envelope, wrap
from integration_core.models import Movement
from integration_core.service import Engine
from tests.service.helpers import make_settings, movement


@pytest.mark.parametrize("extra", [{}, {"unit": "CS", "quantity": 2},
                                   {"kind": "adjustment", "quantity": -3}])
def test_movement_envelope_is_what_wrap_builds(tmp_path: Path, extra: dict[str, object]
                                               ) -> None:
    engine = Engine(make_settings(tmp_path / "t.db"))
    try:
        m = engine.catalog.parse(Movement, {**movement("m1"), **extra})
        fast = engine.movement_envelope(m, "wms")
        assert fast == wrap(m, source="wms", occurred_at=m.occurred_at)
        # and it survives a round trip through validation unchanged
        assert Envelope.model_validate(fast.model_dump(mode="json")) == fast
    finally:
        engine.close()
