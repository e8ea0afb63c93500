"""The words a report puts around its numbers, shared by report.md and report.html: cell
formats, how an SLO was met or missed, the per-fault rows, what the reader must know about
seeds and traffic, and which fault windows an overlay plot shades."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sim.twin import RunResult


def shaded_windows(results: list[RunResult]) -> list[tuple[str, float, float]]:
    """Every scenario's fault windows for an overlay plot: a window all scenarios share once,
    one only some have labelled with their names, so no scenario's outage goes unshaded."""
    owners: dict[tuple[str, float, float], list[str]] = {}
    for r in results:
        for w in r.fault_windows:
            names = owners.setdefault(w, [])
            if r.scenario.name not in names:
                names.append(r.scenario.name)
    everyone = len(results)
    return [(what if len(names) == everyone else f"{', '.join(names)}: {what}", start, end)
            for (what, start, end), names in sorted(owners.items(), key=lambda kv: kv[0][1])]


def fmt_cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # NaN: pandas' None in a number column
            return "never"
        if v == float("inf"):  # a percentile that falls on work never finished
            return "> horizon"
        if v.is_integer() or abs(v) >= 1000:  # a count read back as a float; or big
            return f"{v:,.0f}"
        return f"{v:,.1f}" if abs(v) >= 10 else f"{v:.3g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def slo_measure(x: Mapping[str, Any]) -> str:
    """What an SLO's percentile or KPI came to, and by how much it missed."""
    if "kpi" in x:
        if x.get("censored"):
            return "measured > horizon: it falls on work that never finished"
        if x["value"] is None:
            return "no value (never reached)"
        limit = x["max"] if x["max"] is not None else x["min"]
        side = "over" if x["max"] is not None else "under"
        off = "" if x["met"] else f", {fmt_cell(abs(x['value'] - limit))} {side}"
        return f"measured {fmt_cell(x['value'])}{off}"
    if x.get("censored"):
        return (f"measured > horizon: the percentile falls on {x['n_unfinished']:,} "
                "operations that never finished")
    if x["value_s"] is None:
        return "nothing measured"
    over = "" if x["met"] else f", {fmt_cell(x['value_s'] - x['max_s'])} s over"
    return f"measured {fmt_cell(x['value_s'])} s{over}"


def fault_rows(faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-fault table in words: a fault that cannot affect stock has no recovery."""
    return [{"fault": f["fault"], "from s": f["start_s"], "to s": f["end_s"],
             "affects stock": "yes" if f["affects_stock"] else "no",
             "peak divergence (units)": f["peak_divergence_units"],
             "recovered after (s)": (f["time_to_recover_s"] if f["time_to_recover_s"] is not None
                                     else "never" if f["affects_stock"] else "n/a")}
            for f in faults]


def seed_statement(seeds: Mapping[str, int]) -> str:
    """What the comparison's reader must know about randomness: one seed for all, or which."""
    used = sorted(set(seeds.values()))
    if len(used) == 1:
        return f"Seed {used[0]} for every scenario."
    listed = ", ".join(f"{name} {seed}" for name, seed in seeds.items())
    return (f"Seeds differ ({listed}): part of every difference below is random variation, "
            "not design.")


def traffic_statement(offered: Mapping[str, Mapping[str, Any]]) -> str:
    """Whether the scenarios were offered the same orders and movements (`sim.offered`): only
    then are the differences below the designs' doing alone."""
    digests = {o["digest"] for o in offered.values()}
    if len(digests) == 1:
        one = next(iter(offered.values()))
        return (f"Every scenario was offered identical traffic ({one['orders']:,} orders, "
                f"{one['movements']:,} warehouse movements; digest {one['digest'][:12]}).")
    listed = ", ".join(f"{name} {o['orders']:,} orders / {o['movements']:,} movements"
                       for name, o in offered.items())
    return (f"The scenarios were offered different traffic ({listed}): they differ in load or "
            "seed, not only in design.")
