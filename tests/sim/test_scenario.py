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
        ("colour = 'red'", "colour", "unknown field"),
        ("[erp.api]\nworkes = 3", "erp.api.workes", "did you mean 'workers'?"),
        ("[[warehouses]]\nid = 'A'\nmovments_per_hour = 3", "warehouses.0.movments_per_hour",
         "did you mean 'movements_per_hour'?"),
        ("duration_h = 'long'", "duration_h", "valid number"),
        ("duration_h = -1", "duration_h", "greater than 0"),
        ("[erp.api]\nservice_time_s = { kind = 'gamma', mean = 1 }", "erp.api.service_time_s",
         "does not match any of the expected tags"),
        ("[erp.api]\nservice_time_s = { kind = 'uniform', low = 5, high = 1 }",
         "erp.api.service_time_s.uniform.high", "must be >= low"),
        ("[patterns]\ninventory = 'carrier_pigeon'", "patterns.inventory", "direct"),
        ("[[warehouses]]\nid = 'A'\n[[warehouses]]\nid = 'A'", "(the scenario as a whole)",
         "unique"),
        ("[shop]\ndaily_profile = [1, 2]", "shop", "24 values"),
        ("duration_h = 2\nwarmup_h = 3", "(the scenario as a whole)", "warmup_h"),
        ("duration_h = 6\n[[faults.outages]]\nsystem = 'erp'\nstart_h = 10\nduration_h = 1",
         "(the scenario as a whole)", "faults.outages.0 starts at 10 h"),
        ("duration_h = 6\n[[erp.api.maintenance]]\nstart_h = 7\nduration_h = 1",
         "(the scenario as a whole)", "erp.api.maintenance.0 starts at 7 h"),
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
    assert "'catalog'" not in msg  # a whole-scenario error does not dump the scenario


def test_invalid_toml_missing_parent_and_cycles(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load(write(tmp_path, "broken.toml", "name = \n"))
    with pytest.raises(ScenarioError, match=r"orphan\.toml: field 'extends': no scenario file "
                       r"'gone\.toml' \(looked for .*gone\.toml\)"):
        load(write(tmp_path, "orphan.toml", 'extends = "gone.toml"\n'))
    with pytest.raises(ScenarioError, match="no such scenario file"):
        load(tmp_path / "nowhere.toml")
    (tmp_path / "blob.toml").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0")
    with pytest.raises(ScenarioError, match=r"blob\.toml: a binary file, not a scenario"):
        load(tmp_path / "blob.toml")
    (tmp_path / "latin.toml").write_bytes("name = 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(ScenarioError, match="not UTF-8 text"):
        load(tmp_path / "latin.toml")
    write(tmp_path, "a.toml", 'extends = "b.toml"\n')
    with pytest.raises(ScenarioError, match=r"cycle: b\.toml -> a\.toml -> b\.toml"):
        load(write(tmp_path, "b.toml", 'extends = "a.toml"\n'))
    with pytest.raises(ScenarioError, match="field 'extends'"):
        load(write(tmp_path, "num.toml", "extends = 3\n"))


def test_every_field_of_the_schema_has_a_description() -> None:
    schema = json_schema()
    models = {"Scenario": schema, **schema.get("$defs", {})}
    bare = [f"{name}.{field}" for name, model in models.items()
            for field, spec in model.get("properties", {}).items() if not spec.get("description")]
    assert bare == [], f"fields without a description in `twin schema`: {bare}"


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


def test_lists_replace_under_extends_unless_the_key_ends_in_plus(tmp_path: Path) -> None:
    write(tmp_path, "base.toml", "[[faults.outages]]\nsystem = 'erp'\nstart_h = 1\n"
          "duration_h = 1\n")
    replaced = load(write(tmp_path, "r.toml", "extends = 'base.toml'\n[[faults.outages]]\n"
                          "system = 'wms'\nstart_h = 2\nduration_h = 1\n"))
    assert [o.system for o in replaced.faults.outages] == ["wms"]
    appended = load(write(tmp_path, "a.toml", "extends = 'base.toml'\n"
                          "[[faults.\"outages+\"]]\nsystem = 'wms'\nstart_h = 2\n"
                          "duration_h = 1\n"))
    assert [o.system for o in appended.faults.outages] == ["erp", "wms"]
    alone = load(write(tmp_path, "alone.toml", "[[faults.\"outages+\"]]\nsystem = 'carrier'\n"
                       "start_h = 2\nduration_h = 1\n"))  # nothing to append to: just the list
    assert [o.system for o in alone.faults.outages] == ["carrier"]


def test_a_recurring_window_expands_to_every_occurrence() -> None:
    from sim.scenario import Window, spans

    nightly = Window(start_h=2, duration_h=2, every_h=24)
    assert nightly.spans(3 * 86400) == [(7200.0, 14400.0), (93600.0, 100800.0),
                                        (180000.0, 187200.0)]
    sunday = Window(start_h=144, duration_h=24, every_h=168, until_h=400)
    assert [a / 3600 for a, _ in sunday.spans(10**9)] == [144.0, 312.0]
    assert spans([sunday, Window(start_h=1, duration_h=1)], 10**9)[0] == (3600.0, 7200.0)
    with pytest.raises(ValueError, match="never end"):
        Window(start_h=0, duration_h=24, every_h=24)
    with pytest.raises(ValueError, match="until_h"):
        Window(start_h=0, duration_h=1, until_h=5)
