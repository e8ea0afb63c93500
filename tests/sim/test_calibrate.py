"""Calibration: the estimators recover known parameters, the twin's own run is recovered, bad
log lines are named, and `twin calibrate` writes scenarios that load and run."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from integration_core.engine.partners import Posting
from sim import calibrate as cb
from sim.cli import app
from sim.distributions import Constant, Exponential, Lognormal, Uniform
from sim.live import call_log
from sim.live.erp import LiveErp
from sim.scenario import Scenario, load
from sim.twin import Twin

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).parent / "fixtures" / "calibrate" / "run"


def _rel(got: float, want: float) -> float:
    return abs(got - want) / want


# -- estimators ------------------------------------------------------------------------------


@pytest.mark.parametrize(("dist", "family"), [
    (Exponential(mean=0.2), "exponential"),
    (Lognormal(mean=0.15, sigma=0.6), "lognormal"),
    (Uniform(low=0.1, high=0.3), "uniform"),
    (Constant(value=0.05), "constant"),
])
def test_each_family_is_recovered_and_chosen(dist: object, family: str) -> None:
    rng = np.random.default_rng(19)
    x = dist.block_draw(rng)(5000)  # type: ignore[attr-defined]
    fit = cb.fit_service_times(x)
    assert fit.best.family == family, [(f.family, f.ks) for f in fit.fits]
    assert fit.accepted  # the true family passes the KS test at 1%
    got = fit.best.dist
    # stated tolerances at n = 5000: means within 4%, sigma within 5%, bounds within 1%
    assert _rel(got.mean, dist.mean) < 0.04  # type: ignore[union-attr, attr-defined]
    if isinstance(dist, Lognormal):
        assert isinstance(got, Lognormal) and _rel(got.sigma, dist.sigma) < 0.05
    if isinstance(dist, Uniform):
        assert isinstance(got, Uniform)
        assert _rel(got.low, dist.low) < 0.01 and _rel(got.high, dist.high) < 0.01
    others = [f.ks for f in fit.fits if f.family != family and f.dist is not None]
    assert min(others) > fit.critical_ks or family == "constant"


def test_ks_statistic_is_the_largest_gap_of_the_cdfs() -> None:
    assert cb.ks_statistic(np.array([0.5]), Uniform(low=0, high=1)) == pytest.approx(0.5)
    # ECDF of {0.2, 0.4}: 0.5 at 0.2, 1 at 0.4; uniform CDF there 0.2, 0.4: gaps 0.3 and 0.6
    assert cb.ks_statistic(np.array([0.4, 0.2]), Uniform(low=0, high=1)) == pytest.approx(0.6)
    assert cb.ks_statistic(np.full(10, 3.0), Constant(value=3.0)) == 0.0
    assert cb.ks_statistic(np.full(10, 3.0), Constant(value=2.0)) == 1.0


def test_lognormal_is_not_fitted_to_zeros_and_the_reason_is_said() -> None:
    fit = cb.fit_service_times([0.0, 0.1, 0.2, 0.3])
    ln = next(f for f in fit.fits if f.family == "lognormal")
    assert ln.dist is None and "1 sample(s) <= 0" in ln.note
    with pytest.raises(cb.CalibrationError, match="no service-time samples"):
        cb.fit_service_times([])
    with pytest.raises(cb.CalibrationError, match=">= 0"):
        cb.fit_service_times([0.1, -1.0])


def test_the_per_item_time_of_bulk_calls_is_taken_out_before_the_fit() -> None:
    rng = np.random.default_rng(5)
    items = rng.integers(1, 500, 4000)
    fixed = rng.lognormal(math.log(0.01), 0.4, 4000)
    fit = cb.fit_service_times(fixed + 2e-4 * (items - 1), items)
    assert _rel(fit.per_item_s, 2e-4) < 0.05
    assert fit.best.family == "lognormal" and _rel(fit.mean_s, float(fixed.mean())) < 0.05
    assert fit.max_batch == int(items.max())


def test_changepoints_find_the_rate_steps_and_not_noise() -> None:
    rng = np.random.default_rng(3)
    flat = np.sort(rng.uniform(0, 600, 6000))
    assert len(cb.fit_stages(flat, 600)) == 1
    # 5/s for 200 s, 20/s for 100 s, 5/s for 300 s
    parts = [rng.uniform(a, b, rng.poisson(r * (b - a))) for a, b, r in
             [(0, 200, 5), (200, 300, 20), (300, 600, 5)]]
    stages = cb.fit_stages(np.concatenate(parts), 600)
    assert len(stages) == 3
    for got, (length, rate) in zip(stages, [(200, 5), (100, 20), (300, 5)], strict=True):
        assert abs(got.duration_s - length) < 5
        assert _rel(got.rate_per_s, rate) < 0.1


# -- a run of the twin itself ----------------------------------------------------------------


def _twin(movements_per_hour: float, **warehouse: object) -> Twin:
    sc = Scenario.model_validate({
        "name": "synthetic", "seed": 7, "duration_h": 0.25, "drain_h": 0.05,
        "shop": {"orders_per_hour": 0},
        "master_data": {"changes_per_hour": 0},
        "erp": {"api": {"workers": 8,
                        "service_time_s": {"kind": "lognormal", "mean": 0.05, "sigma": 0.5}}},
        "warehouses": [{"id": "WH1", "movements_per_hour": movements_per_hour,
                        "workers": 200, **warehouse}],
    })
    twin = Twin(sc)
    twin.land.erp_api.record = True  # the twin itself keeps no per-call records
    twin.run()
    return twin


def test_calibration_recovers_the_twin_s_own_rate_and_erp_service_time() -> None:
    twin = _twin(36_000)  # 10 movements a second
    rec = twin.land.erp_api.records()
    fit = cb.fit_service_times(rec.end - rec.start)
    assert fit.n > 5000
    assert fit.best.family == "lognormal"
    got = fit.best.dist
    assert isinstance(got, Lognormal)
    assert _rel(got.mean, 0.05) < 0.03 and _rel(got.sigma, 0.5) < 0.05
    occurred = twin.land.truth.occurred_at.values
    stages = cb.fit_stages(occurred, 900)
    assert len(stages) == 1 and _rel(stages[0].rate_per_s, 10) < 0.05


def test_a_load_plan_s_stages_drive_the_twin_s_movement_stream() -> None:
    # 300 s at 2/s, a ramp to 8/s over 300 s, then 300 s at 8/s
    stages = [{"duration_s": 300, "movements_per_hour": 7200},
              {"duration_s": 300, "movements_per_hour": 28_800, "ramp": True},
              {"duration_s": 300, "movements_per_hour": 28_800}]
    occurred = _twin(18_000, rate_stages=stages).land.truth.occurred_at.values
    counts = [np.count_nonzero((occurred >= a) & (occurred < a + 300)) for a in (0, 300, 600)]
    for got, want in zip(counts, [600, 1500, 2400], strict=True):  # the rate's integrals
        assert abs(got - want) < 4 * math.sqrt(want), counts


# -- reading logs ----------------------------------------------------------------------------


def test_a_bad_line_in_a_calls_log_is_named_by_file_line_and_column(tmp_path: Path) -> None:
    log = tmp_path / "calls.csv"
    log.write_text("timestamp,partner,operation,duration_s,batch_size\n"
                   "2026-12-03T10:00:00Z,erp,postings,0.012,50\n"
                   "\n"
                   "2026-12-03T10:00:01Z,erp,postings,fast,50\n")
    with pytest.raises(cb.CalibrationError) as e:
        cb.read_calls(log)
    assert str(e.value) == (f"{log}:4: column 4 (duration_s): expected seconds, a number >= 0, "
                            "got 'fast'")
    log.write_text("timestamp,partner,operation,duration_s\n1.5,sap,postings,0.1\n")
    with pytest.raises(cb.CalibrationError, match=re.escape(f"{log}:2: column 2 (partner)")):
        cb.read_calls(log)
    log.write_text("time,partner\n1,erp\n")
    with pytest.raises(cb.CalibrationError, match=re.escape(f"{log}:1: column 1: header")):
        cb.read_calls(log)


def test_a_movements_log_gives_stages_and_the_mix(tmp_path: Path) -> None:
    log = tmp_path / "movements.csv"
    rng = np.random.default_rng(11)
    times = np.sort(rng.uniform(0, 3600, 3600))
    kinds = rng.choice(["receipt", "pick", "pick", "pick"], 3600)
    log.write_text("timestamp,kind,sku\n" + "".join(
        f"{1_796_000_000 + t:.3f},{k},SKU-1\n" for t, k in zip(times, kinds, strict=True)))
    cal = cb.from_logs(log, None)
    assert len(cal.movement_stages) == 1 and _rel(cal.movement_stages[0].rate_per_s, 1) < 0.05
    assert cal.mix is not None and _rel(cal.mix["pick"] / 3600, 0.75) < 0.05
    out = tmp_path / "s.toml"
    sc = cb.write_scenario(cal, out, str(log))
    assert sc.warehouses[0].mix.pick == pytest.approx(cal.mix["pick"] / 3600)
    log.write_text("timestamp,kind\n1,receipt\n2,teleport\n")
    with pytest.raises(cb.CalibrationError, match=re.escape(f"{log}:3: column 2 (kind)")):
        cb.read_movements(log)


def test_the_live_erp_twin_records_its_calls_in_the_documented_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = call_log.CallLog(str(tmp_path / "calls.csv"))
    monkeypatch.setattr(call_log, "CALLS", log)
    erp = LiveErp(tmp_path / "erp.db")
    try:
        for n in (1, 3):
            erp.post([Posting(message_id=f"m{n}-{i}", movement_id=f"mv{n}-{i}", sku="SKU-1",
                              location="WH1", delta=1) for i in range(n)])
    finally:
        erp.close()
        log.close()
    calls = cb.read_calls(tmp_path / "calls.csv")
    assert calls.batches[("erp", "postings")] == [1, 3]
    assert all(d > 0 for d in calls.durations[("erp", "postings")])


def test_the_locustfile_mix_is_the_one_calibration_assumes() -> None:
    doc = (ROOT / "loadtests" / "locustfile.py").read_text()
    said = re.search(r"(\d+)% single movement, (\d+)% batch of ``TWIN_LOAD_BATCH`` \((\d+)\),"
                     r".*?(\d+)% order,", doc, re.S)
    assert said is not None
    single, share, batch, order = (int(g) for g in said.groups())
    assert (single / 100, share / 100, batch, order / 100) == (
        cb.LOCUST_SINGLE, cb.LOCUST_BATCH_SHARE, cb.LOCUST_BATCH, cb.LOCUST_ORDER)


# -- the command -----------------------------------------------------------------------------


def test_twin_calibrate_on_a_run_directory_writes_a_scenario_that_loads_and_runs(
    tmp_path: Path,
) -> None:
    out = tmp_path / "calibrated.toml"
    res = CliRunner().invoke(app, ["calibrate", str(FIXTURE), "-o", str(out)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "lognormal   D = " in text and "<- chosen" in text  # every family's figure
    assert "faults[1] (toxic reset_peer on link wms): not modelled" in text
    sc = load(out)
    assert sc.erp.api.service_time_s.kind == "lognormal"
    assert sc.erp.api.bulk_max_items == sc.bus.erp_batch_size == 199
    stages = sc.warehouses[0].rate_stages
    assert [s.duration_s for s in stages] == [20, 10] and stages[1].ramp
    # the measured rate (0.9 of the plan in the fixture's locust history) times 5.7 a request
    assert 0.8 * 40 * 5.7 * 3600 < stages[0].movements_per_hour < 40 * 5.7 * 3600
    [outage] = sc.faults.outages
    assert (outage.system, outage.start_h * 3600, outage.duration_h * 3600) == pytest.approx(
        ("erp", 10, 4))
    result = Twin(sc).run()
    assert result.counts["movements_generated"] > 1000
    assert result.check["lost"] == 0


def test_twin_calibrate_takes_a_shipped_load_plan_alone(tmp_path: Path) -> None:
    out = tmp_path / "spike.toml"
    res = CliRunner().invoke(app, ["calibrate", "--plan",
                                   str(ROOT / "loadtests/shapes/spike.toml"), "-o", str(out)])
    assert res.exit_code == 0, res.output
    sc = load(out)
    assert [s.movements_per_hour for s in sc.warehouses[0].rate_stages] == pytest.approx(
        [100 * 5.7 * 3600, 800 * 5.7 * 3600, 100 * 5.7 * 3600])
    assert [(o.system, round(o.start_h * 3600)) for o in sc.faults.outages] == [("erp", 32)]


def test_twin_calibrate_names_the_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "calls.csv"
    bad.write_text("timestamp,partner,operation,duration_s,batch_size\n1,erp,postings,0.1,0\n")
    res = CliRunner().invoke(app, ["calibrate", "--calls", str(bad), "-o",
                                   str(tmp_path / "x.toml")])
    assert res.exit_code == 2
    assert "column 5 (batch_size): expected a whole number >= 1" in res.output
    assert not (tmp_path / "x.toml").exists()
