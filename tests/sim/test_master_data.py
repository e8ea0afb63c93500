"""Master data: the ERP changes items, the WMS must follow, by pattern."""

from __future__ import annotations

from typing import Any

import pytest

from sim.metrics import summary
from sim.scenario import Scenario
from sim.twin import run


def scenario(pattern: str, **kw: Any) -> Scenario:
    base: dict[str, Any] = {
        "name": f"md-{pattern}", "seed": 5, "duration_h": 8, "drain_h": 4,
        "catalog": {"skus": 5000},  # few items change twice: no later version hides a loss
        "warehouses": [{"id": "WH1", "movements_per_hour": 200}],
        "shop": {"orders_per_hour": 0},
        # No event-driven domain beside an orchestrated one: that would switch on redrive.
        "patterns": {"order_release": "direct", "master_data": pattern,
                     "inventory": "orchestrated" if pattern == "orchestrated" else "event_driven",
                     "shipment_confirmation": "direct"},
        "master_data": {"changes_per_hour": 200, "full_sync_h": 2},
        # The WMS's item API is down for an hour: longer than direct's retries and the bus's.
        "faults": {"outages": [{"system": "wms", "start_h": 2, "duration_h": 1}]},
        "bus": {"max_attempts": 4},
    }
    base.update(kw)
    return Scenario.model_validate(base)


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, Any]]:
    return {p: summary(run(scenario(p)))
            for p in ("direct", "orchestrated", "event_driven", "hybrid")}


def test_every_pattern_syncs_changes_when_all_is_well(results: dict[str, Any]) -> None:
    for p, s in results.items():
        assert s["counts"]["item_changes"] > 1000, p
        assert s["latency"]["master_data_sync"]["p50"] < 5, p


def test_direct_gives_changes_up_and_the_wms_stays_stale(results: dict[str, Any]) -> None:
    s = results["direct"]["counts"]
    assert s["item_syncs_given_up"] > 0 and s["items_out_of_sync_final"] > 0


def test_orchestrated_dead_letters_what_outlasts_its_retries(results: dict[str, Any]) -> None:
    s = results["orchestrated"]
    assert s["bus"]["dead_lettered"] > 0 and s["counts"]["items_out_of_sync_final"] > 0


def test_event_driven_and_hybrid_end_in_sync(results: dict[str, Any]) -> None:
    for p in ("event_driven", "hybrid"):
        s = results[p]
        assert s["counts"]["items_out_of_sync_final"] == 0, p
        assert s["latency"]["master_data_sync"]["max"] > 1800, p  # waited out the outage


def own_master(master_data: str) -> Scenario:
    return Scenario.model_validate({
        "name": f"own-{master_data}", "seed": 4, "duration_h": 14, "drain_h": 12,
        "catalog": {"skus": 200}, "shop": {"orders_per_hour": 0},
        "patterns": {"master_data": master_data},
        "warehouses": [{"id": "DC", "movements_per_hour": 600},
                       {"id": "3PL", "movements_per_hour": 600, "item_master": "own",
                        "items_known_at_start": 0.9}],
    })


def test_a_3pls_own_item_master_holds_its_movements_until_the_items_arrive() -> None:
    s = summary(run(own_master("hybrid")))
    c = s["counts"]
    # The scheduled full sync (every 6 h) brings the items the 3PL lacked; the movements that
    # waited for them are replayed, each booked once.
    assert c["items_arrived_at_sites"] > 0 and c["movements_replayed_for_items"] > 0
    assert c["movements_applied_in_erp"] == c["movements_generated"]
    assert (s["lost"], s["duplicated"], c["dead_letters_left"]) == (0, 0, 0)
    assert c["items_out_of_sync_final"] == 0
    tpl, dc = (s["warehouses"][w]["latency"]["inventory_sync"] for w in ("3PL", "DC"))
    assert tpl["max"] > 3 * 3600 and dc["max"] < 3600  # only the 3PL waited for its items


def test_without_a_full_sync_the_3pls_unknown_items_stay_dead_letters() -> None:
    s = summary(run(own_master("event_driven")))
    c = s["counts"]
    # Only items that change reach the 3PL: the others' movements never book.
    assert c["dead_letters_left"] > 0 and c["items_out_of_sync_final"] > 0
    assert c["movements_applied_in_erp"] < c["movements_generated"]
    assert s["duplicated"] == 0
    assert s["warehouses"]["DC"]["latency"]["inventory_sync"]["n_unfinished"] == 0
