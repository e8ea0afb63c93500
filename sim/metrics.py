"""KPIs from a run's flat records (DESIGN principle 5: the engine records, these functions
measure). Names follow DESIGN.md's metric vocabulary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from sim.kpis import FLOWS, SITE, SITE_FLOWS, flatten
from sim.scenario import DOMAINS
from sim.twin import RunResult

PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


def latency_stats(samples: np.ndarray, n_unfinished: int = 0) -> dict[str, Any]:
    """Count, mean and max of the finished operations; percentiles over finished and
    unfinished ones, the unfinished counted as longer than the horizon: a percentile that
    falls on them is None and named in `censored` (it reads "> horizon")."""
    out: dict[str, Any] = {"n": len(samples), "n_unfinished": n_unfinished,
                           "mean": round(float(samples.mean()), 3) if len(samples) else None}
    censored = []
    for name, q in PERCENTILES.items():
        value, above = censored_percentile(samples, n_unfinished, q)
        out[name] = None if value is None else round(value, 3)
        if above:
            censored.append(name)
    out["max"] = round(float(samples.max()), 3) if len(samples) else None
    out["censored"] = censored
    return out


def after_warmup(r: RunResult, flow: str, site: str | None = None) -> np.ndarray:
    """A flow's samples after the warm-up, of one warehouse's operations when `site` is given."""
    cut = r.scenario.warmup_h * 3600
    keep = r.latency_at.get(flow, np.empty(0)) >= cut
    if site is not None:
        keep &= r.latency_site[flow] == site_index(r, site)
    return r.latency.get(flow, np.empty(0))[keep]


def site_index(r: RunResult, site: str) -> int:
    return [w.id for w in r.scenario.warehouses].index(site)


# Systems whose faults cannot move a stock figure: a carrier outage delays labels and
# shipments, and stock is booked when goods leave, not when a label is printed.
STOCKLESS_SYSTEMS = frozenset({"carrier"})


def affects_stock(label: str) -> bool:
    """Whether a fault window (labelled "<system> <kind>") can make stock figures disagree."""
    return label.split(" ", 1)[0] not in STOCKLESS_SYSTEMS


def _recovery(t: np.ndarray, ok: np.ndarray, from_s: float) -> float | None:
    hits = np.flatnonzero(ok & (t >= from_s))
    return None if len(hits) == 0 else round(float(t[hits[0]] - from_s), 1)


def _consistent(r: RunResult) -> np.ndarray:
    """Per sample: nothing unexplained and in-flight divergence back at its pre-fault level
    (95th percentile before the first fault, since continuous traffic always has some in
    flight)."""
    t, in_flight = r.series["t"], r.series["in_flight_units"]
    first = min((start for _, start, _ in r.fault_windows), default=float(t[-1]) if len(t) else 0)
    before = in_flight[(t < first) & (t >= r.scenario.warmup_h * 3600)]
    level = float(np.percentile(before, 95)) if len(before) else 0.0
    ok: np.ndarray = (r.series["unexplained_units"] == 0) & (in_flight <= level)
    return ok


def time_to_consistency(r: RunResult) -> float | None:
    """Seconds from the end of the last fault that can affect stock until the figures agree
    again (`_consistent`). None: not reached in the run; 0.0 when no such fault occurred."""
    ends = [end for label, _, end in r.fault_windows if affects_stock(label)]
    if not ends:
        return 0.0
    return _recovery(r.series["t"], _consistent(r), max(ends))


def fault_table(r: RunResult) -> list[dict[str, Any]]:
    """One row per fault window: its span, the peak divergence while it lasted and until the
    next window began, and the time from its end until the figures agreed again (None: never
    in the run). Faults that cannot affect stock say so rather than claim a recovery."""
    t, ok = r.series["t"], _consistent(r)
    total = r.series["unexplained_units"] + r.series["in_flight_units"]
    windows = sorted(r.fault_windows, key=lambda w: w[1])
    rows = []
    for i, (label, start, end) in enumerate(windows):
        upto = windows[i + 1][1] if i + 1 < len(windows) else float("inf")
        span = (t >= start) & (t < max(end, upto))
        stock = affects_stock(label)
        rows.append({"fault": label, "start_s": round(start, 1), "end_s": round(end, 1),
                     "affects_stock": stock,
                     "peak_divergence_units": int(total[span].max(initial=0)),
                     "time_to_recover_s": _recovery(t, ok, end) if stock else None})
    return rows


def site_divergence(r: RunResult, site: str) -> dict[str, Any]:
    """One warehouse's stock divergence (its rows only)."""
    s = r.series
    keep = s["t"] >= r.scenario.warmup_h * 3600
    units, unexplained = s[f"divergence_units_{site}"], s[f"unexplained_units_{site}"]
    return {
        "max_units": int(units[keep].max(initial=0)),
        "mean_units": round(float(units[keep].mean()), 1) if keep.any() else 0.0,
        "final_units": int(units[-1]) if len(units) else 0,
        "unexplained_max_units": int(unexplained[keep].max(initial=0)),
        "unexplained_final_units": int(unexplained[-1]) if len(units) else 0,
    }


def site_summary(r: RunResult, site: str) -> dict[str, Any]:
    """A warehouse's part of the summary: its flows' latency (unfinished work counted), its
    divergence and its counts; `sim.kpis.flatten_site` reads it."""
    counts = r.extras["sites"][site]
    return {"latency": {flow: latency_stats(after_warmup(r, flow, site), unfinished(counts, flow))
                        for flow in SITE_FLOWS},
            "divergence": site_divergence(r, site),
            "counts": counts}


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
        "faults": fault_table(r),
    }


# Which counts say how many operations of a flow never finished by the horizon: the started,
# less those finished or closed another way (an order cancelled before it shipped will not
# ship; a refused cancel was answered); no finishing counts: the started are the unfinished.
_UNFINISHED: dict[str, tuple[str, tuple[str, ...]]] = {
    "order_release": ("orders_placed", ("orders_released", "orders_cancelled_unreleased")),
    "order_to_ship": ("orders_placed", ("orders_shipped", "orders_cancelled_unshipped")),
    "ship_to_invoice": ("orders_shipped", ("orders_invoiced",)),
    "inventory_sync": ("movements_generated", ("movements_applied_in_erp",)),
    "master_data_sync": ("items_out_of_sync_final", ()),
    "cancel_to_confirmed": ("cancels_requested",
                            ("orders_cancelled", "cancels_refused", "cancels_given_up")),
    "return_to_credit": ("returns", ("credit_memos",)),
}


def unfinished(counts: Mapping[str, int], flow: str) -> int:
    """Operations of `flow` started but not finished at the end of the run."""
    started, finished = _UNFINISHED[flow]
    done = sum(int(counts.get(c, 0)) for c in finished)
    return max(0, int(counts.get(started, 0)) - done)


def censored_percentile(samples: np.ndarray, n_unfinished: int, q: float
                        ) -> tuple[float | None, bool]:
    """The q-th percentile with unfinished operations counted as longer than the horizon.
    Returns (value, censored): censored when the percentile falls on unfinished work, so its
    value is unknown but above the horizon; (None, False) when there is nothing at all."""
    n = len(samples) + n_unfinished
    if n == 0:
        return None, False
    if int(np.ceil(q / 100 * (n - 1))) >= len(samples):  # linear rank reaches the unfinished
        return None, True
    x = np.concatenate([np.sort(samples), np.full(n_unfinished, np.inf)])
    return float(np.percentile(x, q)), False


def slo_results(r: RunResult, kpis: Mapping[str, float | None]) -> list[dict[str, Any]]:
    """Each SLO met or missed. A latency SLO whose percentile falls on work that never
    finished is missed, with a value of "> horizon" (a percentile of the finished ones alone
    would hide exactly the operations the SLO exists for); a KPI SLO is read from `kpis`
    (`sim.kpis.flatten`) and missed when the KPI has no value (consistency never reached)."""
    out = []
    for slo in r.scenario.slos:
        site = slo.warehouse
        if slo.flow is not None:
            assert slo.max_s is not None  # the model's validator
            samples = after_warmup(r, slo.flow, site)
            left = unfinished(r.counts if site is None else r.extras["sites"][site], slo.flow)
            value, censored = censored_percentile(samples, left, slo.percentile)
            out.append({"name": slo.name, "flow": slo.flow, "percentile": slo.percentile,
                        "warehouse": site,
                        "max_s": slo.max_s, "value_s": None if value is None else round(value, 3),
                        "censored": censored, "n_unfinished": left,
                        "met": value is not None and value <= slo.max_s})
            continue
        assert slo.kpi is not None
        got = kpis.get(slo.kpi if site is None else f"{slo.kpi}{SITE}{site}")
        met = got is not None and not np.isnan(got) and (
            got <= slo.max if slo.max is not None else got >= (slo.min or 0.0))
        finite = got is not None and bool(np.isfinite(got))
        out.append({"name": slo.name, "kpi": slo.kpi, "warehouse": site,
                    "max": slo.max, "min": slo.min,
                    "value": got if finite else None, "censored": got == float("inf"),
                    "met": bool(met)})
    return out


def summary(r: RunResult) -> dict[str, Any]:
    sc = r.scenario
    sim_s = sc.duration_s + float(r.extras.get("drained_s", 0.0))
    out: dict[str, Any] = {
        "scenario": sc.name,
        "seed": sc.seed,
        "patterns": {d: sc.patterns.resolved(d).value for d in DOMAINS},
        "redrive": sc.redrive().describe(),
        "duration_h": sc.duration_h,
        "warmup_h": sc.warmup_h,
        "drained_s": r.extras.get("drained_s", 0.0),
        "counts": r.counts,
        "latency": {flow: latency_stats(after_warmup(r, flow), unfinished(r.counts, flow))
                    for flow in FLOWS},
        "divergence": divergence(r),
        # A twin's run has every site's counts; a result built by hand may have none.
        "warehouses": {w: site_summary(r, w) for w in r.extras.get("sites", {})},
        "checker": r.check,
        "lost": r.check["lost"],
        "duplicated": r.check["duplicated"],
        "unexpected": r.check["unexpected"],
        "bus": r.bus,
        "warehouse_blocked_s": round(r.warehouse_blocked_s, 1),
        "api_calls": r.api_calls,
        "api_cost": r.api_cost,
        "slos": [],
        "faults": [{"what": w, "start_s": s, "end_s": e} for w, s, e in r.fault_windows],
        "extras": r.extras,
        "wall_s": round(r.wall_s, 3),
        "simulated_s": sim_s,
        "events": r.events,
        "events_per_wall_s": round(r.events / r.wall_s) if r.wall_s else None,
    }
    # KPI SLOs read the flat KPIs, which read this summary.
    out["slos"] = slo_results(r, flatten(out))
    return out


WALL_CLOCK_FIELDS = ("wall_s", "events_per_wall_s")
"""Fields that differ between identical runs; everything else is a function of the seed."""


def timeseries_frame(r: RunResult) -> pd.DataFrame:
    df = pd.DataFrame(r.series)
    df.insert(0, "scenario", r.scenario.name)
    return df


def latency_frame(r: RunResult) -> pd.DataFrame:
    """One row per finished operation; `warehouse` is empty for operations of no one site."""
    sites = np.array([w.id for w in r.scenario.warehouses] + [""], dtype=object)
    parts = [
        pd.DataFrame({"scenario": r.scenario.name, "flow": flow,
                      "warehouse": pd.Categorical(sites[r.latency_site[flow]]),
                      "completed_at_s": r.latency_at[flow], "latency_s": r.latency[flow]})
        for flow in r.latency
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["scenario", "flow", "warehouse", "completed_at_s", "latency_s"])


def site_rows(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per warehouse for the reports: p95 per flow ("> horizon" when it falls on
    unfinished work), divergence and what did not finish."""
    rows = []
    for site, part in s.get("warehouses", {}).items():
        row: dict[str, Any] = {"warehouse": site}
        for flow, lat in part["latency"].items():
            row[f"{flow} p95 s"] = "> horizon" if "p95" in lat["censored"] else lat["p95"]
        d, c = part["divergence"], part["counts"]
        row.update({"max divergence": d["max_units"], "unexplained at end":
                    d["unexplained_final_units"], "movements": c["movements_generated"],
                    "orders": c["orders_placed"], "orders stuck": c["orders_stuck"]})
        rows.append(row)
    return rows


def comparison_row(s: dict[str, Any]) -> dict[str, Any]:
    """One flat row per scenario for `twin compare`."""
    row: dict[str, Any] = {"scenario": s["scenario"]}
    row.update({f"pattern_{d}": p for d, p in s["patterns"].items()})
    for flow in FLOWS:
        lat = s["latency"][flow]
        row[f"{flow}_p95_s"] = float("inf") if "p95" in lat["censored"] else lat["p95"]
        row[f"{flow}_unfinished"] = s["latency"][flow]["n_unfinished"]
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
        "orders_stuck": s["counts"]["orders_stuck"],
        "warehouse_blocked_s": s["warehouse_blocked_s"],
        "erp_api_calls": s["api_calls"].get("erp", 0),
        "slos_met": sum(x["met"] for x in s["slos"]), "slos": len(s["slos"]),
    })
    if len(s.get("warehouses", {})) > 1:  # each site's sync and damage beside the whole's
        for site, part in s["warehouses"].items():
            lat = part["latency"]["inventory_sync"]
            row[f"inventory_sync_p95_s{SITE}{site}"] = (
                float("inf") if "p95" in lat["censored"] else lat["p95"])
            row[f"unexplained_final_units{SITE}{site}"] = part["divergence"][
                "unexplained_final_units"]
    return row
