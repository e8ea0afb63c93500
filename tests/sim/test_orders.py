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
    # Three services each failing 30% of bookings: about 2.7% of orders exhaust them all and
    # wait for a person with a carrier_failed exception; the rest ship.
    unshipped = c["orders_placed"] - c["orders_shipped"]
    assert 0 < unshipped < 0.06 * c["orders_placed"]
    assert c["order_exceptions_open"] == unshipped
    assert s["api_calls"]["carrier"] > 1.2 * c["orders_placed"]


def test_direct_shipment_confirmation_blocks_the_warehouse_during_an_erp_outage() -> None:
    outage = {"outages": [{"system": "erp", "start_h": 2, "duration_h": 1}]}
    direct = summary(run(scenario("direct", "direct", faults=outage)))
    queued = summary(run(scenario("direct", "event_driven", faults=outage)))
    assert direct["warehouse_blocked_s"] > queued["warehouse_blocked_s"]
    assert direct["counts"]["orders_invoiced"] < direct["counts"]["orders_shipped"]
    assert queued["counts"]["orders_invoiced"] == queued["counts"]["orders_shipped"]
    assert queued["latency"]["ship_to_invoice"]["max"] > 600
