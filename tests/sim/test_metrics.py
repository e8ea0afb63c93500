from __future__ import annotations

from typing import Any

import numpy as np

from sim.metrics import affects_stock, fault_table, time_to_consistency
from sim.scenario import Scenario
from sim.twin import RunResult


def run(windows: list[tuple[str, float, float]], unexplained: list[int],
        in_flight: list[int]) -> RunResult:
    """A result with a series sampled every 100 s and no warm-up: only what the metrics read."""
    n = len(unexplained)
    series: dict[str, Any] = {"t": np.arange(n) * 100.0,
                              "unexplained_units": np.array(unexplained),
                              "in_flight_units": np.array(in_flight)}
    return RunResult(scenario=Scenario.model_validate({"name": "t", "warmup_h": 0}), series=series,
                     latency={}, latency_at={}, counts={}, check={}, bus={}, api_calls={},
                     warehouse_blocked_s=0.0, fault_windows=windows, wall_s=0.0, events=0)


def test_carrier_faults_cannot_affect_stock_and_others_can() -> None:
    assert not affects_stock("carrier down")
    assert affects_stock("erp down") and affects_stock("wms_erp partition")


def test_time_to_consistency_counts_from_the_last_fault_that_can_affect_stock() -> None:
    # ERP down 200-400 s; back in sync at 600 s; a carrier outage ends later, at 800 s.
    r = run([("erp down", 200, 400), ("carrier down", 500, 800)],
            unexplained=[0, 0, 5, 9, 9, 4, 0, 0, 0, 0], in_flight=[1] * 10)
    assert time_to_consistency(r) == 200.0  # from 400 s, not from the carrier's 800 s


def test_a_run_with_only_stockless_faults_is_consistent_at_once() -> None:
    r = run([("carrier down", 100, 300)], unexplained=[0] * 5, in_flight=[0] * 5)
    assert time_to_consistency(r) == 0.0


def test_fault_table_gives_each_fault_its_peak_and_recovery() -> None:
    r = run([("erp down", 100, 300), ("wms down", 500, 600), ("carrier down", 700, 800)],
            unexplained=[0, 3, 7, 2, 0, 4, 6, 0, 0, 0], in_flight=[0] * 10)
    rows = {row["fault"]: row for row in fault_table(r)}
    assert rows["erp down"]["peak_divergence_units"] == 7
    assert rows["erp down"]["time_to_recover_s"] == 100.0  # 0 again at 400 s
    assert rows["wms down"]["peak_divergence_units"] == 6
    assert rows["wms down"]["time_to_recover_s"] == 100.0  # 0 again at 700 s
    assert rows["carrier down"]["affects_stock"] is False
    assert rows["carrier down"]["time_to_recover_s"] is None


def test_a_fault_never_recovered_from_says_so() -> None:
    r = run([("erp down", 100, 200)], unexplained=[0, 5, 5, 5], in_flight=[0] * 4)
    assert time_to_consistency(r) is None
    assert fault_table(r)[0]["time_to_recover_s"] is None


def test_unfinished_counts_what_started_and_never_finished() -> None:
    from sim.metrics import unfinished

    counts = {"orders_placed": 100, "orders_shipped": 80, "items_out_of_sync_final": 3}
    assert unfinished(counts, "order_to_ship") == 20
    assert unfinished(counts, "master_data_sync") == 3


def test_a_percentile_on_unfinished_work_is_censored_and_otherwise_unchanged() -> None:
    from sim.metrics import censored_percentile

    done = np.arange(1.0, 81.0)  # 80 finished in 1..80 s
    assert censored_percentile(done, 20, 95) == (None, True)  # p95 of 100 lies in the 20
    value, censored = censored_percentile(done, 20, 50)
    assert not censored and value == float(np.percentile(np.r_[done, [np.inf] * 20], 50))
    assert censored_percentile(done, 0, 95) == (float(np.percentile(done, 95)), False)
    assert censored_percentile(np.empty(0), 0, 95) == (None, False)
