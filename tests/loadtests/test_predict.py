"""`loadtests.predict`: the live figures read from a run directory, the twin's on the same
plan, and prediction.md with the relative errors."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np

from loadtests.predict import drain_after, measured, predict_run

FIXTURE = Path(__file__).resolve().parents[1] / "sim" / "fixtures" / "calibrate" / "run"


def test_drain_is_the_time_from_the_outage_s_end_to_5_percent_of_the_peak() -> None:
    t = np.arange(10.0)
    backlog = np.array([0, 10, 100, 200, 150, 60, 11, 9, 0, 0], dtype=float)
    assert drain_after(t, backlog, 3.0) == 4.0  # 9 <= 0.05 * 200 first at t = 7
    assert drain_after(t[:7], backlog[:7], 3.0) is None  # not drained within the samples
    assert drain_after(t, np.zeros(10), 3.0) is None


def test_the_live_figures_align_the_sampler_s_clock_at_the_outage() -> None:
    # the fixture's sampler runs 1.5 s ahead of the plan; its ERP outage is 10-14 s
    live = measured(FIXTURE, (10.0, 14.0))
    assert live.backlog_peak == 405
    assert live.drain_s is not None and abs(live.drain_s - 6.0) < 1e-9
    assert live.erp_calls == 400  # partner_calls.csv's ERP rows
    assert live.sync_p95_s is None  # the live run does not measure it


def test_prediction_md_compares_the_twin_s_median_with_the_measurement(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    text = predict_run(run, [1, 2]).read_text()
    assert (run / "calibrated.toml").is_file() and (run / "prediction-backlog.png").is_file()
    row = re.search(r"\| ERP backlog peak \(movements\) \| ([\d,]+) \| ([\d,.]+) \| "
                    r"([\d,.]+) - ([\d,.]+) \| ([+-]\d+)% \|", text)
    assert row is not None, text
    live, median, low, high, err = (float(g.replace(",", "")) for g in row.groups())
    assert live == 405 and low <= median <= high
    assert abs(err - round(100 * (median - live) / live)) <= 1
    assert "| inventory-sync p95 (s) | - |" in text
    assert "faults[1] (toxic reset_peer on link wms): not modelled" in text
