from __future__ import annotations

from integration_core.envelope import open_payload
from integration_core.models import Movement
from sim.inventory import movement_id, movement_index
from sim.scenario import Scenario
from sim.twin import Twin


def test_the_twins_movement_messages_are_canonical() -> None:
    sc = Scenario.model_validate({
        "name": "x", "duration_h": 0.5, "catalog": {"skus": 50},
        "shop": {"orders_per_hour": 0},
        "patterns": {"inventory": "event_driven"},
    })
    twin = Twin(sc)
    twin.run()
    assert len(twin.land.truth) > 100
    for idx in range(0, len(twin.land.truth), 37):
        env = twin.core.engine.movement_envelope(twin.inventory._record(idx), "wms-WH1")
        m = open_payload(env)
        assert isinstance(m, Movement)
        assert m.delta == int(twin.land.truth.delta[idx])
        assert env.key == m.key and movement_index(env.message_id) == idx


def test_movement_ids_round_trip() -> None:
    assert movement_index(movement_id(123456)) == 123456
