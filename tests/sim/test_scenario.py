from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from sim.scenario import Pattern, Scenario, ScenarioError, json_schema, load

SCENARIOS = Path(__file__).parents[2] / "scenarios"


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_every_shipped_scenario_loads() -> None:
    # scenarios/sweeps/ holds sweep files (tests/sim/test_sweep.py loads those)
    files = sorted(f for f in SCENARIOS.rglob("*.toml") if "sweeps" not in f.parts)
    assert len(files) >= 5
    for f in files:
        assert isinstance(load(f), Scenario), f


def test_extends_merges_tables_key_by_key(tmp_path: Path) -> None:
    write(tmp_path, "base.toml", 'name = "base"\nseed = 3\n[erp.api]\nworkers = 4\n'
                                 'rate_limit_per_min = 100\n')
    child = write(tmp_path, "child.toml", 'extends = "base.toml"\nname = "child"\n'
                                          '[erp.api]\nworkers = 9\n')
    sc = load(child)
    assert (sc.name, sc.seed, sc.erp.api.workers, sc.erp.api.rate_limit_per_min) == (
        "child", 3, 9, 100)


def test_overrides_and_default_name(tmp_path: Path) -> None:
    sc = load(write(tmp_path, "quiet_day.toml", "duration_h = 2\n"), seed=9)
    assert (sc.name, sc.seed, sc.duration_h) == ("quiet_day", 9, 2)


def test_hybrid_resolves_to_the_articles_recommendation() -> None:
    p = Scenario(name="x").patterns
    assert p.resolved("order_release") is Pattern.DIRECT
    assert p.resolved("inventory") is Pattern.EVENT_DRIVEN


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("colour = 'red'", "colour", "Extra inputs are not permitted"),
        ("duration_h = 'long'", "duration_h", "valid number"),
        ("duration_h = -1", "duration_h", "greater than 0"),
        ("[erp.api]\nservice_time_s = { kind = 'gamma', mean = 1 }", "erp.api.service_time_s",
         "does not match any of the expected tags"),
        ("[erp.api]\nservice_time_s = { kind = 'uniform', low = 5, high = 1 }",
         "erp.api.service_time_s.uniform.high", "must be >= low"),
        ("[patterns]\ninventory = 'carrier_pigeon'", "patterns.inventory", "direct"),
        ("[[warehouses]]\nid = 'A'\n[[warehouses]]\nid = 'A'", "(top level)", "unique"),
        ("[shop]\ndaily_profile = [1, 2]", "shop", "24 values"),
        ("duration_h = 2\nwarmup_h = 3", "(top level)", "warmup_h"),
        ("[[faults.outages]]\nsystem = 'mainframe'\nstart_h = 1\nduration_h = 1",
         "faults.outages.0.system", "'erp'"),
    ],
)
def test_bad_files_name_file_field_and_expectation(
    tmp_path: Path, text: str, field: str, expected: str
) -> None:
    path = write(tmp_path, "bad.toml", text + "\n")
    with pytest.raises(ScenarioError) as info:
        load(path)
    msg = str(info.value)
    assert str(path) in msg and f"field '{field}" in msg and expected in msg, msg


def test_invalid_toml_missing_parent_and_cycles(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load(write(tmp_path, "broken.toml", "name = \n"))
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load(write(tmp_path, "orphan.toml", 'extends = "gone.toml"\n'))
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    with pytest.raises(ScenarioError, match=r"cycle: b\.toml -> a\.toml -> b\.toml"):
        load(write(tmp_path, "b.toml", 'extends = "a.toml"\n'))
    with pytest.raises(ScenarioError, match="field 'extends'"):
        load(write(tmp_path, "num.toml", "extends = 3\n"))


def test_json_schema_documents_the_knobs() -> None:
    schema = json_schema()
    props = schema["properties"]
    assert "description" in props["drain_h"]
    assert "Distribution" in str(schema) or "lognormal" in str(schema)


@pytest.mark.parametrize(("slo", "says"), [
    ({"kpi": "unexplained_final_units"}, "exactly one of `max` and `min`"),
    ({"kpi": "no_such_kpi", "max": 1}, "unknown KPI 'no_such_kpi'"),
    ({"kpi": "slos_met", "min": 1}, "unknown KPI 'slos_met'"),
    ({"flow": "order_to_ship"}, "needs `max_s`"),
    ({"flow": "order_to_ship", "max_s": 1, "kpi": "lost", "max": 0}, "either a `flow`"),
    ({"percentile": 95}, "either a `flow`"),
])
def test_an_slo_is_a_latency_bound_or_a_kpi_bound(slo: dict[str, object], says: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(says)):
        Scenario.model_validate({"name": "t", "slos": [slo]})
    assert Scenario.model_validate(
        {"name": "t", "slos": [{"kpi": "dead_letters_left", "max": 0}]}).slos[0].name \
        == "dead_letters_left <= 0"
