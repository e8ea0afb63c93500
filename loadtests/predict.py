"""Predicted against measured: calibrate the twin from a live load test's run directory, run the
same plan through it with several seeds, and write ``prediction.md`` (and
``prediction-backlog.png``) beside the run's files.

    python -m loadtests.predict RUN_DIR [--seeds 3]
    python -m loadtests.run --twin ...          # the same, right after the live run

The figures, each measured (live) and predicted (the twin: the seeds' median and range), with
the relative error of the median:

- **ERP backlog peak**: the most movements waiting for the ERP (live: ``status.csv``'s
  ``backlog_erp``, sampled each second; twin: its ``backlog_erp`` series at the same interval).
- **drain after the outage**: seconds from the end of the plan's first ERP outage until the
  backlog is down to 5% of its peak. The live samples' clock starts before locust does; the
  outage's start in it is the first sample whose ``erp_posting_failed_calls`` grew.
- **ERP calls**: calls the ERP served (live: ``partner_calls.csv``; twin: ERP API calls).
- **inventory-sync p95**: predicted only; the live run records no per-movement lag.

The partner twins record their calls only when ``TWIN_PARTNER_CALLS_CSV`` is set
(``loadtests.run --twin`` sets it); without them the twin keeps its default service times and
the report says so.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.calibrate import Calibration, CalibrationError, calibrate, write_scenario
from sim.scenario import Scenario
from sim.twin import Twin

DRAINED_SHARE = 0.05
"""The backlog counts as drained once it is down to this share of its peak."""


@dataclass(frozen=True)
class Figures:
    backlog_peak: float | None
    drain_s: float | None
    erp_calls: float | None
    sync_p95_s: float | None
    backlog: tuple[list[float], list[float]]
    """(seconds from the plan's start, ERP backlog), for the plot."""
    drain_at_least_s: float | None = None
    """When the samples end before the backlog drained: how long after the outage they end."""


def drain_after(t: np.ndarray, backlog: np.ndarray, outage_end_s: float) -> float | None:
    """Seconds from `outage_end_s` until `backlog` is down to `DRAINED_SHARE` of its peak
    (None: it never is within the samples)."""
    if backlog.size == 0 or backlog.max() <= 0:
        return None
    after = (t >= outage_end_s) & (backlog <= DRAINED_SHARE * backlog.max())
    return float(t[after][0] - outage_end_s) if after.any() else None


def erp_outage(cal: Calibration) -> tuple[float, float] | None:
    """(start, end) in seconds of the first ERP `down` outage the plan gave."""
    for o in cal.outages:
        if o["system"] == "erp" and o["kind"] == "down":
            return o["start_h"] * 3600, (o["start_h"] + o["duration_h"]) * 3600
    return None


def measured(run_dir: Path, outage: tuple[float, float] | None) -> Figures:
    with (run_dir / "status.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    t = np.array([float(r["t_s"]) for r in rows])
    backlog = np.array([float(r["backlog_erp"]) for r in rows])
    failed = np.array([float(r["erp_posting_failed_calls"]) for r in rows])
    drain, at_least = None, None
    if outage is not None and t.size:
        grew = np.nonzero(np.diff(failed, prepend=failed[:1]) > 0)[0]
        if grew.size:  # align the sampler's clock with the plan's at the outage's start
            t = t - (t[grew[0]] - outage[0])
            drain = drain_after(t, backlog, outage[1])
            if drain is None and t[-1] > outage[1]:
                at_least = float(t[-1] - outage[1])
    calls_path = run_dir / "partner_calls.csv"
    calls = None
    if calls_path.is_file():
        with calls_path.open(newline="") as f:
            calls = float(sum(1 for r in csv.DictReader(f) if r["partner"] == "erp"))
    return Figures(float(backlog.max()) if backlog.size else None, drain, calls,
                   _sync_p95(run_dir), (t.tolist(), backlog.tolist()), at_least)


def _sync_p95(run_dir: Path) -> float | None:
    """The service's own inventory-sync p95 (occurred -> booked in the ERP), from the status
    the run read once everything had drained (`summary.json`); None for runs without it."""
    path = run_dir / "summary.json"
    if not path.is_file():
        return None
    lag = json.loads(path.read_text()).get("inventory_sync_lag_s") or {}
    p95 = lag.get("p95")
    return None if p95 is None else float(p95)


def predicted(scenario: Scenario, seed: int, outage: tuple[float, float] | None) -> Figures:
    result = Twin(scenario.model_copy(update={"seed": seed})).run()
    t, backlog = result.series["t"], result.series["backlog_erp"]
    sync = result.latency.get("inventory_sync", np.zeros(0))
    drain = drain_after(t, backlog, outage[1]) if outage is not None else None
    return Figures(float(backlog.max()), drain, float(result.api_calls.get("erp", 0)),
                   float(np.percentile(sync, 95)) if sync.size else None,
                   (t.tolist(), backlog.tolist()))


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _cell(x: float | None, unit: str = "") -> str:
    return "-" if x is None else f"{_num(x)}{unit}"


def _row(name: str, unit: str, live: float | None, twin: list[float | None],
         at_least: float | None = None) -> str:
    got = [x for x in twin if x is not None]
    med = statistics.median(got) if got else None
    spread = f"{_num(min(got))} - {_num(max(got))}" if got else "-"
    err = ("-" if med is None or live is None or live == 0
           else f"{(med - live) / live:+.0%}")
    missing = "" if len(got) == len(twin) else f" ({len(twin) - len(got)} seed(s) without)"
    shown = (f"> {at_least:.3g}{unit} (the samples end first)" if live is None and at_least
             else _cell(live, unit))
    return f"| {name} | {shown} | {_cell(med, unit)}{missing} | {spread} | {err} |"


def plot(path: Path, live: Figures, twin: list[Figures], seeds: list[int],
         until_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(*live.backlog, color="black", lw=2, label="measured (live)")
    for s, f in zip(seeds, twin, strict=True):
        ax.plot(*f.backlog, lw=1, alpha=0.7, label=f"twin, seed {s}")
    ax.set_xlim(right=until_s)
    ax.set_xlabel("seconds from the plan's start")
    ax.set_ylabel("ERP backlog (movements)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def predict_run(run_dir: Path, seeds: list[int]) -> Path:
    """Calibrate from `run_dir`, run the twin once per seed, write ``prediction.md``."""
    cal, _ = calibrate(run_dir, name="calibrated")
    scenario = write_scenario(cal, run_dir / "calibrated.toml", str(run_dir))
    outage = erp_outage(cal)
    live = measured(run_dir, outage)
    twin = [predicted(scenario, s, outage) for s in seeds]
    plot(run_dir / "prediction-backlog.png", live, twin, seeds, 1.5 * cal.duration_s)
    lines = [
        "# Predicted against measured", "",
        f"The twin calibrated from this run (`calibrated.toml`: how each figure was fitted is in "
        f"its comments), run on the same plan with seeds {', '.join(map(str, seeds))}. "
        "Relative error: the twin's median against the measurement.", "",
        "| figure | measured | predicted (median) | seeds' range | error |",
        "|---|---|---|---|---|",
        _row("ERP backlog peak (movements)", "", live.backlog_peak,
             [f.backlog_peak for f in twin]),
        _row("drain after the ERP outage (s)", " s", live.drain_s, [f.drain_s for f in twin],
             live.drain_at_least_s),
        _row("ERP calls", "", live.erp_calls, [f.erp_calls for f in twin]),
        _row("inventory-sync p95 (s)", " s", live.sync_p95_s, [f.sync_p95_s for f in twin]),
        "", "![ERP backlog, measured and predicted](prediction-backlog.png)", "",
        "## What the model leaves out", "",
        "- The live inventory-sync p95 is the service's own (occurred -> booked in the ERP, "
        "read from `/v1/status` after the drain), from buckets 12% wide: the twin's from every "
        "sample. A load test's movements carry their occurred_at to the second.",
        "- The live status is sampled while the load runs, not during the drain: a backlog "
        "that outlasts the load has no measured drain time.",
        "- The partner twins' recorded durations are the work inside their handlers; HTTP, "
        "JSON and the core's own processing are not in the twin's service times.",
        "- The live core gathers what is due into one ERP call (its delivery loop's coalescing "
        "and transaction batches); the twin's batching differs, so the call counts differ.",
        "- The shop's lookups and shipment confirmations of the locustfile are not modelled.",
    ]
    if "erp" not in cal.service:
        lines.append("- No partner_calls.csv: the twin kept its default service times "
                     "(set TWIN_PARTNER_CALLS_CSV, or run `loadtests.run --twin`).")
    lines += [f"- {n}" for n in cal.notes if "not modelled" in n]
    path = run_dir / "prediction.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir", type=Path, help="a load test's --out directory")
    ap.add_argument("--seeds", type=int, default=3, help="twin runs, seeds 1..N")
    args = ap.parse_args(argv)
    try:
        path = predict_run(args.run_dir, list(range(1, args.seeds + 1)))
    except (CalibrationError, FileNotFoundError, KeyError) as exc:
        print(f"{args.run_dir}: cannot predict: {exc}", file=sys.stderr)
        return 2
    print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
