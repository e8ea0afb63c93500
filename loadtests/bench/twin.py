"""Twin throughput: movements simulated per wall second through the full event-driven path
(WMS -> link -> bus -> link -> ERP API -> link -> ack), against the bare-SimPy ceiling measured
in the same run: the same number of movements pushed through the same number of
simpy.Store put/get hops with no logic at all.

    python -m loadtests.bench.twin [--hours 24] [--rate 10000] [--week]

`--week` runs the issue's sizing: one simulated week at 10,000 movements/hour (1.68 M
movements), reporting wall time and peak memory (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Generator
from typing import Any

import simpy

from loadtests.bench.common import machine
from sim.scenario import Scenario
from sim.twin import run

HOPS = 4
"""wms->core, core->erp (API), erp->core, core->wms (ack): the Store hops of the baseline."""


def scenario(hours: float, rate: float) -> Scenario:
    return Scenario.model_validate({
        "name": "bench", "seed": 1, "duration_h": hours, "sample_interval_s": 300,
        "catalog": {"skus": 5000},
        "warehouses": [{"id": "WH1", "movements_per_hour": rate, "workers": 40}],
        "shop": {"orders_per_hour": 0},
        "patterns": {"inventory": "event_driven", "order_release": "event_driven",
                     "shipment_confirmation": "event_driven", "master_data": "event_driven"},
        "erp": {"api": {"workers": 16, "rate_limit_per_min": None}},
    })


def bare_simpy(n: int, hops: int = HOPS) -> float:
    """Wall seconds to push n items through `hops` Store put/get hops, no logic."""
    env = simpy.Environment()
    stores = [simpy.Store(env) for _ in range(hops)]

    def source() -> Generator[Any, Any, None]:
        for i in range(n):
            yield env.timeout(0.36)
            stores[0].put(i)

    def relay(a: simpy.Store, b: simpy.Store | None) -> Generator[Any, Any, None]:
        while True:
            item = yield a.get()
            if b is not None:
                b.put(item)

    env.process(source())
    for i in range(hops):
        env.process(relay(stores[i], stores[i + 1] if i + 1 < hops else None))
    t0 = time.perf_counter()
    env.run()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--hours", type=float, default=24)
    p.add_argument("--rate", type=float, default=10_000, help="movements per hour")
    p.add_argument("--week", action="store_true", help="one week at 10,000/h")
    a = p.parse_args()
    hours, rate = (168.0, 10_000.0) if a.week else (a.hours, a.rate)
    r = run(scenario(hours, rate))
    n = r.counts["movements_generated"]
    ceiling_s = bare_simpy(n)
    twin_rate, ceiling_rate = n / r.wall_s, n / ceiling_s
    print(json.dumps({
        "benchmark": "twin",
        "simulated_h": hours,
        "movements": n,
        "twin_wall_s": round(r.wall_s, 2),
        "twin_movements_per_s": round(twin_rate),
        "bare_simpy_wall_s": round(ceiling_s, 2),
        "bare_simpy_movements_per_s": round(ceiling_rate),
        "ratio_to_ceiling": round(twin_rate / ceiling_rate, 3),
        "target_ratio": 0.25,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "lost": r.check["lost"], "duplicated": r.check["duplicated"],
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()
