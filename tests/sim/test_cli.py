"""`twin validate`, `twin run --set` and `twin kpis` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sim.cli import app
from sim.kpis import KPIS
from tests.sim.fakes import TINY

ROOT = Path(__file__).resolve().parents[2]


def invoke(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.output


def test_validate_recognises_sweeps_empty_files_and_shows_the_resolved_scenario(
    tmp_path: Path,
) -> None:
    (tmp_path / "empty.toml").write_text("# nothing yet\n")
    code, out = invoke("validate", str(tmp_path / "empty.toml"),
                       str(ROOT / "scenarios/sweeps/movement_rate.toml"))
    assert code == 0, out
    assert "empty.toml (empty: every field takes its default)" in out
    assert "movement_rate.toml (sweep: 10 configurations x 3 replications)" in out
    code, out = invoke("validate", "--show", str(ROOT / "scenarios/patterns/direct.toml"))
    assert code == 0, out
    shown = json.loads(out.split("\n", 1)[1])
    assert shown["name"] == "direct" and shown["patterns"]["inventory"] == "direct"
    assert shown["erp"]["api"]["rate_limit_per_min"] == 600  # from baseline.toml, extended
    (tmp_path / "bad_sweep.toml").write_text('base = "nowhere.toml"\n[grid]\nseed = [1]\n')
    code, out = invoke("validate", str(tmp_path / "bad_sweep.toml"))
    assert code == 2 and "nowhere.toml" in out


def test_run_applies_set_and_names_a_bad_key(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(TINY)
    code, out = invoke("run", str(tmp_path / "tiny.toml"), "--out", str(tmp_path / "o"),
                       "--set", "warehouses.0.movements_per_hour=600", "--set",
                       'patterns.inventory="direct"')
    assert code == 0, out
    s = json.loads((tmp_path / "o" / "tiny" / "summary.json").read_text())
    assert s["patterns"]["inventory"] == "direct"
    assert 450 < s["counts"]["movements_generated"] < 750  # 600/h for an hour, not 300
    code, out = invoke("run", str(tmp_path / "tiny.toml"), "--set", "erp.api.workrs=3")
    assert code == 2 and "did you mean 'workers'?" in out
    code, out = invoke("run", str(tmp_path / "tiny.toml"), "--set", "nokey")
    assert code == 2 and "KEY=VALUE" in out


def test_kpis_lists_every_kpi_with_its_meaning() -> None:
    code, out = invoke("kpis")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == list(KPIS)
    assert "dead letters nobody redrove" in out and "(higher is better)" in out
