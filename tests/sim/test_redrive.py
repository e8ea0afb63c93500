"""The operations policy in the twin: dead letters under `orchestrated` stay unless the scenario
says someone redrives them (`operations.redrive`)."""

from __future__ import annotations

from typing import Any

import pytest

from integration_core.engine.redrive import When
from sim.metrics import summary
from sim.scenario import Scenario
from sim.twin import run


def scenario(pattern: str, redrive: str, **ops: Any) -> Scenario:
    return Scenario.model_validate({
        "name": f"redrive-{redrive}", "seed": 3, "duration_h": 4, "drain_h": 4,
        "catalog": {"skus": 100}, "shop": {"orders_per_hour": 0},
        "warehouses": [{"id": "WH1", "movements_per_hour": 600}],
        "patterns": {d: pattern for d in ("order_release", "inventory",
                                          "shipment_confirmation", "master_data")},
        # Short retries: an hour's outage outlasts them, so movements dead-letter.
        "bus": {"max_attempts": 3, "initial_delay_s": 1, "max_delay_s": 5},
        "faults": {"outages": [{"system": "erp", "start_h": 1, "duration_h": 1}]},
        "operations": {"redrive": redrive, **ops},
    })


def test_by_pattern_resolves_to_the_old_behaviour() -> None:
    assert scenario("orchestrated", "by_pattern").redrive().when is When.NEVER
    ev = scenario("event_driven", "by_pattern").redrive()
    assert ev.when is When.EVERY and ev.every_s == 15 * 60  # the reconciler's interval


@pytest.mark.parametrize("policy", ["every", "after_recovery"])
def test_redrive_books_what_nobody_redriving_leaves_dead(policy: str) -> None:
    never = summary(run(scenario("orchestrated", "never")))
    done = summary(run(scenario("orchestrated", policy, redrive_every_min=20,
                                redrive_after_min=10)))
    assert never["counts"]["dead_letters_left"] > 0
    assert never["counts"]["dead_letters_redriven"] == 0
    assert never["divergence"]["unexplained_final_units"] > 0
    assert done["counts"]["dead_letters_redriven"] >= never["counts"]["dead_letters_left"]
    assert done["counts"]["dead_letters_left"] == 0
    assert done["divergence"]["unexplained_final_units"] == 0
    assert done["duplicated"] == 0
