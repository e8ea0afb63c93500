"""Cancellations, returns and order routing weights in the twin (`sim.orders`): the shop's
whole life cycle through the saga (and, without a core, the ERP's direct calls)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from integration_core.engine.desk import ORDERS, RESERVED
from sim.metrics import summary
from sim.scenario import Scenario
from sim.twin import RunResult, Twin

CONSTANT_H = {"kind": "constant", "value": 0.5}


def scenario(pattern: str = "orchestrated", shop: dict[str, Any] | None = None,
             **kw: Any) -> Scenario:
    base: dict[str, Any] = {
        "name": f"lifecycle-{pattern}", "seed": 5, "duration_h": 4, "drain_h": 6,
        "catalog": {"skus": 200, "initial_on_hand": 5000},
        "warehouses": [{"id": "WH1", "movements_per_hour": 200}],
        "shop": {"orders_per_hour": 150, **(shop or {})},
        # Deliveries within the run, so returns happen in it.
        "carrier": {"in_transit_h": CONSTANT_H, "pickup_h": CONSTANT_H},
        "patterns": {"order_release": pattern, "inventory": "event_driven",
                     "shipment_confirmation": pattern, "master_data": pattern},
    }
    base.update(kw)
    return Scenario.model_validate(base)


def within(observed: int, n: int, p: float, sds: float = 4.0) -> bool:
    """A binomial count within `sds` standard deviations of n * p."""
    return abs(observed - n * p) <= sds * math.sqrt(n * p * (1 - p)) + 1


LIFECYCLE = {"cancel_before_release": 0.1, "cancel_after_release": 0.1,
             "return_rate": 0.3, "return_delay_h": CONSTANT_H}


@pytest.fixture(scope="module")
def saga() -> tuple[Twin, RunResult]:
    twin = Twin(scenario(shop=LIFECYCLE))
    return twin, twin.run()


def test_cancels_come_at_the_configured_rate_and_each_is_answered(
        saga: tuple[Twin, RunResult]) -> None:
    _, r = saga
    c = r.counts
    assert c["orders_placed"] > 400
    assert within(c["cancels_requested"], c["orders_placed"], 0.2)
    # Every cancel was either carried out or refused (the WMS was waving, or it was packed).
    assert c["orders_cancelled"] > 0 and c["cancels_refused"] > 0
    assert c["orders_cancelled"] + c["cancels_refused"] == c["cancels_requested"]
    assert c["orders_status_cancelled"] == c["orders_cancelled"]
    lat = r.latency["cancel_to_confirmed"]
    assert len(lat) == c["orders_cancelled"] and (lat >= 0).all()


def test_cancelled_orders_free_what_they_held_and_are_never_invoiced(
        saga: tuple[Twin, RunResult]) -> None:
    twin, _ = saga
    store = twin.core.engine.store
    desk = store.state(ORDERS)
    cancelled = [oid for oid, d in desk.items() if d["status"] == "cancelled"]
    assert cancelled
    for oid in cancelled:
        assert desk[oid]["reserved"] == [] or all(q == 0 for *_, q in desk[oid]["reserved"])
        rec = twin.orders.orders[oid]
        assert not rec.invoiced and rec.shipped_at is None
    # What is still held is what open orders hold: nothing leaks from a cancellation.
    held = sum(q for *_, q in (e for d in desk.values() for e in d.get("reserved", [])))
    assert sum(int(v) for v in store.state(RESERVED).values()) == held


def test_returns_post_a_credit_memo_each_and_come_back_into_stock(
        saga: tuple[Twin, RunResult]) -> None:
    twin, r = saga
    c = r.counts
    intended = sum(rec.return_after_s is not None for rec in twin.orders.orders.values())
    assert within(intended, c["orders_placed"], 0.3)
    assert c["returns"] > 0.5 * 0.3 * c["carrier_delivered"]
    assert c["credit_memos"] == c["returns"] == len(r.latency["return_to_credit"])
    assert c["returned_units"] >= c["returns"]
    s = summary(r)
    assert s["checker"]["ok"]  # the return movements reached the ERP once each
    assert s["divergence"]["unexplained_final_units"] == 0
    assert c["orders_status_completed"] > 0 and c.get("orders_status_return_pending", 0) == 0


def test_returned_units_are_on_the_shelf_and_in_the_erp() -> None:
    without = Twin(scenario(shop={"return_rate": 0.0}))
    without.run()
    twin = Twin(scenario(shop={"return_rate": 0.5, "return_delay_h": CONSTANT_H}))
    r = twin.run()
    back = r.counts["returned_units"]
    assert back > 0
    # Same offered orders and movements (common random numbers): the difference is the return.
    assert twin.land.wms.on_hand.sum() - without.land.wms.on_hand.sum() == back
    assert np.array_equal(twin.land.wms.on_hand, twin.land.erp.on_hand)


def test_cancellations_and_returns_do_not_move_the_offered_traffic() -> None:
    plain = Twin(scenario()).run()
    busy = Twin(scenario(shop=LIFECYCLE)).run()
    assert busy.extras["offered"] == plain.extras["offered"]


def test_a_cancel_after_the_wave_is_refused_and_the_order_ships() -> None:
    late = {"cancel_after_release": 1.0, "cancel_delay_s": {"kind": "constant", "value": 3600}}
    c = Twin(scenario(shop=late, duration_h=2)).run().counts
    assert c["cancels_requested"] == c["orders_placed"] == c["cancels_refused"]
    assert c["orders_cancelled"] == 0 and c["orders_invoiced"] == c["orders_placed"]


def test_a_cancel_at_once_stops_every_order_before_the_warehouse() -> None:
    now = {"cancel_before_release": 1.0, "cancel_delay_s": {"kind": "constant", "value": 0}}
    c = Twin(scenario(shop=now, duration_h=2)).run().counts
    assert c["orders_cancelled"] == c["orders_placed"] > 0
    assert c["orders_shipped"] == c["orders_invoiced"] == 0


def test_the_direct_pattern_cancels_and_credits_through_direct_calls() -> None:
    r = Twin(scenario("direct", shop=LIFECYCLE)).run()
    c = r.counts
    assert within(c["cancels_requested"], c["orders_placed"], 0.2)
    assert c["orders_cancelled"] > 0
    assert c["orders_cancelled"] + c["cancels_refused"] + c["cancels_given_up"] == \
        c["cancels_requested"]
    assert c["credit_memos"] == c["returns"] > 0
    assert "orders_status_cancelled" not in c


# -- routing weights -------------------------------------------------------------------------


def two_sites(w1: float, w2: float) -> Scenario:
    return scenario(warehouses=[{"id": "WH1", "movements_per_hour": 100, "order_weight": w1},
                                {"id": "WH2", "movements_per_hour": 100, "order_weight": w2}],
                    duration_h=3)


def test_orders_are_routed_to_sites_in_proportion_to_their_weights() -> None:
    twin = Twin(two_sites(3.0, 1.0))
    twin.run()
    sites = [rec.warehouse for rec in twin.orders.orders.values()]
    assert within(sites.count(0), len(sites), 0.75)
    none = Twin(two_sites(1.0, 0.0))
    none.run()
    assert {rec.warehouse for rec in none.orders.orders.values()} == {0}


def test_equal_weights_route_exactly_as_an_even_spread() -> None:
    even = Twin(two_sites(1.0, 1.0)).run()
    doubled = Twin(two_sites(2.5, 2.5)).run()
    assert doubled.extras["offered"] == even.extras["offered"]
    assert doubled.counts == even.counts


def test_every_weight_zero_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="order_weight"):
        two_sites(0.0, 0.0)


def test_cancel_shares_above_one_are_refused() -> None:
    with pytest.raises(ValueError, match="cancel_before_release"):
        scenario(shop={"cancel_before_release": 0.7, "cancel_after_release": 0.4})
