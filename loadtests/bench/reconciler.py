"""Reconciler diff: a plain Python dict loop against the vectorized `diff_arrays`, same data,
same run, results checked equal.

Two snapshots of N (sku, location, lot) rows from a seeded generator: ~1% of rows with a
wrong ERP quantity, ~0.2% missing on each side, ~0.5% with a movement still in flight. Rows
are shuffled independently per snapshot (no shared order to exploit). Building the inputs is
not timed; each timed call does the whole diff including in-flight sums per differing row.

    python -m loadtests.bench.reconciler [--rows 1000000] [--repeat 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import json
from typing import Any

import numpy as np

from integration_core.reconcile import BalanceTable, Deltas, Diff, Keyspace, diff_arrays
from loadtests.bench.common import machine, median_time

Key = tuple[str, str, str | None]
DictRow = tuple[Key, int, int, int]
LOCATIONS = 20
LOTS = (None, "L1", "L2", "L3")


def snapshots(rows: int, seed: int) -> tuple[BalanceTable, BalanceTable, Deltas]:
    """ERP and WMS tables of about `rows` rows each, and the in-flight deltas."""
    rng = np.random.default_rng(seed)
    skus = max(rows // 10, 1)
    keys = Keyspace()
    keys.skus.encode(f"SKU{i:08d}" for i in range(skus))
    keys.locations.encode(f"WH1-{i:03d}" for i in range(LOCATIONS))
    keys.lots.encode(LOTS)
    space = skus * LOCATIONS * len(LOTS)
    # Distinct keys: a sorted random sample of the key space, then shuffled per table.
    combined = np.sort(rng.choice(space, size=min(rows, space), replace=False))
    n = len(combined)
    lot = combined % len(LOTS)
    loc = (combined // len(LOTS)) % LOCATIONS
    sku = combined // (len(LOTS) * LOCATIONS)
    wms_qty = rng.integers(1, 500, n)
    erp_qty = wms_qty.copy()
    wrong = rng.random(n) < 0.01
    erp_qty[wrong] += rng.choice([-1, 1], wrong.sum()) * rng.integers(1, 50, wrong.sum())
    flying = rng.random(n) < 0.005
    flight = rng.integers(-20, 21, n) * flying
    erp_qty -= flight  # the ERP has not applied these yet
    side = rng.random(n)
    in_erp, in_wms = side >= 0.002, (side < 0.002) | (side >= 0.004)
    e, w = rng.permutation(np.flatnonzero(in_erp)), rng.permutation(np.flatnonzero(in_wms))
    f = np.flatnonzero(flight)
    return (
        BalanceTable(keys, sku[e], loc[e], lot[e], erp_qty[e]),
        BalanceTable(keys, sku[w], loc[w], lot[w], wms_qty[w]),
        Deltas(keys, sku[f], loc[f], lot[f], flight[f]),
    )


def dict_diff(erp: dict[Key, int], wms: dict[Key, int], flight: dict[Key, int]) -> list[DictRow]:
    """The plain version: one dict lookup per row on each side."""
    out = []
    for k, e in erp.items():
        w = wms.get(k, 0)
        if e != w:
            out.append((k, e, w, flight.get(k, 0)))
    for k, w in wms.items():
        if w and k not in erp:
            out.append((k, 0, w, flight.get(k, 0)))
    return out


def diff_rows(d: Diff) -> set[DictRow]:
    return set(zip(
        zip(d.keys.skus.decode(d.sku), d.keys.locations.decode(d.location),
            d.keys.lots.decode(d.lot), strict=True),
        d.erp_qty.tolist(), d.wms_qty.tolist(), d.in_flight.tolist(), strict=True,
    ))


def counts_dict(rows: list[DictRow], erp: dict[Key, int], wms: dict[Key, int]) -> dict[str, int]:
    return {
        "breaks": len(rows),
        "missing_in_erp": sum(1 for k, *_ in rows if k not in erp),
        "missing_in_wms": sum(1 for k, *_ in rows if k not in wms),
        "explained": sum(1 for _, e, w, f in rows if e + f == w),
    }


def counts_arrays(d: Diff) -> dict[str, int]:
    return {
        "breaks": len(d),
        "missing_in_erp": int((d.erp_index < 0).sum()),
        "missing_in_wms": int((d.wms_index < 0).sum()),
        "explained": int(d.explained.sum()),
    }


def run(rows: int, repeat: int, seed: int) -> dict[str, Any]:
    erp, wms, flight = snapshots(rows, seed)
    erp_d, wms_d, flight_d = erp.to_dict(), wms.to_dict(), flight_dict(flight)
    gc.collect()
    gc.freeze()  # the dicts' millions of objects are not garbage; keep them out of gc passes
    dict_s, dict_runs = median_time(lambda: dict_diff(erp_d, wms_d, flight_d), repeat)
    vec_s, vec_runs = median_time(lambda: diff_arrays(erp, wms, flight), repeat)
    by_dict = dict_diff(erp_d, wms_d, flight_d)
    by_vec = diff_arrays(erp, wms, flight)
    assert set(by_dict) == diff_rows(by_vec) and len(by_dict) == len(by_vec)
    counts = counts_arrays(by_vec)
    assert counts == counts_dict(by_dict, erp_d, wms_d)
    div = by_vec.divergence()
    return {
        "rows": rows,
        "erp_rows": len(erp),
        "wms_rows": len(wms),
        "in_flight_rows": len(flight),
        "repeat": repeat,
        "seed": seed,
        "dict_loop_s": round(dict_s, 4),
        "vectorized_s": round(vec_s, 4),
        "speedup": round(dict_s / vec_s, 1),
        "dict_loop_runs_s": [round(t, 4) for t in dict_runs],
        "vectorized_runs_s": [round(t, 4) for t in vec_runs],
        "break_counts": counts,
        "divergence": {
            "divergence_units": div.divergence_units,
            "in_flight_units": div.in_flight_units,
            "unexplained_units": div.unexplained_units,
            "skus_out_of_sync": div.skus_out_of_sync,
        },
        "same_result": True,
        "machine": machine(),
    }


def flight_dict(flight: Deltas) -> dict[Key, int]:
    return dict(zip(flight.row_keys(), flight.delta.tolist(), strict=True))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    print(json.dumps(run(args.rows, args.repeat, args.seed), indent=2))


if __name__ == "__main__":
    main()
