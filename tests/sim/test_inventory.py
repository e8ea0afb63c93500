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


def test_bulk_posting_cuts_erp_calls_by_the_batch_factor_and_meets_the_sync_slo() -> None:
    from pathlib import Path

    from sim.metrics import summary
    from sim.scenario import load
    from sim.twin import run

    root = Path(__file__).resolve().parents[2] / "scenarios"
    single = summary(run(load(root / "cloud_erp_rate_limited.toml", duration_h=2)))
    bulk = summary(run(load(root / "cloud_erp_rate_limited_bulk.toml", duration_h=2)))
    assert single["extras"]["offered"] == bulk["extras"]["offered"]  # the same traffic
    moved = bulk["counts"]["movements_applied_in_erp"]
    assert moved == bulk["counts"]["movements_generated"]
    # One movement a call is over the limit: refusals, and a backlog.
    assert single["counts"]["erp_rate_limited"] > 1000 and bulk["counts"]["erp_rate_limited"] == 0
    assert bulk["api_calls"]["erp"] * 3 < single["api_calls"]["erp"]
    assert bulk["api_calls"]["erp"] * 2 < moved  # several movements per call
    assert bulk["api_cost"] * 3 < single["api_cost"]
    slo = {x["name"]: x for x in single["slos"]}["inventory_sync p95 <= 300 s"]
    assert not slo["met"]
    assert {x["name"]: x for x in bulk["slos"]}["inventory_sync p95 <= 300 s"]["met"]


def test_a_batch_size_needs_a_bulk_endpoint() -> None:
    import pytest
    from pydantic import ValidationError

    from sim.scenario import Scenario

    with pytest.raises(ValidationError, match=r"erp\.api\.bulk_max_items is None"):
        Scenario.model_validate({"name": "t", "bus": {"erp_batch_size": 10}})
