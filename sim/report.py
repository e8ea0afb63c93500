"""Files a run or a comparison leaves behind: summary.json, Parquet tables, PNG plots and a
markdown report that says what they mean."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from sim.decision import DEFAULT_KPI, Decision, decide, markdown, option_from_summaries
from sim.kpis import FLOWS, SITE_FLOWS
from sim.metrics import (
    comparison_row,
    latency_frame,
    site_rows,
    summary,
    timeseries_frame,
    unfinished,
)
from sim.report_page import write_comparison_page, write_run_page
from sim.twin import RunResult
from sim.wording import (
    fault_rows,
    fmt_cell,
    seed_statement,
    shaded_windows,
    slo_measure,
    traffic_statement,
)

HOUR = 3600.0


def _shade(ax: Any, windows: list[tuple[str, float, float]]) -> None:
    for i, (what, start, end) in enumerate(windows):
        ax.axvspan(start / HOUR, end / HOUR, color="tab:red", alpha=0.12,
                   label="fault" if i == 0 else None)
        # Staggered, since windows of several scenarios often start close together.
        ax.text(start / HOUR, 1.0 - 0.07 * (i % 3), what, transform=ax.get_xaxis_transform(),
                fontsize=7, va="top", color="tab:red")


def plot_divergence(results: list[RunResult], path: Path) -> None:
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for r in results:
        t = r.series["t"] / HOUR
        label = r.scenario.name if len(results) > 1 else None
        axes[0].plot(t, r.series["in_flight_units"], lw=1, label=label or "in flight")
        axes[1].plot(t, r.series["unexplained_units"], lw=1, label=label or "unexplained")
    windows = shaded_windows(results)
    _shade(axes[0], windows)
    _shade(axes[1], windows)
    axes[0].set_ylabel("in-flight units")
    axes[1].set_ylabel("unexplained units")
    axes[1].set_xlabel("simulated hours")
    axes[0].set_title("ERP vs WMS divergence (in flight: on its way; unexplained: damage)")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_backlog(results: list[RunResult], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for r in results:
        ax.plot(r.series["t"] / HOUR, r.series["bus_backlog"], lw=1, label=r.scenario.name)
        ax.plot(r.series["t"] / HOUR, r.series["wms_queue"], lw=1, ls="--",
                label=f"{r.scenario.name}: WMS work queue")
    _shade(ax, shaded_windows(results))
    ax.set_xlabel("simulated hours")
    ax.set_ylabel("messages waiting")
    ax.set_title("Backlog: bus (to the ERP) and warehouse work waiting for a worker")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_latency(results: list[RunResult], path: Path) -> None:
    fig = latency_figure(results)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_figure(results: list[RunResult]) -> Any:
    """One panel per flow in a grid: the share of operations done within x seconds, over
    all that started, so work that never finished keeps a curve below 1 (and is counted in
    the legend); each latency SLO drawn as the corner its curve must pass above-left of."""
    flows = [f for f in FLOWS if any(len(r.latency.get(f, ())) or unfinished(r.counts, f)
                                     for r in results)]
    cols = min(3, max(len(flows), 1))
    rows = -(-max(len(flows), 1) // cols)
    fig, grid = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False)
    axes = grid.ravel()
    for ax in axes[len(flows):]:
        ax.set_visible(False)
    for ax, flow in zip(axes, flows, strict=False):
        for r in results:
            x = np.sort(r.latency.get(flow, np.empty(0)))
            left = unfinished(r.counts, flow)
            label = r.scenario.name + (f" ({left:,} unfinished)" if left else "")
            if len(x):
                ax.step(np.maximum(x, 1e-3), np.arange(1, len(x) + 1) / (len(x) + left),
                        label=label, where="post")
            elif left:
                ax.plot([], [], label=label)  # nothing finished at all: still in the key
        slos = {(s.percentile, s.max_s) for r in results for s in r.scenario.slos
                if s.flow == flow and s.max_s is not None}
        ax.set_xscale("log")
        for p, max_s in sorted(slos):  # the SLO's corner: a curve must pass above-left of it
            lo, hi = ax.get_xlim()
            ax.set_xlim(lo, max(hi, max_s * 1.5))
            ax.hlines(p / 100, lo, max_s, color="grey", lw=0.8, ls=":")
            ax.vlines(max_s, 0, p / 100, color="grey", lw=0.8, ls=":")
            ax.annotate(f"SLO p{p:g} <= {max_s:g} s", (max_s, p / 100), fontsize=7,
                        color="grey", xytext=(-3, -10), textcoords="offset points", ha="right")
        ax.xaxis.set_minor_formatter(NullFormatter())  # crowded labels on short decades
        ax.set_ylim(0, 1.02)
        ax.set_title(flow)
        ax.set_xlabel("seconds (log)")
        ax.set_ylabel("share done within")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")  # on each panel: no hunting for the key
    fig.tight_layout()
    return fig


def markdown_table(rows: Sequence[Mapping[Any, Any]]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(fmt_cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def site_section(s: Mapping[str, Any]) -> list[str]:
    """A table per warehouse, when there are several (`sim.metrics.site_rows`)."""
    rows = site_rows(s)
    return ["## Each warehouse", markdown_table(rows), ""] if len(rows) > 1 else []


def write_run(r: RunResult, out: Path) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    s = summary(r)
    (out / "summary.json").write_text(json.dumps(s, indent=2, default=str) + "\n")
    timeseries_frame(r).to_parquet(out / "timeseries.parquet", index=False)
    latency_frame(r).to_parquet(out / "latency.parquet", index=False)
    plot_divergence([r], out / "divergence.png")
    plot_backlog([r], out / "backlog.png")
    plot_latency([r], out / "latency.png")
    # Cancellations and returns only where the scenario has them.
    lat_rows = [{"flow": f, **s["latency"][f]} for f in FLOWS
                if f in SITE_FLOWS or f == "master_data_sync"
                or s["latency"][f]["n"] or s["latency"][f]["n_unfinished"]]
    d = s["divergence"]
    slo_lines = [f"- {x['name']}: {'met' if x['met'] else 'MISSED'} ({slo_measure(x)})"
                 for x in s["slos"]] or ["- none declared"]
    (out / "report.md").write_text("\n".join([
        f"# {s['scenario']}",
        "",
        r.scenario.description or "",
        "",
        f"Seed {s['seed']}, {s['duration_h']} simulated hours (warm-up {s['warmup_h']} h cut "
        f"from KPIs), patterns: " + ", ".join(f"{k} = {v}" for k, v in s["patterns"].items()),
        "",
        "## Did stock stay in sync?",
        f"- max divergence {fmt_cell(d['max_units'])} units, "
        f"{fmt_cell(d['skus_out_of_sync_max'])} SKU-locations out of sync at worst;",
        f"- unexplained (lost, duplicated, wrongly applied) at the end: "
        f"{fmt_cell(d['unexplained_final_units'])} units "
        f"(max {fmt_cell(d['unexplained_max_units'])});",
        f"- time to consistency after the last fault that can affect stock: "
        f"{fmt_cell(d['time_to_consistency_s'])} s;",
        f"- checker: lost {s['lost']}, duplicated {s['duplicated']}, "
        f"unexpected {s['unexpected']};",
        f"- warehouse blocked on synchronous partners: {fmt_cell(s['warehouse_blocked_s'])} s;",
        f"- ERP API calls: {fmt_cell(s['api_calls'].get('erp', 0))}.",
        "",
        "![divergence](divergence.png)",
        "",
        *(["## Each fault", markdown_table(fault_rows(d["faults"])), ""] if d["faults"] else []),
        "## How fast were the flows?",
        markdown_table(lat_rows),
        "",
        "![latency](latency.png)",
        "",
        *site_section(s),
        f"Redrive policy: {s['redrive']}.",
        "",
        "## SLOs",
        *slo_lines,
        "",
        "## Backlog",
        "![backlog](backlog.png)",
        "",
        f"Wall time {s['wall_s']} s, {s['events']:,} events "
        f"({fmt_cell(s['events_per_wall_s'])} per wall second). Data: summary.json, "
        "timeseries.parquet, latency.parquet; the same charts to explore: report.html.",
        "",
    ]))
    write_run_page(r, s, out)
    return s


def comparison_decision(summaries: Sequence[Mapping[str, Any]], kpi: str = DEFAULT_KPI
                        ) -> Decision:
    """The verdict over one run per scenario, with what the reader must know about the
    traffic and the seeds."""
    notes = [seed_statement({x["scenario"]: x["seed"] for x in summaries}) + " "
             + traffic_statement({x["scenario"]: x["extras"]["offered"] for x in summaries})]
    options = [option_from_summaries(s["scenario"], [s], slo_measure) for s in summaries]
    return decide(options, kpi, notes)


def write_comparison(results: list[RunResult], out: Path, kpi: str = DEFAULT_KPI
                     ) -> pd.DataFrame:
    """Every run's files, comparison.csv (the wide table), comparison.md, decision.md and
    overlay plots."""
    out.mkdir(parents=True, exist_ok=True)
    summaries = [write_run(r, out / r.scenario.name) for r in results]
    d = comparison_decision(summaries, kpi)
    (out / "decision.md").write_text(markdown(d, ", ".join(s["scenario"] for s in summaries))
                                     + "\nThe wide table: comparison.csv; each run: "
                                     "<scenario>/report.md.\n")
    table = pd.DataFrame([comparison_row(s) for s in summaries])
    table.to_csv(out / "comparison.csv", index=False)
    plot_divergence(results, out / "divergence.png")
    plot_backlog(results, out / "backlog.png")
    plot_latency(results, out / "latency.png")
    (out / "comparison.md").write_text("\n".join([
        "# Comparison",
        "",
        seed_statement({x["scenario"]: x["seed"] for x in summaries}) + " "
        + traffic_statement({x["scenario"]: x["extras"]["offered"] for x in summaries}),
        "Lower is better everywhere except `slos_met`. "
        "`unexplained_final_units`, `lost` and `duplicated` are damage; in-flight divergence "
        "and latency are the price of decoupling.",
        "",
        markdown_table(table.to_dict("records")),
        "",
        "![divergence](divergence.png)",
        "",
        "![latency](latency.png)",
        "",
        "![backlog](backlog.png)",
        "",
    ]))
    write_comparison_page(results, summaries, table, out)
    return table
