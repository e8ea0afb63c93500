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
                     latency={}, latency_at={}, latency_site={}, counts={}, check={}, bus={},
                     api_calls={},
                     api_cost=0.0, warehouse_blocked_s=0.0, fault_windows=windows, wall_s=0.0,
                     events=0)


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
    # An order cancelled before it shipped will not ship: it is closed, not unfinished.
    assert unfinished({**counts, "orders_cancelled_unshipped": 15}, "order_to_ship") == 5
    assert unfinished({"cancels_requested": 10, "orders_cancelled": 6, "cancels_refused": 3},
                      "cancel_to_confirmed") == 1
    assert unfinished({"returns": 4, "credit_memos": 4}, "return_to_credit") == 0


def test_a_percentile_on_unfinished_work_is_censored_and_otherwise_unchanged() -> None:
    from sim.metrics import censored_percentile

    done = np.arange(1.0, 81.0)  # 80 finished in 1..80 s
    assert censored_percentile(done, 20, 95) == (None, True)  # p95 of 100 lies in the 20
    value, censored = censored_percentile(done, 20, 50)
    assert not censored and value == float(np.percentile(np.r_[done, [np.inf] * 20], 50))
    assert censored_percentile(done, 0, 95) == (float(np.percentile(done, 95)), False)
    assert censored_percentile(np.empty(0), 0, 95) == (None, False)


def test_summary_latency_percentiles_are_censored_where_they_fall_on_unfinished_work() -> None:
    from sim.metrics import latency_stats

    done = np.arange(1.0, 101.0)
    s = latency_stats(done, n_unfinished=10)  # 110 operations, the 10 slowest never finished
    assert s["p50"] == float(np.percentile(np.concatenate([done, np.full(10, np.inf)]), 50))
    assert s["p95"] is None and s["p99"] is None and s["censored"] == ["p95", "p99"]
    assert (s["n"], s["n_unfinished"], s["max"]) == (100, 10, 100.0)
    clean = latency_stats(done)
    assert clean["censored"] == [] and clean["p95"] == round(float(np.percentile(done, 95)), 3)
    assert latency_stats(np.empty(0))["p50"] is None


def _with_slos(slos: list[dict[str, Any]]) -> RunResult:
    r = run([], [0, 0], [0, 0])
    r.scenario = Scenario.model_validate({"name": "t", "slos": slos})
    r.latency, r.latency_at = {"order_to_ship": np.arange(1.0, 101.0)}, {
        "order_to_ship": np.arange(1.0, 101.0)}
    r.counts = {"orders_placed": 110, "orders_shipped": 100}
    return r


def test_slos_on_any_kpi_say_met_or_missed_and_unfinished_work_counts_against_them() -> None:
    from sim.metrics import slo_results

    r = _with_slos([{"kpi": "unexplained_final_units", "max": 0},
                    {"kpi": "orders_not_shipped", "max": 5},
                    {"kpi": "time_to_consistency_s", "max": 600},
                    {"kpi": "order_to_ship_p95_s", "max": 3600},
                    {"kpi": "erp_api_calls", "min": 1}])
    kpis = {"unexplained_final_units": 0.0, "orders_not_shipped": 10.0,
            "time_to_consistency_s": None, "order_to_ship_p95_s": float("inf"),
            "erp_api_calls": 0.0}
    got = {x["kpi"]: x for x in slo_results(r, kpis)}
    assert got["unexplained_final_units"]["met"]
    assert not got["orders_not_shipped"]["met"] and got["orders_not_shipped"]["value"] == 10
    assert not got["time_to_consistency_s"]["met"]  # never consistent: no value is a miss
    inf = got["order_to_ship_p95_s"]
    assert not inf["met"] and inf["censored"] and inf["value"] is None  # JSON-safe
    assert not got["erp_api_calls"]["met"] and got["erp_api_calls"]["name"] == "erp_api_calls >= 1"


def test_the_kpis_count_unfinished_work_from_the_summary() -> None:
    from sim.kpis import flatten
    from sim.metrics import summary

    r = _with_slos([])
    r.series = {**r.series, "t": np.array([0.0, 100.0]), "divergence_units": np.zeros(2),
                "skus_out_of_sync": np.zeros(2)}
    r.check, r.api_calls = {"lost": 0, "duplicated": 0, "unexpected": 0}, {"erp": 3, "wms": 2}
    r.counts.update({"movements_generated": 50, "movements_applied_in_erp": 45,
                     "orders_stuck": 4, "dead_letters_left": 2, "items_out_of_sync_final": 0,
                     "movements_given_up": 0})
    k = flatten(summary(r))
    assert (k["orders_not_shipped"], k["movements_never_applied"]) == (10, 5)
    assert (k["orders_stuck"], k["dead_letters_left"], k["api_calls"]) == (4, 2, 5)
    assert k["order_to_ship_p95_s"] == float("inf") and k["order_to_ship_p50_s"] == 55.5
