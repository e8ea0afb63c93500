"""Capacity search: per scenario (pattern), the highest value of a load field (by default the
first warehouse's movements per hour) at which a KPI (by default p95 inventory-sync lag) stays
under an SLO, by bisection over replications.

A probe runs the scenario at one rate `replications` times. It passes when the criterion holds:
`upper` (default, conservative): the upper bound of the 95% CI of the mean KPI is <= the SLO;
`mean`: the mean is. A probe with a failed run or a run without the KPI (no samples) does not
pass, nor does one where a guard KPI exceeds its limit in any replication: by default
`updates_given_up` must stay 0, because a direct caller that gives up leaves those updates out
of the latency samples and would otherwise look fast while dropping work.

The search first probes `lo` and `hi`; if `lo` already fails there is no capacity in the range,
if `hi` passes the capacity is at least `hi`; otherwise it halves the bracket up to `steps`
times (or until it is narrower than `resolution`). Bisection assumes the KPI grows with
the load; every probe uses the same replication seeds (common random numbers), which keeps
noise from breaking that. All scenarios' probes of one step run together on the executor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from sim import results
from sim.executors import Executor, ProcessExecutor, RunFn, RunOutcome, run_tasks
from sim.experiment import simulate, tasks_for
from sim.kpis import kpi as lookup_kpi
from sim.stats import Estimate, estimate, fmt
from sim.sweep import Config, resolve

Criterion = Literal["upper", "mean"]
DEFAULT_GUARDS = {"updates_given_up": 0.0}


def _at_most(value: float | None, limit: float) -> bool:
    return value is not None and not math.isnan(value) and value <= limit


@dataclass(frozen=True)
class Probe:
    scenario: str
    value: float
    estimate: Estimate
    failed_runs: int
    passed: bool
    guards_held: bool = True


@dataclass(frozen=True)
class Capacity:
    scenario: str
    capacity: float | None
    """Highest probed value that met the SLO; None: even `lo` missed it."""
    missed_at: float | None
    """Lowest probed value that missed it; None: `hi` met it (capacity is at least `hi`)."""
    probes: tuple[Probe, ...]

    @property
    def verdict(self) -> str:
        if self.capacity is None:
            return f"misses the SLO already at {self.missed_at:g}"
        if self.missed_at is None:
            return f"meets the SLO up to the top of the range ({self.capacity:g}) at least"
        return f"meets the SLO up to {self.capacity:g} (misses at {self.missed_at:g})"


def passes(est: Estimate, slo: float, criterion: Criterion, failed_runs: int = 0) -> bool:
    if failed_runs or est.missing or est.n == 0:
        return False
    if criterion == "mean" or est.n < 2:  # one replication has no interval: its value decides
        return est.mean <= slo
    return est.ci_high <= slo


@dataclass
class _Search:
    base: Path
    name: str
    lo: float
    hi: float
    passed: float | None = None
    missed: float | None = None
    done: bool = False


def capacity_search(
    bases: Sequence[str | Path],
    slo: float,
    *,
    lo: float,
    hi: float,
    field: str = "warehouses.0.movements_per_hour",
    kpi: str = "inventory_sync_p95_s",
    replications: int = 3,
    steps: int = 6,
    resolution: float = 1.0,
    criterion: Criterion = "upper",
    guards: Mapping[str, float] | None = None,
    fixed: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    run_fn: RunFn = simulate,
    out: str | Path | None = None,
    on_outcome: Callable[[RunOutcome], None] | None = None,
) -> list[Capacity]:
    """The capacity of each scenario file in `bases` (see the module docstring). `guards`:
    KPI -> limit every replication must respect (default `{"updates_given_up": 0}`)."""
    if not 0 <= lo < hi:
        raise ValueError(f"need 0 <= lo < hi, got lo={lo}, hi={hi}")
    if steps < 0 or replications < 1:
        raise ValueError("steps must be >= 0 and replications >= 1")
    if criterion not in ("upper", "mean"):
        raise ValueError(f"criterion must be 'upper' or 'mean', got {criterion!r}")
    lookup_kpi(kpi)
    guards = dict(DEFAULT_GUARDS if guards is None else guards)
    for g in guards:
        lookup_kpi(g)
    out = Path(out) if out is not None else None
    fixed = dict(fixed or {})
    searches = [_Search(Path(b), resolve(b, fixed).name, lo, hi) for b in bases]
    if len({s.name for s in searches}) != len(searches):
        raise ValueError(f"scenario names must differ, got {[s.name for s in searches]}")
    own = executor is None
    ex: Executor = ProcessExecutor() if executor is None else executor
    probes: dict[str, list[Probe]] = {s.name: [] for s in searches}
    all_outcomes: list[RunOutcome] = []
    all_configs: list[Config] = []
    meta: dict[str, Any] = {
        "kind": "capacity", "slo": slo, "lo": lo, "hi": hi, "field": field, "kpi": kpi,
        "replications": replications, "steps": steps, "criterion": criterion, "fixed": fixed,
        "guards": guards,
        "bases": [str(b) for b in bases], "executor": type(ex).__name__,
        "workers": ex.workers, **results.provenance(),
    }
    if out is not None:
        results.prepare(out, meta, [])

    def probe_round(points: list[tuple[_Search, float]]) -> list[Probe]:
        configs = [Config(f"{s.name}-{v:g}", f"{s.name} {field.rsplit('.', 1)[-1]}={v:g}",
                          {"scenario": s.name, field: v}, resolve(s.base, {**fixed, field: v}))
                   for s, v in points]
        tasks = tasks_for(configs, replications)
        if out is not None:
            results.write_scenarios(out, tasks)

        def done(o: RunOutcome) -> None:
            if out is not None:
                results.write_outcome(out, o)
            if on_outcome is not None:
                on_outcome(o)

        outcomes = run_tasks(ex, tasks, run_fn, done)
        all_outcomes.extend(outcomes)
        all_configs.extend(configs)
        made = []
        for (s, v), c in zip(points, configs, strict=True):
            mine = [o for o in outcomes if o.task.config_id == c.id]
            failed = sum(not o.ok for o in mine)
            outs = [o.output for o in mine if o.output is not None]
            est = estimate([o.kpis.get(kpi) for o in outs])
            held = all(_at_most(o.kpis.get(g), limit) for o in outs for g, limit in guards.items())
            p = Probe(s.name, v, est, failed, held and passes(est, slo, criterion, failed), held)
            probes[s.name].append(p)
            made.append(p)
        return made

    try:
        first = probe_round([(s, v) for s in searches for v in (lo, hi)])
        for i, s in enumerate(searches):
            at_lo, at_hi = first[2 * i], first[2 * i + 1]
            if not at_lo.passed:
                s.missed, s.done = lo, True
            elif at_hi.passed:
                s.passed, s.done = hi, True
            else:
                s.passed, s.missed = lo, hi
        for _ in range(steps):
            active = [s for s in searches if not s.done and s.missed is not None
                      and s.passed is not None and s.missed - s.passed > resolution]
            if not active:
                break
            points = []
            for s in active:
                assert s.passed is not None and s.missed is not None
                mid = round((s.passed + s.missed) / 2 / resolution) * resolution
                if not s.passed < mid < s.missed:  # the bracket is down to the resolution
                    s.done = True
                    continue
                points.append((s, mid))
            if not points:
                break
            for (s, v), p in zip(points, probe_round(points), strict=True):
                if p.passed:
                    s.passed = v
                else:
                    s.missed = v
    finally:
        if own:
            ex.close()
    found = [Capacity(s.name, s.passed, s.missed, tuple(probes[s.name])) for s in searches]
    if out is not None:
        _write(out, meta, found, all_configs, all_outcomes)
    return found


def probes_frame(found: Sequence[Capacity]) -> pd.DataFrame:
    rows = [{"scenario": p.scenario, "value": p.value, "passed": p.passed,
             "failed_runs": p.failed_runs, "guards_held": p.guards_held,
             **asdict(p.estimate)}
            for c in found for p in c.probes]
    return pd.DataFrame(rows)


def capacity_frame(found: Sequence[Capacity], slo: float) -> pd.DataFrame:
    return pd.DataFrame([{"scenario": c.scenario, "capacity": c.capacity,
                          "missed_at": c.missed_at, "slo": slo, "probes": len(c.probes),
                          "verdict": c.verdict} for c in found])


def _write(out: Path, meta: dict[str, Any], found: Sequence[Capacity],
           configs: Sequence[Config], outcomes: Sequence[RunOutcome]) -> None:
    runs = results.runs_frame(configs, outcomes)
    tables = {"runs": runs, "probes": probes_frame(found),
              "capacity": capacity_frame(found, float(meta["slo"]))}
    for name, df in tables.items():
        df.to_parquet(out / f"{name}.parquet", index=False)
    failed = [f"{o.task.config_id}/r{o.task.replication:03d} seed {o.task.seed}: replay with "
              f"`twin run {results.run_dir(out, o.task.config_id, o.task.replication)}"
              "/scenario.json`" for o in outcomes if not o.ok]
    results.write_json(out / "experiment.json", {**meta, "status": "done", "failures": failed})
    (out / "report.md").write_text(report_markdown(meta, found, failed))


def report_markdown(meta: dict[str, Any], found: Sequence[Capacity],
                    failed: Sequence[str] = ()) -> str:
    crit = ("upper bound of the 95% CI of the mean" if meta["criterion"] == "upper"
            else "mean")
    lines = [
        "# Capacity",
        "",
        f"Highest `{meta['field']}` at which the {crit} of `{meta['kpi']}` over "
        f"{meta['replications']} replications stays <= {meta['slo']:g}; bisection between "
        f"{meta['lo']:g} and {meta['hi']:g}, at most {meta['steps']} steps. Guards (every "
        "replication): " + (", ".join(f"`{k}` <= {v:g}" for k, v in meta["guards"].items())
                            or "none") + ".",
        "",
        "| scenario | capacity | missed at | verdict |",
        "|---|---|---|---|",
        *[f"| {c.scenario} | {'-' if c.capacity is None else f'{c.capacity:g}'} | "
          f"{'-' if c.missed_at is None else f'{c.missed_at:g}'} | {c.verdict} |"
          for c in found],
        "",
        "## Probes",
        "",
        "| scenario | value | mean | 95% CI | guards | passed |",
        "|---|---|---|---|---|---|",
        *[f"| {p.scenario} | {p.value:g} | {fmt(p.estimate.mean)} | "
          + ("-" if math.isnan(p.estimate.ci_low) else
             f"[{fmt(p.estimate.ci_low)}, {fmt(p.estimate.ci_high)}]")
          + f" | {'held' if p.guards_held else 'broken'} | {'yes' if p.passed else 'no'} |"
          for c in found for p in c.probes],
        "",
    ]
    if failed:
        lines += ["## Failed runs", "", *[f"- {f}" for f in failed], ""]
    return "\n".join(lines)
