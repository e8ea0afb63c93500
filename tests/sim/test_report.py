from __future__ import annotations

from sim.report import seed_statement


def test_one_seed_for_all_scenarios_is_stated_with_its_value() -> None:
    assert seed_statement({"direct": 7, "hybrid": 7}) == "Seed 7 for every scenario."


def test_different_seeds_are_named_per_scenario_and_flagged() -> None:
    text = seed_statement({"baseline": 1, "carrier_failure": 2})
    assert "baseline 1" in text and "carrier_failure 2" in text
    assert "random variation" in text
    assert "every scenario" not in text
