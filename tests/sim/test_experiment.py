"""Experiments end to end: replications and their intervals, seeds, the results store, failed
runs (raised or a dead worker process) reported with seed and replay command while the others
finish, and the same answers from every executor. Real runs use a one-hour, 50-SKU scenario
(about 40 ms each); fakes from tests/sim/fakes.py stand in where only the plumbing matters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from sim import results
from sim.cli import app
from sim.executors import ProcessExecutor, RunFn, SerialExecutor
from sim.experiment import run_experiment, simulate, tasks_for
from sim.kpis import KPIS, SITE_KPIS, flatten
from sim.metrics import summary
from sim.scenario import ScenarioError, load
from sim.stats import estimate, replication_seeds
from sim.sweep import Config, expand
from sim.twin import run
from tests.sim.fakes import CRASH_SEED, TINY, dying_run, lag_run, raising_run


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    p = tmp_path / "tiny.toml"
    p.write_text(TINY)
    return p


def patterns(tiny: Path) -> list[Config]:
    return expand([tiny], {"patterns.inventory": ["direct", "event_driven"]})


def stable(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.drop(columns=["wall_s"]).reset_index(drop=True)


def test_replications_give_means_with_t_intervals_and_a_ranking(tiny: Path) -> None:
    configs = expand([tiny], {"warehouses.0.movements_per_hour": [1000, 2000]})
    exp = run_experiment(configs, 4, executor=SerialExecutor(), run_fn=lag_run)
    runs = exp.tables["runs"]
    assert list(runs["config_id"]) == ["c00"] * 4 + ["c01"] * 4
    assert list(runs["seed"]) == replication_seeds(7, 4) * 2  # common random numbers
    lags = runs.loc[runs["config_id"] == "c01", "inventory_sync_p95_s"].tolist()
    summ = exp.tables["summary"]
    (row,) = summ[(summ["config_id"] == "c01") & (summ["kpi"] == "inventory_sync_p95_s")].to_dict(
        "records")
    expected = estimate(lags)
    assert (row["n"], row["mean"], row["ci_low"], row["ci_high"], row["std"]) == pytest.approx(
        (4, expected.mean, expected.ci_low, expected.ci_high, expected.std))
    assert exp.ranking.winner == "c00"  # 10 s vs 20 s with noise sd 0.5: intervals clear
    assert list(exp.tables["ranking"]["config_id"]) == ["c00", "c01"]
    assert exp.meta["seeds"] == {"c00": replication_seeds(7, 4), "c01": replication_seeds(7, 4)}


def test_ranking_within_groups(tiny: Path) -> None:
    configs = expand([tiny], {"warehouses.0.movements_per_hour": [1000, 2000],
                              "erp.api.workers": [4, 8]}, labels={"erp.api.workers": ["S", "L"]})
    exp = run_experiment(configs, 3, executor=SerialExecutor(), run_fn=lag_run,
                         rank_within=["erp.api.workers"])
    assert list(exp.rankings) == ["workers=S", "workers=L"]
    assert [r.winner for r in exp.rankings.values()] == ["c00", "c01"]  # the lower rate
    ranking = exp.tables["ranking"]
    assert ranking.groupby("group")["config_id"].apply(list).to_dict() == {
        "workers=S": ["c00", "c02"], "workers=L": ["c01", "c03"]}
    assert exp.verdicts()[0].startswith("Within workers=S: c00 (movements_per_hour=1000, "
                                        "workers=S) has the lowest")
    with pytest.raises(ValueError, match="ranked within groups"):
        exp.ranking  # noqa: B018
    with pytest.raises(ValueError, match="not among the swept values"):
        run_experiment(configs, 1, executor=SerialExecutor(), run_fn=lag_run,
                       rank_within=["seed"])


def test_kpis_are_read_from_the_summary_after_warmup(tiny: Path) -> None:
    sc = load(tiny, warmup_h=0.5)
    s = summary(run(sc))
    k = flatten(s)
    sites = [w.id for w in sc.warehouses]
    assert set(k) == set(KPIS) | {f"{n}@{w}" for n in SITE_KPIS for w in sites}
    assert k["inventory_sync_p95_s"] == s["latency"]["inventory_sync"]["p95"]
    assert k["unexplained_final_units"] == s["divergence"]["unexplained_final_units"]
    assert k["erp_api_calls"] == s["api_calls"]["erp"]
    assert s["warmup_h"] == 0.5  # summary() cuts it: the experiment adds no second cut


def test_real_runs_are_deterministic_stored_and_replayable(tiny: Path, tmp_path: Path) -> None:
    out = tmp_path / "exp"
    exp = run_experiment(patterns(tiny), 2, executor=SerialExecutor(), out=out,
                         keep_timeseries=True, kpi="unexplained_final_units")
    again = run_experiment(patterns(tiny), 2, executor=SerialExecutor())
    pd.testing.assert_frame_equal(stable(exp.tables["runs"]), stable(again.tables["runs"]))

    loaded = results.load(out)
    assert set(loaded) == {"runs", "summary", "ranking", "configs", "failures", "timeseries"}
    for name, df in exp.tables.items():
        pd.testing.assert_frame_equal(loaded[name], df, check_dtype=False, obj=name)
    meta = results.load_meta(out)
    assert meta["status"] == "done" and meta["seeds"]["c01"] == replication_seeds(7, 2)
    assert meta["versions"]["numpy"] and "revision" in meta["git"]
    assert meta["configs"][1]["scenario"]["patterns"]["inventory"] == "event_driven"
    assert "## Ranking by unexplained_final_units" in (out / "report.md").read_text()

    # The stored scenario of c01/r001 is that run: same seed, same KPIs, through `twin run`.
    path = results.run_dir(out, "c01", 1) / "scenario.json"
    sc = load(path)
    row = exp.tables["runs"].iloc[3]
    assert (sc.seed, sc.patterns.inventory) == (row["seed"], "event_driven")
    assert flatten(summary(run(sc)))["unexplained_final_units"] == row["unexplained_final_units"]
    stored = json.loads((path.parent / "summary.json").read_text())
    assert stored["seed"] == row["seed"]
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "replay")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["unexplained_final_units"] == row["unexplained_final_units"]


def test_json_scenarios_load_and_bad_ones_are_named(tiny: Path, tmp_path: Path) -> None:
    (task,) = tasks_for(patterns(tiny)[:1], 1)
    p = tmp_path / "sc.json"
    p.write_text(task.scenario.model_dump_json(by_alias=True))
    assert load(p) == task.scenario
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ScenarioError, match=r"bad\.json: not valid JSON"):
        load(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ScenarioError, match="expected a table of fields, got list"):
        load(bad)


def crash_configs(tiny: Path) -> list[Config]:
    return expand([tiny], {"description": ["fine", "crash"]})


@pytest.mark.parametrize(("run_fn", "error"), [
    (raising_run, "RuntimeError: injected failure"),
    (dying_run, "the worker process running this run died"),
])
def test_a_failed_run_is_reported_with_seed_and_replay_and_the_others_finish(
        tiny: Path, tmp_path: Path, run_fn: RunFn, error: str) -> None:
    out = tmp_path / "exp"
    ex = ProcessExecutor(2)
    try:
        exp = run_experiment(crash_configs(tiny), 3, executor=ex, run_fn=run_fn, out=out)
    finally:
        ex.close()
    (f,) = exp.failures
    replay = results.run_dir(out, "c01", 1) / "scenario.json"
    assert (f.config_id, f.replication, f.seed) == ("c01", 1, CRASH_SEED)
    assert f.error.startswith(error) and f.replay == f"twin run {replay}"
    assert load(replay).seed == CRASH_SEED
    runs = exp.tables["runs"]
    assert runs["ok"].tolist() == [True] * 4 + [False, True]
    assert runs["inventory_sync_p95_s"].notna().sum() == 5
    assert exp.estimates("inventory_sync_p95_s")["c01"].n == 2
    report = (out / "report.md").read_text()
    assert "## Failed runs" in report and f"seed {CRASH_SEED}" in report and str(replay) in report
    assert results.load(out)["failures"]["seed"].tolist() == [CRASH_SEED]


def test_process_pool_gives_the_same_answers_as_serial(tiny: Path) -> None:
    serial = run_experiment(patterns(tiny), 2, executor=SerialExecutor())
    ex = ProcessExecutor(2)
    try:
        parallel = run_experiment(patterns(tiny), 2, executor=ex)
    finally:
        ex.close()
    pd.testing.assert_frame_equal(stable(serial.tables["runs"]), stable(parallel.tables["runs"]))


def test_dask_local_cluster_runs_the_sweep_and_reports_failures(tiny: Path,
                                                                tmp_path: Path) -> None:
    import distributed

    from sim.executors import DaskExecutor

    dist: Any = distributed  # untyped: mypy would flag every call

    serial = run_experiment(patterns(tiny), 2, executor=SerialExecutor())
    # Worker processes, as on a real cluster: tasks and results cross a process boundary.
    with dist.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                      dashboard_address=None) as cluster:
        ex = DaskExecutor(cluster.scheduler_address)
        try:
            assert ex.workers == 2
            on_dask = run_experiment(patterns(tiny), 2, executor=ex)
            failing = run_experiment(crash_configs(tiny), 3, executor=ex, run_fn=raising_run,
                                     out=tmp_path / "exp")
        finally:
            ex.close()
    pd.testing.assert_frame_equal(stable(serial.tables["runs"]), stable(on_dask.tables["runs"]))
    assert on_dask.meta["executor"] == "DaskExecutor"
    (f,) = failing.failures
    assert (f.seed, f.error) == (CRASH_SEED, "RuntimeError: injected failure")
    assert failing.tables["runs"]["ok"].sum() == 5


def test_simulate_returns_kpis_summary_and_series(tiny: Path) -> None:
    out = simulate(load(tiny))
    assert out.kpis == flatten(out.summary) and out.series is not None
    assert len(out.series["t"]) == len(out.series["divergence_units"]) > 10
