"""The order-to-ship flow in the twin: the saga carries orders through, and each pattern's
weakness shows under the fault it is sensitive to."""

from __future__ import annotations

from typing import Any

from sim.metrics import summary
from sim.scenario import Scenario
from sim.twin import Twin, run


def scenario(release: str, confirm: str | None = None, **kw: Any) -> Scenario:
    base: dict[str, Any] = {
        "name": f"orders-{release}", "seed": 11, "duration_h": 6, "drain_h": 6,
        "catalog": {"skus": 300, "initial_on_hand": 2000},
        "warehouses": [{"id": "WH1", "movements_per_hour": 300}],
        "shop": {"orders_per_hour": 120},
        "patterns": {"order_release": release, "inventory": "event_driven",
                     "shipment_confirmation": confirm or release, "master_data": release},
    }
    base.update(kw)
    return Scenario.model_validate(base)


def test_saga_takes_every_order_to_invoice_without_faults() -> None:
    twin = Twin(scenario("orchestrated"))
    s = summary(twin.run())
    c = s["counts"]
    assert c["orders_placed"] > 500
    assert c["orders_invoiced"] == c["orders_shipped"] == c["orders_placed"]
    assert c["order_exceptions_open"] == 0 and c["orders_stuck"] == 0
    for flow in ("order_release", "order_to_ship", "ship_to_invoice"):
        assert s["latency"][flow]["n"] > 500, flow
    # The carrier reports its milestones; a delivery takes about a day and a half.
    assert c["carrier_picked_up"] > 0.5 * c["orders_shipped"]  # the run ends once invoiced
    assert 0 < c.get("carrier_delivered", 0) < c["carrier_picked_up"]
    # Pick movements of the orders reach the ERP like any other movement.
    assert s["checker"]["ok"]
    statuses = {k: v for k, v in c.items() if k.startswith("orders_status_")}
    assert set(statuses) <= {"orders_status_completed", "orders_status_shipped"}


def test_direct_release_gives_up_during_a_wms_outage_the_saga_waits_it_out() -> None:
    outage = {"outages": [{"system": "wms", "start_h": 2, "duration_h": 1}]}
    direct = summary(run(scenario("direct", "event_driven", faults=outage)))
    saga = summary(run(scenario("orchestrated", faults=outage)))
    assert direct["counts"]["orders_release_given_up"] > 0
    assert direct["counts"]["orders_released"] < direct["counts"]["orders_placed"]
    assert saga["counts"]["orders_released"] == saga["counts"]["orders_placed"]
    assert saga["latency"]["order_release"]["max"] > 600  # it waited for the WMS


def test_carrier_failures_are_rebooked_with_another_service() -> None:
    sc = scenario("orchestrated", carrier={"failure_probability": 0.3})
    s = summary(run(sc))
    c = s["counts"]
    # The warehouse books labels: four tries over three services each failing 30% of the
    # time leave about 0.8% of orders at the warehouse, which the core's saga sees still in
    # fulfilment (waiting on the WMS); the rest ship.
    unshipped = c["orders_placed"] - c["orders_shipped"]
    assert 0 < unshipped < 0.03 * c["orders_placed"]
    assert c["orders_stuck"] == unshipped == c["orders_status_in_fulfilment"]
    assert s["api_calls"]["carrier"] > 1.2 * c["orders_placed"]


def test_direct_shipment_confirmation_blocks_the_warehouse_during_an_erp_outage() -> None:
    outage = {"outages": [{"system": "erp", "start_h": 2, "duration_h": 1}]}
    direct = summary(run(scenario("direct", "direct", faults=outage)))
    queued = summary(run(scenario("direct", "event_driven", faults=outage)))
    assert direct["warehouse_blocked_s"] > queued["warehouse_blocked_s"]
    assert direct["counts"]["orders_invoiced"] < direct["counts"]["orders_shipped"]
    assert queued["counts"]["orders_invoiced"] == queued["counts"]["orders_shipped"]
    assert queued["latency"]["ship_to_invoice"]["max"] > 600


def test_orders_replayed_from_a_csv_arrive_at_the_listed_times(tmp_path: Any) -> None:
    from sim.orders import read_arrivals
    from sim.scenario import load

    (tmp_path / "arrivals.csv").write_text("t\n10\n20.5\n3600\n7200\n99999\n")
    (tmp_path / "replay.toml").write_text(
        'duration_h = 3\n[shop]\narrivals_csv = "arrivals.csv"\n')
    sc = load(tmp_path / "replay.toml")
    twin = Twin(sc)
    twin.run()
    placed = sorted(r.placed_at for r in twin.orders.orders.values())
    assert placed == [10.0, 20.5, 3600.0, 7200.0]  # 99999 s is after the run
    (tmp_path / "bad.csv").write_text("t\n10\nsoon\n")
    import pytest

    with pytest.raises(ValueError, match=r"bad\.csv:3: arrival time 'soon'"):
        read_arrivals(str(tmp_path / "bad.csv"))


def test_status_lookups_cost_erp_calls_without_the_core() -> None:
    def calls(release: str, lookups: float) -> dict[str, Any]:
        shop = {"orders_per_hour": 60, "status_lookups_per_order": lookups}
        return summary(run(scenario(release, "direct", shop=shop)))

    direct, direct_quiet = calls("direct", 3), calls("direct", 0)
    saga, saga_quiet = calls("orchestrated", 3), calls("orchestrated", 0)
    placed = direct["counts"]["orders_placed"]
    # Lookups fall over 48 h after each order; the run sees the first few hours of them.
    assert direct["api_calls"]["erp"] - direct_quiet["api_calls"]["erp"] > 0.1 * placed
    assert saga["api_calls"]["erp"] == saga_quiet["api_calls"]["erp"]
    assert saga["api_calls"]["core"] > 0.1 * placed
