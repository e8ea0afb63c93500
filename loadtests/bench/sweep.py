"""Sweep speed-up: the four patterns (scenarios/patterns/*.toml) x 5 replications of the
baseline day, once in this process (serial) and once on local worker processes (parallel, all
cores by default), in the same run. Prints wall times, the speed-up (target >= 1.7x on 2
cores) and whether both produced identical KPIs (they must: same seeds).

    python -m loadtests.bench.sweep [--replications 5] [--workers N] [--hours H]

The parallel time includes starting the worker processes; the serial one pays nothing extra.
`parallel_mean_run_wall_s` against `serial_mean_run_wall_s` shows how much each run slows down
when the cores run side by side; `parallel_worker_utilisation` how busy the workers were.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import pandas as pd

from loadtests.bench.common import machine
from sim.executors import Executor, ProcessExecutor, SerialExecutor
from sim.experiment import run_experiment
from sim.results import Experiment
from sim.sweep import Config, expand

PATTERNS = Path(__file__).resolve().parents[2] / "scenarios" / "patterns"


def timed(configs: list[Config], replications: int, ex: Executor) -> tuple[float, Experiment]:
    t0 = time.perf_counter()
    try:
        exp = run_experiment(configs, replications, executor=ex)
    finally:
        ex.close()
    return time.perf_counter() - t0, exp


def kpis(exp: Experiment) -> pd.DataFrame:
    return exp.tables["runs"].drop(columns=["wall_s"]).reset_index(drop=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--replications", type=int, default=5)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--hours", type=float, default=None,
                   help="simulated hours per run (default: the scenario's full day)")
    a = p.parse_args()
    files = sorted(PATTERNS.glob("*.toml"))
    configs = expand(files, fixed={} if a.hours is None else {"duration_h": a.hours})
    serial_s, serial = timed(configs, a.replications, SerialExecutor())
    parallel_s, parallel = timed(configs, a.replications, ProcessExecutor(a.workers))
    runs, par_runs = serial.tables["runs"], parallel.tables["runs"]
    # Where a shortfall from the ideal speed-up goes: runs slowed down by running side by side
    # (shared caches, memory bandwidth, a busy host) vs idle workers (start-up, the tail).
    busy_s = float(par_runs["wall_s"].sum())
    print(json.dumps({
        "benchmark": "sweep",
        "configs": [c.label for c in configs],
        "replications": a.replications,
        "runs": len(runs),
        "simulated_h_per_run": configs[0].scenario.duration_h,
        "failed_runs": len(serial.failures) + len(parallel.failures),
        "serial_wall_s": round(serial_s, 2),
        "parallel_wall_s": round(parallel_s, 2),
        "workers": a.workers,
        "speedup": round(serial_s / parallel_s, 2),
        "target_speedup": 1.7,
        "serial_mean_run_wall_s": round(float(runs["wall_s"].mean()), 2),
        "parallel_mean_run_wall_s": round(float(par_runs["wall_s"].mean()), 2),
        "parallel_worker_utilisation": round(busy_s / (a.workers * parallel_s), 3),
        "identical_kpis": kpis(serial).equals(kpis(parallel)),
        "machine": machine(),
    }, indent=2))


if __name__ == "__main__":
    main()
