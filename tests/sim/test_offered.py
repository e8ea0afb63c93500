"""Common random numbers: one seed offers the same orders and movements to every pattern, and
each source of randomness has its own stream, so changing one leaves the others' draws alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sim.faults import FaultPlan
from sim.offered import OfferedTraffic
from sim.rng import Streams
from sim.scenario import Scenario, load
from sim.twin import run
from tests.sim.test_twin import scenario

PATTERNS = sorted((Path(__file__).resolve().parents[2] / "scenarios" / "patterns").glob("*.toml"))


def offered(sc: Scenario) -> dict[str, Any]:
    result: dict[str, Any] = run(sc).extras["offered"]
    return result


def test_the_four_shipped_patterns_see_identical_traffic_at_one_seed() -> None:
    assert [p.stem for p in PATTERNS] == ["direct", "event_driven", "hybrid", "orchestrated"]
    # 12 h: the baseline's ERP outage at 10:00 included, so the patterns behave differently.
    runs = {p.stem: run(load(p, duration_h=12)) for p in PATTERNS}
    seen = {name: r.extras["offered"] for name, r in runs.items()}
    assert len({s["digest"] for s in seen.values()}) == 1, seen
    assert seen["direct"]["orders"] > 500 and seen["direct"]["movements"] > 20_000
    # ... while what the patterns made of that traffic differs (so the check has teeth).
    assert len({r.counts["movements_given_up"] for r in runs.values()}) > 1
    assert len({(r.api_calls.get("erp"), r.api_calls.get("wms")) for r in runs.values()}) > 1
    # Another seed offers other traffic.
    other = offered(load(PATTERNS[0], duration_h=12, seed=43))
    assert other["digest"] != seen["direct"]["digest"]


def test_orders_and_movements_both_enter_the_digest() -> None:
    base = scenario(shop={"orders_per_hour": 30}, duration_h=2)
    a = offered(base)
    assert a["orders"] > 0 and a["movements"] > 0
    more_orders = offered(scenario(shop={"orders_per_hour": 40}, duration_h=2))
    assert more_orders["movements"] == a["movements"]  # the warehouse's own stream untouched
    assert more_orders["orders"] != a["orders"] and more_orders["digest"] != a["digest"]
    busier = offered(scenario(shop={"orders_per_hour": 30}, duration_h=2,
                              warehouses=[{"id": "WH1", "movements_per_hour": 1600}]))
    assert busier["orders"] == a["orders"] and busier["digest"] != a["digest"]


def test_digest_is_order_sensitive_and_counts() -> None:
    a, b = OfferedTraffic(), OfferedTraffic()
    a.movement(1.0, 0, 1, 5, -2)
    a.movement(2.0, 0, 1, 6, 3)
    b.movement(2.0, 0, 1, 6, 3)
    b.movement(1.0, 0, 1, 5, -2)
    assert a.summary()["movements"] == 2 and a.summary()["digest"] != b.summary()["digest"]


def test_each_random_outage_source_has_its_own_stream() -> None:
    erp = {"system": "erp", "mtbf_h": 6, "mttr_h": 0.5}
    wms = {"system": "wms", "mtbf_h": 4, "mttr_h": 0.5}

    def windows(*random: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
        plan = FaultPlan(scenario(duration_h=96, faults={"random": list(random)}), Streams(7))
        out: dict[str, list[tuple[float, float]]] = {}
        for f in plan.plan:
            out.setdefault(f.system, []).append((f.start_s, f.end_s))
        return out

    alone = windows(erp)
    assert len(alone["erp"]) >= 3
    with_wms = windows(wms, erp)  # another source, listed first: the ERP's outages stay put
    assert with_wms["erp"] == alone["erp"] and len(with_wms["wms"]) >= 3
    twice = windows(erp, erp)  # a second entry for one system draws outages of its own
    assert len(twice["erp"]) > len(alone["erp"])
