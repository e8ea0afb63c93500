"""The results store of an experiment, and its loader.

```
<out>/experiment.json      resolved configurations, seeds, package versions, git revision,
                           the sweep file, the rankings' verdicts
<out>/report.md            means +- 95% CI, the ranking, failed runs with replay commands
<out>/runs.parquet         one row per run: config, replication, seed, ok, every KPI
<out>/summary.parquet      one row per (config, KPI): n, missing, mean, std, CI, min, max
<out>/ranking.parquet      configurations ordered by the experiment's KPI (per group with
                           `rank_within`), which intervals overlap, the winner if any
<out>/configs.parquet      one row per configuration and its swept values
<out>/failures.parquet     failed runs: seed, error, replay command
<out>/timeseries.parquet   (optional) every run's sampled series, long format
<out>/runs/<config>/rNNN/  scenario.json (replay with `twin run` on it), summary.json
```

A capacity search (`sim.capacity`) writes runs.parquet, probes.parquet and capacity.parquet.

`load(out)` returns every table as a pandas DataFrame, keyed by file stem.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from sim.decision import DEFAULT_KPI, Decision, Option, decide, markdown
from sim.executors import RunOutcome, RunTask
from sim.kpis import HEADLINE, KPIS
from sim.stats import MIN_INTERVAL_N, Estimate, Ranking, estimate, fmt
from sim.sweep import Config


@dataclass(frozen=True)
class Failure:
    config_id: str
    label: str
    replication: int
    seed: int
    error: str
    """The last line of the traceback; `traceback` has all of it."""
    traceback: str
    replay: str | None

    def message(self) -> str:
        how = self.replay or "(no results directory: pass out= to get a replay file)"
        return (f"run {self.config_id}/r{self.replication:03d} ({self.label}) failed with seed "
                f"{self.seed}: {self.error}\n  replay: {how}")


@dataclass
class Experiment:
    """A finished experiment: its tables (pandas), ranking and failures."""

    name: str
    kpi: str
    lower_is_better: bool
    replications: int
    configs: tuple[Config, ...]
    tables: dict[str, pd.DataFrame]
    rankings: dict[str, Ranking]
    """Group label -> ranking; one group, "", unless ranked within groups."""
    failures: list[Failure]
    out: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> dict[str, str]:
        return {c.id: c.label for c in self.configs}

    @property
    def ranking(self) -> Ranking:
        """The ranking, when there is one (not ranked within groups)."""
        if len(self.rankings) != 1:
            raise ValueError("ranked within groups: see `rankings`")
        return next(iter(self.rankings.values()))

    def verdicts(self) -> list[str]:
        """One sentence per ranking on what it can claim."""
        return [(f"Within {g}: " if g else "") + r.verdict(self.labels)
                for g, r in self.rankings.items()]

    def estimates(self, kpi: str) -> dict[str, Estimate]:
        """Per configuration, the estimate of `kpi` over its successful replications."""
        return estimates(self.tables["runs"], kpi, [c.id for c in self.configs])

    def report(self) -> str:
        return report_markdown(self)

    def decision(self) -> Decision:
        """The verdict over the configurations (`sim.decision`), ranked by the experiment's
        KPI, each judged on its successful runs."""
        runs = self.tables["runs"]
        ok = runs[runs["ok"]]
        options = []
        for c in self.configs:
            mine = ok[ok["config_id"] == c.id]
            slos: dict[str, tuple[int, int]] = {}
            for declared, missed in zip(mine.get("slos_declared", []), mine.get("slos_missed", []),
                                        strict=True):
                gone = set(filter(None, str(missed).split("; ")))
                for name in filter(None, str(declared).split("; ")):
                    met, n = slos.get(name, (0, 0))
                    slos[name] = (met + (name not in gone), n + 1)
            kpis = {k: estimate(mine[k].tolist() if k in mine else []) for k in KPIS}
            options.append(Option(c.label or c.id, kpis, slos))
        return decide(options, self.kpi if self.kpi in KPIS else DEFAULT_KPI)


def estimates(runs: pd.DataFrame, kpi: str, config_ids: Sequence[str]) -> dict[str, Estimate]:
    """Per configuration, `kpi` over its successful runs (failed runs are not counted)."""
    if kpi not in runs.columns:  # no run produced it (every run failed)
        return {cid: estimate([]) for cid in config_ids}
    ok = runs[runs["ok"]]
    return {cid: estimate(ok.loc[ok["config_id"] == cid, kpi].tolist()) for cid in config_ids}


TABLES = ("runs", "summary", "ranking", "configs", "failures", "timeseries", "capacity",
          "probes")
PACKAGES = ("interop-twin", "numpy", "pandas", "pyarrow", "simpy", "pydantic", "dask",
            "distributed")


def run_dir(out: Path, config_id: str, replication: int) -> Path:
    return out / "runs" / config_id / f"r{replication:03d}"


def provenance() -> dict[str, Any]:
    """Package versions, git revision (None outside a checkout), machine, time."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    repo = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                             text=True, check=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=repo,
                                    capture_output=True, text=True, check=True,
                                    timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        rev, dirty = None, None
    return {"versions": versions, "git": {"revision": rev, "dirty": dirty},
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "created_at": datetime.now(UTC).isoformat(timespec="seconds")}


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def prepare(out: Path, meta: dict[str, Any], tasks: Sequence[RunTask]) -> None:
    """Clear a previous experiment's files in `out` (only those), write the record and every
    run's resolved scenario before anything runs."""
    if (out / "runs").exists() and not (out / "experiment.json").exists():
        raise FileExistsError(f"{out}: has a runs/ folder but no experiment.json, so it is not "
                              "an earlier experiment; not overwriting it")
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "runs", ignore_errors=True)
    for name in (*[f"{t}.parquet" for t in TABLES], "report.md"):
        (out / name).unlink(missing_ok=True)
    write_json(out / "experiment.json", {**meta, "status": "running"})
    write_scenarios(out, tasks)


def write_scenarios(out: Path, tasks: Sequence[RunTask]) -> None:
    """Each run's resolved scenario, its seed included: `twin run` on it replays the run."""
    for t in tasks:
        d = run_dir(out, t.config_id, t.replication)
        d.mkdir(parents=True, exist_ok=True)
        (d / "scenario.json").write_text(t.scenario.model_dump_json(by_alias=True, indent=2))


def write_outcome(out: Path, o: RunOutcome) -> None:
    d = run_dir(out, o.task.config_id, o.task.replication)
    d.mkdir(parents=True, exist_ok=True)
    if o.output is not None:
        write_json(d / "summary.json", o.output.summary or {"kpis": o.output.kpis})
    if o.error is not None:
        (d / "error.txt").write_text(o.error)


def _num(v: float | None) -> float:
    return math.nan if v is None else float(v)


def _cell(v: Any) -> Any:
    return v if v is None or isinstance(v, bool | int | float | str) else json.dumps(v)


def _param_columns(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    # A column mixing text and numbers cannot go to Parquet: show such a column as text.
    for k in keys:
        kinds = {type(v) for v in df[k] if v is not None}
        if str in kinds and len(kinds) > 1:
            df[k] = df[k].map(lambda v: None if v is None else str(v))
    return df


def _param_keys(configs: Sequence[Config]) -> list[str]:
    keys: list[str] = []
    for c in configs:
        keys += [k for k in c.params if k not in keys]
    return keys


def configs_frame(configs: Sequence[Config]) -> pd.DataFrame:
    keys = _param_keys(configs)
    rows = [{"config_id": c.id, "label": c.label, "scenario": c.scenario.name,
             "base_seed": c.scenario.seed, **{k: _cell(c.params.get(k)) for k in keys}}
            for c in configs]
    return _param_columns(pd.DataFrame(rows), [k for k in keys if k != "scenario"])


def runs_frame(configs: Sequence[Config], outcomes: Sequence[RunOutcome]) -> pd.DataFrame:
    """One row per run; KPI columns are floats (NaN: undefined or the run failed)."""
    by_id = {c.id: c for c in configs}
    keys = [k for k in _param_keys(configs) if k != "scenario"]
    extra = sorted({k for o in outcomes if o.output for k in o.output.kpis} - set(KPIS))
    kpi_names = [k for k in KPIS if any(o.output and k in o.output.kpis for o in outcomes)]
    rows = []
    for o in outcomes:
        c = by_id[o.task.config_id]
        values = o.output.kpis if o.output else {}
        rows.append({
            "config_id": c.id, "label": c.label, "scenario": c.scenario.name,
            **{k: _cell(c.params.get(k)) for k in keys},
            "replication": o.task.replication, "seed": o.task.seed, "ok": o.ok,
            "error": None if o.ok else (o.error or "").strip().splitlines()[-1],
            "wall_s": o.output.wall_s if o.output else math.nan,
            # Which SLOs the run declared and missed, by name ("; "-separated), for the verdict.
            "slos_declared": "; ".join(x["name"] for x in _slos(o)),
            "slos_missed": "; ".join(x["name"] for x in _slos(o) if not x["met"]),
            **{k: _num(values.get(k)) for k in (*kpi_names, *extra)},
        })
    return _param_columns(pd.DataFrame(rows), keys)


def _slos(o: RunOutcome) -> list[dict[str, Any]]:
    return list(o.output.summary.get("slos", [])) if o.output else []


def _kpis_of(runs: pd.DataFrame, configs: Sequence[Config]) -> list[str]:
    fixed = {"config_id", "label", "scenario", "replication", "seed", "ok", "error", "wall_s",
             "slos_declared", "slos_missed", *_param_keys(configs)}
    return [c for c in runs.columns if c not in fixed]


def summary_frame(configs: Sequence[Config], runs: pd.DataFrame) -> pd.DataFrame:
    """Long format: one row per (configuration, KPI) with its Estimate."""
    keys = [k for k in _param_keys(configs) if k != "scenario"]
    ok = runs[runs["ok"]] if len(runs) else runs
    rows = []
    for c in configs:
        mine = ok[ok["config_id"] == c.id] if len(ok) else ok
        for k in _kpis_of(runs, configs):
            est = estimate(mine[k].tolist() if len(mine) else [])
            rows.append({"config_id": c.id, "label": c.label, "scenario": c.scenario.name,
                         **{p: _cell(c.params.get(p)) for p in keys}, "kpi": k,
                         **est.as_dict()})
    return _param_columns(pd.DataFrame(rows), keys)


def ranking_frame(rankings: dict[str, Ranking], labels: dict[str, str]) -> pd.DataFrame:
    """One row per configuration and its rank within its group ("" without groups)."""
    rows = [{"group": group, "rank": e.rank, "config_id": e.id,
             "label": labels.get(e.id, e.id), "kpi": r.kpi,
             "lower_is_better": r.lower_is_better, "n": e.estimate.n,
             "missing": e.estimate.missing, "mean": e.estimate.mean,
             "ci_low": e.estimate.ci_low, "ci_high": e.estimate.ci_high,
             "overlaps": ",".join(e.overlaps), "ties": ",".join(e.ties),
             "distinct": not e.overlaps and not e.ties, "winner": e.id == r.winner}
            for group, r in rankings.items() for e in r.entries]
    return pd.DataFrame(rows, columns=["group", "rank", "config_id", "label", "kpi",
                                       "lower_is_better", "n", "missing", "mean", "ci_low",
                                       "ci_high", "overlaps", "ties", "distinct", "winner"])


def failures_frame(failures: Sequence[Failure]) -> pd.DataFrame:
    cols = ["config_id", "label", "replication", "seed", "error", "replay", "traceback"]
    return pd.DataFrame([{c: getattr(f, c) for c in cols} for f in failures], columns=cols)


def timeseries_frame(outcomes: Sequence[RunOutcome]) -> pd.DataFrame:
    parts = []
    for o in outcomes:
        if o.output is not None and o.output.series is not None:
            df = pd.DataFrame(o.output.series)
            df.insert(0, "replication", o.task.replication)
            df.insert(0, "config_id", o.task.config_id)
            parts.append(df)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["config_id", "replication", "t"])


def write(exp: Experiment) -> None:
    """The tables, report and record of a finished experiment."""
    assert exp.out is not None
    for name, df in exp.tables.items():
        df.to_parquet(exp.out / f"{name}.parquet", index=False)
    write_json(exp.out / "experiment.json", {**exp.meta, "status": "done",
                                             "failures": [f.message() for f in exp.failures]})
    (exp.out / "report.md").write_text(report_markdown(exp))
    (exp.out / "decision.md").write_text(
        markdown(exp.decision(), f"sweep {exp.name}")
        + "\nMeans, intervals and every KPI: report.md and the Parquet tables.\n")


def load(path: str | Path) -> dict[str, pd.DataFrame]:
    """Every table of an experiment directory: runs, summary, ranking, configs, failures and,
    when written, timeseries; a capacity search's: runs, probes, capacity."""
    path = Path(path)
    if not (path / "runs.parquet").exists():
        raise FileNotFoundError(f"{path}: not an experiment directory (no runs.parquet)")
    return {t: pd.read_parquet(path / f"{t}.parquet") for t in TABLES
            if (path / f"{t}.parquet").exists()}


def load_meta(path: str | Path) -> dict[str, Any]:
    """experiment.json: configurations, seeds, versions, git revision, verdict."""
    meta: dict[str, Any] = json.loads((Path(path) / "experiment.json").read_text())
    return meta


# -- report -------------------------------------------------------------------------------

def fmt_estimate(e: Estimate) -> str:
    """`mean ± half-width`; `(n/N)` when some runs had no value; `-` when none had."""
    if e.n == 0:
        return "-" if not e.missing else f"- (0/{e.missing})"
    if e.interval_known:
        text = f"{fmt(e.mean)} ± {fmt(e.half_width)}"
    else:  # no interval worth printing from fewer than MIN_INTERVAL_N runs
        text = fmt(e.mean) + (f" (n={e.n})" if 1 < e.n < MIN_INTERVAL_N else "")
    return text + (f" ({e.n}/{e.n + e.missing})" if e.missing else "")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def summary_table(exp: Experiment) -> str:
    """Configurations x headline KPIs (+ the ranking KPI), mean ± 95% CI half-width."""
    runs = exp.tables["runs"]
    ok = runs[runs["ok"]]
    cols = [k for k in (*HEADLINE, exp.kpi) if k in runs.columns]
    cols = [k for i, k in enumerate(cols) if k not in cols[:i]
            and (k == exp.kpi or ok[k].notna().any())]
    rows = []
    for c in exp.configs:
        row = [c.id, c.label]
        for k in cols:
            row.append(fmt_estimate(estimate(ok.loc[ok["config_id"] == c.id, k].tolist())))
        rows.append(row)
    return _table(["config", "label", *cols], rows)


def _interval(e: Estimate) -> str:
    if e.interval_known:
        return f"[{fmt(e.ci_low)}, {fmt(e.ci_high)}]"
    if e.n == 0:
        return "-"
    if e.min == e.max:
        return "none (the same value in every run)" if e.n > 1 else "none (one run)"
    return f"none (n={e.n}: at least {MIN_INTERVAL_N} runs needed)"


def ranking_table(exp: Experiment) -> str:
    """Every ranking as a table, each followed by its verdict."""
    parts = []
    for (group, r), verdict in zip(exp.rankings.items(), exp.verdicts(), strict=True):
        rows = [[str(e.rank), e.id, exp.labels.get(e.id, e.id), fmt(e.estimate.mean),
                 _interval(e.estimate), ", ".join(e.overlaps) or "none",
                 ", ".join(e.ties) or "none"]
                for e in r.entries]
        table = _table(["rank", "config", "label", "mean", "95% CI", "CI overlaps", "ties"],
                       rows)
        parts.append((f"### {group}\n\n" if group else "") + f"{table}\n\n{verdict}")
    return "\n\n".join(parts)


def report_markdown(exp: Experiment) -> str:
    m = exp.meta
    git = m.get("git", {})
    rev = (git.get("revision") or "unknown")[:12] + (" (dirty)" if git.get("dirty") else "")
    sense = "lower" if exp.lower_is_better else "higher"
    lines = [
        f"# Experiment: {exp.name}",
        "",
        f"{exp.replications} replications of {len(exp.configs)} configurations "
        f"({m.get('executor')}, {m.get('workers')} at once), git {rev}. "
        "Cells: mean over replications ± half-width of the 95% confidence interval (Student "
        "t, n - 1 degrees of freedom); `(n/N)`: the KPI was undefined in some runs (no samples, "
        "or consistency never reached) and the mean is over the n that had it. Replication i "
        "of configurations with the same base seed uses the same seed (common random "
        "numbers; seeds in experiment.json). KPIs exclude the scenario's warm-up.",
        "",
        summary_table(exp),
        "",
        f"## Ranking by {exp.kpi} ({sense} is better)",
        "",
        ranking_table(exp),
        "",
        "Intervals that do not overlap mean a real difference; overlapping ones do not prove "
        "there is none. More replications narrow them.",
        "",
    ]
    if exp.failures:
        lines += ["## Failed runs", ""]
        lines += [f"- {f.config_id}/r{f.replication:03d} ({f.label}), seed {f.seed}: "
                  f"`{f.error}`; replay: `{f.replay or 'no results directory'}`"
                  for f in exp.failures]
        lines += [""]
    lines += ["Tables: runs.parquet (one row per run), summary.parquet (every KPI: n, mean, "
              "std, CI, min, max), ranking.parquet, configs.parquet, failures.parquet; load "
              "them with `sim.results.load(path)`.", ""]
    return "\n".join(lines)
