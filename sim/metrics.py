"""KPIs from a run's flat records (DESIGN principle 5: the engine records, these functions
measure). Names follow DESIGN.md's metric vocabulary."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sim.scenario import DOMAINS
from sim.twin import RunResult

FLOWS = ("order_release", "inventory_sync", "ship_to_invoice", "order_to_ship",
         "master_data_sync")


def latency_stats(samples: np.ndarray) -> dict[str, float | int | None]:
    if len(samples) == 0:
        return {"n": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(samples, [50, 95, 99])
    return {"n": len(samples), "mean": round(float(samples.mean()), 3),
            "p50": round(float(p50), 3), "p95": round(float(p95), 3),
            "p99": round(float(p99), 3), "max": round(float(samples.max()), 3)}


def after_warmup(r: RunResult, flow: str) -> np.ndarray:
    cut = r.scenario.warmup_h * 3600
    return r.latency.get(flow, np.empty(0))[r.latency_at.get(flow, np.empty(0)) >= cut]


def time_to_consistency(r: RunResult) -> float | None:
    """Seconds from the end of the last fault until unexplained divergence is 0 and in-flight
    divergence is back at its pre-fault level (95th percentile before the first fault, since
    continuous traffic always has some in flight). None: not reached in the run; 0.0 when the
    run had no fault at all."""
    t = r.series["t"]
    if not r.fault_windows:
        return 0.0
    first = min(start for _, start, _ in r.fault_windows)
    last = max(end for _, _, end in r.fault_windows)
    in_flight, unexplained = r.series["in_flight_units"], r.series["unexplained_units"]
    before = in_flight[(t < first) & (t >= r.scenario.warmup_h * 3600)]
    level = float(np.percentile(before, 95)) if len(before) else 0.0
    ok = (t >= last) & (unexplained == 0) & (in_flight <= level)
    hits = np.flatnonzero(ok)
    return None if len(hits) == 0 else round(float(t[hits[0]] - last), 1)


def divergence(r: RunResult) -> dict[str, Any]:
    s = r.series
    keep = s["t"] >= r.scenario.warmup_h * 3600
    units = s["divergence_units"][keep]
    return {
        "max_units": int(units.max(initial=0)),
        "mean_units": round(float(units.mean()), 1) if len(units) else 0.0,
        "final_units": int(s["divergence_units"][-1]) if len(units) else 0,
        "unexplained_max_units": int(s["unexplained_units"][keep].max(initial=0)),
        "unexplained_final_units": int(s["unexplained_units"][-1]) if len(units) else 0,
        "in_flight_max_units": int(s["in_flight_units"][keep].max(initial=0)),
        "skus_out_of_sync_max": int(s["skus_out_of_sync"][keep].max(initial=0)),
        "time_to_consistency_s": time_to_consistency(r),
    }


def slo_results(r: RunResult) -> list[dict[str, Any]]:
    out = []
    for slo in r.scenario.slos:
        samples = after_warmup(r, slo.flow)
        value = float(np.percentile(samples, slo.percentile)) if len(samples) else None
        out.append({"flow": slo.flow, "percentile": slo.percentile, "max_s": slo.max_s,
                    "value_s": None if value is None else round(value, 3),
                    "met": value is not None and value <= slo.max_s})
    return out


def summary(r: RunResult) -> dict[str, Any]:
    sc = r.scenario
    sim_s = sc.duration_s + float(r.extras.get("drained_s", 0.0))
    return {
        "scenario": sc.name,
        "seed": sc.seed,
        "patterns": {d: sc.patterns.resolved(d).value for d in DOMAINS},
        "duration_h": sc.duration_h,
        "warmup_h": sc.warmup_h,
        "drained_s": r.extras.get("drained_s", 0.0),
        "counts": r.counts,
        "latency": {flow: latency_stats(after_warmup(r, flow)) for flow in FLOWS},
        "divergence": divergence(r),
        "checker": r.check,
        "lost": r.check["lost"],
        "duplicated": r.check["duplicated"],
        "unexpected": r.check["unexpected"],
        "bus": r.bus,
        "warehouse_blocked_s": round(r.warehouse_blocked_s, 1),
        "api_calls": r.api_calls,
        "slos": slo_results(r),
        "faults": [{"what": w, "start_s": s, "end_s": e} for w, s, e in r.fault_windows],
        "extras": r.extras,
        "wall_s": round(r.wall_s, 3),
        "simulated_s": sim_s,
        "events": r.events,
        "events_per_wall_s": round(r.events / r.wall_s) if r.wall_s else None,
    }


WALL_CLOCK_FIELDS = ("wall_s", "events_per_wall_s")
"""Fields that differ between identical runs; everything else is a function of the seed."""


def timeseries_frame(r: RunResult) -> pd.DataFrame:
    df = pd.DataFrame(r.series)
    df.insert(0, "scenario", r.scenario.name)
    return df


def latency_frame(r: RunResult) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"scenario": r.scenario.name, "flow": flow,
                      "completed_at_s": r.latency_at[flow], "latency_s": r.latency[flow]})
        for flow in r.latency
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["scenario", "flow", "completed_at_s", "latency_s"])


def comparison_row(s: dict[str, Any]) -> dict[str, Any]:
    """One flat row per scenario for `twin compare`."""
    row: dict[str, Any] = {"scenario": s["scenario"]}
    row.update({f"pattern_{d}": p for d, p in s["patterns"].items()})
    for flow in FLOWS:
        row[f"{flow}_p95_s"] = s["latency"][flow]["p95"]
    d = s["divergence"]
    row.update({
        "divergence_max_units": d["max_units"],
        "unexplained_final_units": d["unexplained_final_units"],
        "skus_out_of_sync_max": d["skus_out_of_sync_max"],
        "items_out_of_sync_final": s["counts"]["items_out_of_sync_final"],
        "time_to_consistency_s": d["time_to_consistency_s"],
        "lost": s["lost"], "duplicated": s["duplicated"], "unexpected": s["unexpected"],
        # Given up by a direct caller: not "lost" (never acknowledged), and missing from the
        # latency samples, so read latency beside it.
        "updates_given_up": s["counts"]["movements_given_up"],
        "warehouse_blocked_s": s["warehouse_blocked_s"],
        "erp_api_calls": s["api_calls"].get("erp", 0),
        "slos_met": sum(x["met"] for x in s["slos"]), "slos": len(s["slos"]),
    })
    return row
