from __future__ import annotations

from sim.wording import seed_statement


def test_one_seed_for_all_scenarios_is_stated_with_its_value() -> None:
    assert seed_statement({"direct": 7, "hybrid": 7}) == "Seed 7 for every scenario."


def test_different_seeds_are_named_per_scenario_and_flagged() -> None:
    text = seed_statement({"baseline": 1, "carrier_failure": 2})
    assert "baseline 1" in text and "carrier_failure 2" in text
    assert "random variation" in text
    assert "every scenario" not in text


def test_fault_rows_say_in_words_whether_and_when_stock_recovered() -> None:
    from sim.wording import fault_rows

    rows = fault_rows([
        {"fault": "erp down", "start_s": 0.0, "end_s": 10.0, "affects_stock": True,
         "peak_divergence_units": 5, "time_to_recover_s": None},
        {"fault": "carrier down", "start_s": 0.0, "end_s": 10.0, "affects_stock": False,
         "peak_divergence_units": 0, "time_to_recover_s": None},
    ])
    assert (rows[0]["affects stock"], rows[0]["recovered after (s)"]) == ("yes", "never")
    assert (rows[1]["affects stock"], rows[1]["recovered after (s)"]) == ("no", "n/a")


def test_overlay_plots_shade_every_scenarios_faults_and_share_common_ones() -> None:
    from types import SimpleNamespace
    from typing import Any

    from sim.wording import shaded_windows

    def result(name: str, windows: list[tuple[str, float, float]]) -> Any:
        return SimpleNamespace(scenario=SimpleNamespace(name=name), fault_windows=windows)

    shared = ("erp down", 100.0, 200.0)
    got = shaded_windows([result("a", [shared]),
                          result("b", [shared, ("carrier down", 300.0, 400.0)])])
    assert got == [shared, ("b: carrier down", 300.0, 400.0)]


def test_an_slo_on_unfinished_work_says_so_and_a_miss_says_by_how_much() -> None:
    from sim.wording import slo_measure

    assert "1,267 operations that never finished" in slo_measure(
        {"censored": True, "n_unfinished": 1267, "value_s": None, "met": False, "max_s": 60})
    assert slo_measure({"censored": False, "value_s": 90.0, "met": False, "max_s": 60}) \
        == "measured 90 s, 30 s over"


def test_traffic_statement_says_whether_the_designs_saw_the_same_traffic() -> None:
    from sim.wording import traffic_statement

    same = {"orders": 1450, "movements": 49717, "digest": "ab" * 12}
    text = traffic_statement({"direct": same, "hybrid": same})
    assert text.startswith("Every scenario was offered identical traffic (1,450 orders")
    other = {**same, "orders": 1500, "digest": "cd" * 12}
    text = traffic_statement({"direct": same, "peak": other})
    assert "different traffic" in text and "peak 1,500 orders" in text


def test_kpi_slos_say_by_how_much_they_missed_in_whole_numbers() -> None:
    from sim.wording import slo_measure

    miss = {"kpi": "unexplained_final_units", "max": 0.0, "min": None, "value": 11652.0,
            "censored": False, "met": False}
    assert slo_measure(miss) == "measured 11,652, 11,652 over"
    under = {"kpi": "slos", "max": None, "min": 5.0, "value": 3.0, "censored": False,
             "met": False}
    assert slo_measure(under) == "measured 3, 2 under"
    assert "never finished" in slo_measure({**miss, "censored": True, "value": None})
    assert slo_measure({**miss, "value": None}) == "no value (never reached)"
