"""`twin sweep` and `twin capacity` from the command line, on one-hour scenarios."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sim import results
from sim.cli import app
from tests.sim.fakes import TINY


def sweep_file(tmp_path: Path, grid: str) -> Path:
    (tmp_path / "tiny.toml").write_text(TINY)
    f = tmp_path / "sw.toml"
    f.write_text(f'base = "tiny.toml"\nreplications = 2\nkpi = "unexplained_final_units"\n'
                 f"[grid]\n{grid}\n")
    return f


def test_twin_sweep_prints_the_table_and_ranking_and_writes_the_store(tmp_path: Path) -> None:
    f = sweep_file(tmp_path, '"patterns.inventory" = ["direct", "event_driven"]')
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["sweep", str(f), "--out", str(out), "--workers", "1",
                                   "--kpi", "lost", "--timeseries"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].startswith("Decision: Pick inventory=") and len(lines) < 30
    assert "inventory=direct" in res.stdout and "inventory=event_driven" in res.stdout
    # Nothing is lost by either in any run: a tie, not "overlapping intervals".
    assert "No winner on lost: " in res.stdout and "tie at 0" in res.stdout
    assert "overlap" not in res.stdout
    assert (out / "decision.md").read_text().startswith("# Decision: sweep sw")
    tables = results.load(out)
    assert len(tables["runs"]) == 4 and "timeseries" in tables
    assert results.load_meta(out)["kpi"] == "lost"
    assert (out / "report.md").read_text().startswith("# Experiment: sw")


def test_twin_sweep_rejects_a_bad_file_naming_the_field(tmp_path: Path) -> None:
    f = sweep_file(tmp_path, '"erp.api.workers" = [0]')
    res = CliRunner().invoke(app, ["sweep", str(f), "--workers", "1"])
    assert res.exit_code == 2
    assert "sw.toml" in res.output and "field 'erp.api.workers'" in res.output
    res = CliRunner().invoke(app, ["sweep", str(sweep_file(tmp_path, "")), "--kpi", "speed"])
    assert res.exit_code == 2 and "unknown KPI 'speed'" in res.output


def test_twin_capacity(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY)
    out = tmp_path / "cap"
    res = CliRunner().invoke(app, [
        "capacity", str(tmp_path / "tiny.toml"), "--slo", "60", "--lo", "200", "--hi", "400",
        "--steps", "1", "--replications", "2", "--workers", "1", "--set", "faults.outages=[]",
        "--guard", "lost=0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "| tiny | 400 | - | meets the SLO up to the top of the range (400) at least |" in (
        res.stdout)
    assert results.load_meta(out)["guards"] == {"lost": 0.0}
    res = CliRunner().invoke(app, ["capacity", str(tmp_path / "tiny.toml"), "--set", "nokey"])
    assert res.exit_code == 2 and "KEY=VALUE" in res.output


def test_a_sweeps_verdict_counts_the_slos_met_in_each_run(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(
        TINY + '[[slos]]\nkpi = "unexplained_final_units"\nmax = 0\n'
        '[[slos]]\nflow = "inventory_sync"\npercentile = 50\nmax_s = 100000\n')
    f = tmp_path / "sw.toml"
    f.write_text('base = "tiny.toml"\nreplications = 3\nkpi = "unexplained_final_units"\n'
                 '[grid]\n"patterns.inventory" = ["direct", "event_driven"]\n'
                 '"direct.retries" = [0]\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["sweep", str(f), "--out", str(out), "--workers", "1"])
    assert res.exit_code == 0, res.output
    runs = results.load(out)["runs"]
    direct = runs[runs["label"].str.contains("direct")]
    assert set(direct["slos_declared"]) == {"unexplained_final_units <= 0; "
                                            "inventory_sync p50 <= 100000 s"}
    assert (direct["slos_missed"] == "unexplained_final_units <= 0").all()
    assert "Pick inventory=event_driven" in res.stdout.splitlines()[0]
    md = (out / "decision.md").read_text()
    assert "- unexplained_final_units <= 0: MISSED in 0 of 3 runs" in md
