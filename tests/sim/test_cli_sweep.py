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
    assert "| c00 | inventory=direct |" in res.stdout
    assert "| rank | config | label | mean | 95% CI | CI overlaps |" in res.stdout
    assert "No winner on lost" in res.stdout  # nothing is lost by either: the CIs are [0, 0]
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
