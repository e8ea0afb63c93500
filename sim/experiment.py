"""Experiments: N replications of each configuration, on an executor, into a results store.

Seeds: replication i of a configuration runs with seed `replication_seeds(scenario.seed, n)[i]`
(child i of `SeedSequence(scenario.seed)`). Configurations sharing a base seed therefore share
their replication seeds: common random numbers, so differences between configurations are not
noise from different draws. Every KPI comes from `sim.metrics.summary`, which cuts the
scenario's warm-up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sim import results
from sim.executors import (
    Executor,
    ProcessExecutor,
    RunFn,
    RunOutcome,
    RunOutput,
    RunTask,
    run_tasks,
)
from sim.kpis import DEFAULT_KPI, flatten
from sim.kpis import kpi as lookup_kpi
from sim.results import Experiment, Failure, estimates
from sim.scenario import Scenario
from sim.stats import rank, replication_seeds
from sim.sweep import Config, Sweep, short


def simulate(scenario: Scenario) -> RunOutput:
    """The real run function: the twin, its summary, its flat KPIs and its time series."""
    from sim.metrics import summary
    from sim.twin import run

    r = run(scenario)
    s = summary(r)
    return RunOutput(kpis=flatten(s), summary=s, series=r.series, wall_s=r.wall_s)


def tasks_for(configs: Sequence[Config], replications: int) -> list[RunTask]:
    """One task per (configuration, replication), each scenario carrying its run seed."""
    tasks = []
    for c in configs:
        for i, seed in enumerate(replication_seeds(c.scenario.seed, replications)):
            tasks.append(RunTask(c.id, i, seed, c.scenario.model_copy(update={"seed": seed})))
    return tasks


def replay_command(out: Path | None, task: RunTask) -> str | None:
    """The command that re-runs exactly this task (None without a results directory)."""
    if out is None:
        return None
    return f"twin run {results.run_dir(out, task.config_id, task.replication) / 'scenario.json'}"


def run_experiment(
    configs: Sequence[Config],
    replications: int,
    *,
    name: str = "experiment",
    kpi: str = DEFAULT_KPI,
    lower_is_better: bool | None = None,
    executor: Executor | None = None,
    run_fn: RunFn = simulate,
    out: str | Path | None = None,
    keep_timeseries: bool = False,
    on_outcome: Callable[[RunOutcome], None] | None = None,
    source: dict[str, Any] | None = None,
    rank_within: Sequence[str] = (),
) -> Experiment:
    """Run every configuration `replications` times and summarise.

    `executor`: default local processes on all cores (closed afterwards; one you pass stays
    open). `out`: the results directory (written as runs finish, so a crash mid-sweep leaves
    what finished). A failed run is reported in `failures` with its seed and replay command;
    the other runs finish. `rank_within`: param keys; configurations are ranked separately per
    combination of their values (e.g. per outage length)."""
    if replications < 1:
        raise ValueError(f"replications must be >= 1, got {replications}")
    ids = [c.id for c in configs]
    if len(set(ids)) != len(ids):
        raise ValueError(f"configuration ids must be unique, got {ids}")
    sense = lookup_kpi(kpi).lower_is_better if lower_is_better is None else lower_is_better
    groups = ranking_groups(configs, rank_within)
    out = Path(out) if out is not None else None
    tasks = tasks_for(configs, replications)
    own = executor is None
    ex: Executor = ProcessExecutor() if executor is None else executor
    meta = {
        "name": name, "kpi": kpi, "lower_is_better": sense, "replications": replications,
        "executor": type(ex).__name__, "workers": ex.workers,
        "seeds": {c.id: replication_seeds(c.scenario.seed, replications) for c in configs},
        "configs": [{"id": c.id, "label": c.label, "params": c.params,
                     "scenario": c.scenario.model_dump(mode="json", by_alias=True)}
                    for c in configs],
        "sweep": source, **results.provenance(),
    }
    if out is not None:
        results.prepare(out, meta, tasks)

    def done(o: RunOutcome) -> None:
        if out is not None:
            results.write_outcome(out, o)
        if on_outcome is not None:
            on_outcome(o)

    try:
        outcomes = run_tasks(ex, tasks, run_fn, done)
    finally:
        if own:
            ex.close()
    labels = {c.id: c.label for c in configs}
    failures = [
        Failure(o.task.config_id, labels[o.task.config_id], o.task.replication, o.task.seed,
                (o.error or "").strip().splitlines()[-1] if o.error else "", o.error or "",
                replay_command(out, o.task))
        for o in outcomes if not o.ok
    ]
    runs = results.runs_frame(configs, outcomes)
    ests = estimates(runs, kpi, ids)
    rankings = {g: rank({i: ests[i] for i in members}, kpi, sense)
                for g, members in groups.items()}
    tables = {
        "runs": runs,
        "configs": results.configs_frame(configs),
        "summary": results.summary_frame(configs, runs),
        "ranking": results.ranking_frame(rankings, labels),
        "failures": results.failures_frame(failures),
    }
    if keep_timeseries:
        tables["timeseries"] = results.timeseries_frame(outcomes)
    exp = Experiment(name, kpi, sense, replications, tuple(configs), tables, rankings, failures,
                     out, meta)
    meta["verdicts"] = exp.verdicts()
    meta["failed_runs"] = len(failures)
    if out is not None:
        results.write(exp)
    return exp


def ranking_groups(configs: Sequence[Config], within: Sequence[str]) -> dict[str, list[str]]:
    """Group label (e.g. "outages=erp 4h") -> ids of the configurations ranked together."""
    groups: dict[str, list[str]] = {}
    for c in configs:
        missing = [k for k in within if k not in c.params]
        if missing:
            raise ValueError(f"rank_within: {missing} not among the swept values "
                             f"{sorted(c.params)}")
        label = ", ".join(
            c.shown.get(k, str(c.params[k])) if k == "scenario"
            else f"{short(k)}={c.shown.get(k, str(c.params[k]))}" for k in within)
        groups.setdefault(label, []).append(c.id)
    return groups


def run_sweep(sweep: Sweep, **kwargs: Any) -> Experiment:
    """`run_experiment` with the sweep file's configurations, replications and KPI."""
    kwargs.setdefault("kpi", sweep.kpi)
    kwargs.setdefault("lower_is_better", sweep.lower_is_better)
    kwargs.setdefault("replications", sweep.replications)
    kwargs.setdefault("rank_within", sweep.rank_within)
    return run_experiment(sweep.configs, name=sweep.name,
                          source=json.loads(json.dumps(sweep.source, default=str)), **kwargs)
