"""The verdict: the Pareto set, the pick, the reasons, and the short terminal summary."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sim.cli import app
from sim.decision import Option, decide, markdown, pareto_set, terminal
from sim.kpis import KPIS
from sim.stats import estimate


def option(name: str, missed: tuple[str, ...] = (), slos: int = 3, runs: int = 1,
           **kpis: float) -> Option:
    base = {"damage": 0.0, "inventory_sync_p95_s": 10.0, "api_calls": 1000.0,
            "time_to_consistency_s": 60.0}
    values = {**base, **kpis}
    names = [f"slo-{i}" for i in range(slos - len(missed))] + list(missed)
    return Option(
        name,
        {k: estimate([values.get(k, 0.0)] * runs) for k in KPIS},
        {n: (0 if n in missed else runs, runs) for n in names},
        {n: f"measured too much for {n}" for n in missed},
    )


def test_the_pareto_set_drops_only_options_beaten_on_every_criterion() -> None:
    a = option("a", damage=0, inventory_sync_p95_s=5, api_calls=900)
    b = option("b", damage=0, inventory_sync_p95_s=6, api_calls=950)  # a beats it everywhere
    c = option("c", damage=10, inventory_sync_p95_s=1, api_calls=2000)  # fastest: kept
    twin = option("twin", damage=0, inventory_sync_p95_s=5, api_calls=900)  # equal to a: kept
    assert pareto_set([a, b, c, twin]) == ["a", "c", "twin"]
    undefined = option("u", inventory_sync_p95_s=float("nan"))
    assert "u" not in pareto_set([a, undefined])


def test_the_pick_meets_every_slo_even_when_another_ranks_better() -> None:
    cheap = option("cheap", missed=("inventory_sync p95 <= 300 s",), damage=0, api_calls=10)
    safe = option("safe", damage=0, api_calls=5000)
    d = decide([cheap, safe])
    assert d.pick == "safe" and d.meets_all == ("safe",)
    assert d.sentences[0].startswith("Pick safe: it meets all 3 SLOs (no other option does)")
    assert "cheap misses 1 of 3 SLOs (inventory_sync p95 <= 300 s: measured too much" \
        in d.sentences[1]


def test_when_nothing_meets_every_slo_the_fewest_misses_win_and_damage_is_named() -> None:
    bad = option("direct", missed=("a", "b"), damage=11_652, unexplained_final_units=11_652,
                 updates_given_up=2_154, time_to_consistency_s=float("nan"))
    less = option("hybrid", missed=("a",), damage=0, time_to_consistency_s=960)
    d = decide([bad, less])
    assert d.pick == "hybrid"
    assert d.sentences[0].startswith("No option meets every SLO; hybrid misses the fewest (1")
    why = d.sentences[1]
    assert "gave up 2,154 updates and left 11,652 units unexplained" in why
    assert "never got stock consistent again" in why
    with_best = decide([bad, less, option("x")]).sentences
    assert with_best[0].startswith("Pick x")
    assert "got stock consistent 16 min after the last fault" in with_best[2]  # hybrid's


def test_dead_letters_are_not_counted_again_as_lost() -> None:
    o = option("orchestrated", damage=580, dead_letters_left=580, lost=580)
    why = decide([option("hybrid"), o]).sentences[1]
    assert "left 580 dead letters nobody redrove" in why and "lost" not in why


def test_ties_are_ties_and_the_terminal_summary_is_short() -> None:
    opts = [option(n, damage=0) for n in ("event_driven", "hybrid")] + [
        option("orchestrated", missed=("x",), damage=5_940), option("direct", damage=13_928)]
    d = decide(opts)
    assert [e.rank for e in d.ranking.entries] == [1, 1, 3, 4]
    text = terminal(d, "results/demo")
    lines = text.splitlines()
    assert len(lines) < 30 and lines[0].startswith("Decision: Pick event_driven")
    assert "1. event_driven 0 (tie), 1. hybrid 0 (tie)" in text
    assert "tie at 0" in text and "overlap" not in text
    assert lines[-1] == "Details: results/demo/decision.md"
    md = markdown(d, "four patterns")
    assert md.startswith("# Decision: four patterns") and "| hybrid (Pareto) |" in md


def test_replications_print_intervals_only_from_three_runs() -> None:
    two = [Option(n, {k: estimate([v, v + 1]) for k in KPIS}, {}) for n, v in
           (("a", 1.0), ("b", 5.0))]
    assert "±" not in terminal(decide(two, "inventory_sync_p95_s"))
    assert "at least 3 replications" in terminal(decide(two, "inventory_sync_p95_s"))
    three = [Option(n, {k: estimate([v, v + 1, v + 2]) for k in KPIS}, {}) for n, v in
             (("a", 1.0), ("b", 50.0))]
    assert "1. a 2 ± 2.48" in terminal(decide(three, "inventory_sync_p95_s"))


def test_twin_compare_prints_the_verdict_and_writes_decision_md(tmp_path: Path) -> None:
    def scenario(name: str, pattern: str) -> Path:
        p = tmp_path / f"{name}.toml"
        p.write_text(f'name = "{name}"\nseed = 3\nduration_h = 3\n[catalog]\nskus = 100\n'
                     '[[warehouses]]\nid = "WH1"\nmovements_per_hour = 600\n'
                     '[shop]\norders_per_hour = 20\n'
                     f'[patterns]\ninventory = "{pattern}"\n'
                     '[[faults.outages]]\nsystem = "erp"\nstart_h = 1\nduration_h = 0.5\n'
                     '[[slos]]\nkpi = "unexplained_final_units"\nmax = 0\n')
        return p

    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["compare", str(scenario("direct", "direct")),
                                   str(scenario("hybrid", "hybrid")), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("Decision: Pick hybrid: it meets all 1 SLOs")
    assert len(res.output.splitlines()) < 30
    assert "direct misses 1 of 1 SLOs (unexplained_final_units <= 0: measured" in res.output
    assert "offered identical traffic" in res.output
    md = (out / "decision.md").read_text()
    assert "## SLOs per option" in md and "- unexplained_final_units <= 0: MISSED" in md
    assert json.loads((out / "hybrid" / "summary.json").read_text())["slos"][0]["met"]
    # The report as a page too, for the comparison and for each run.
    assert "<canvas" not in (out / "report.html").read_text()[:200]  # drawn by the browser
    assert all((out / n / "report.html").stat().st_size > 10_000 for n in ("direct", "hybrid"))
    bad = CliRunner().invoke(app, ["compare", str(scenario("a", "direct")), "--kpi", "speed",
                                   "--out", str(out)])
    assert bad.exit_code == 2 and "unknown KPI 'speed'" in bad.output
