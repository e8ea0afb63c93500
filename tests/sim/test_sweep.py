"""Sweep files: dotted paths, grid expansion, and errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim.sweep import SweepError, expand, load_sweep, resolve, set_path

SCENARIOS = Path(__file__).parents[2] / "scenarios"
BASELINE = SCENARIOS / "baseline.toml"


def write(tmp_path: Path, text: str, name: str = "s.toml") -> Path:
    p = tmp_path / name
    p.write_text(f'base = "{BASELINE}"\n' + text)
    return p


def test_set_path_walks_tables_and_list_indices() -> None:
    data = {"a": {"b": 1}, "w": [{"r": 1}, {"r": 2}], "m": None}
    set_path(data, "a.b", 5)
    set_path(data, "w.1.r", 9)
    set_path(data, "m.x", 3)  # a null table becomes a table
    set_path(data, "new", 1)  # unknown keys are added: the scenario validation names them
    assert data == {"a": {"b": 5}, "w": [{"r": 1}, {"r": 9}], "m": {"x": 3}, "new": 1}
    for path, msg in [("w.2.r", "index 2 out of range"), ("w.x", "not an index"),
                      ("a.b.c", "not a table or list"), ("a..b", "not a dotted path")]:
        with pytest.raises(ValueError, match=msg):
            set_path(data, path, 0)


def test_set_path_addresses_list_entries_by_id_or_all_of_them() -> None:
    data: dict[str, Any] = {"w": [{"id": "DC", "r": 1}, {"id": "3PL", "r": 2}]}
    set_path(data, "w.3PL.r", 7)
    assert data["w"] == [{"id": "DC", "r": 1}, {"id": "3PL", "r": 7}]
    set_path(data, "w.*.k", {"x": 1})
    assert [e["k"] for e in data["w"]] == [{"x": 1}, {"x": 1}]
    data["w"][0]["k"]["x"] = 2  # each entry has a copy of its own
    assert data["w"][1]["k"] == {"x": 1}
    with pytest.raises(ValueError, match=r"an id \(DC, 3PL\)"):
        set_path(data, "w.EAST.r", 0)


def test_resolve_changes_only_the_named_fields() -> None:
    base = resolve(BASELINE, {})
    sc = resolve(BASELINE, {"warehouses.0.movements_per_hour": 750, "erp.api.workers": 3,
                            "faults.outages": []})
    assert sc.warehouses[0].movements_per_hour == 750 and sc.erp.api.workers == 3
    assert sc.faults.outages == []
    assert sc.warehouses[0].workers == base.warehouses[0].workers
    assert sc.erp.api.rate_limit_per_min == base.erp.api.rate_limit_per_min
    assert sc.model_copy(update={"warehouses": base.warehouses, "erp": base.erp,
                                 "faults": base.faults}) == base


def test_grid_expansion_is_the_ordered_product_with_labels(tmp_path: Path) -> None:
    f = write(tmp_path, """
replications = 2
[set]
duration_h = 3
[grid]
"patterns.inventory" = ["direct", "event_driven"]
"faults.outages" = [[], [{ system = "erp", start_h = 1, duration_h = 1 }]]
"warehouses.0.movements_per_hour" = [100, 200, 300]
[labels]
"faults.outages" = ["none", "erp 1h"]
""")
    sw = load_sweep(f)
    assert (sw.name, sw.replications, sw.kpi, sw.lower_is_better) == (
        "s", 2, "inventory_sync_p95_s", True)
    assert [c.id for c in sw.configs] == [f"c{i:02d}" for i in range(12)]
    last = sw.configs[-1]
    assert last.label == "inventory=event_driven, outages=erp 1h, movements_per_hour=300"
    assert last.scenario.patterns.inventory == "event_driven"
    assert [o.duration_h for o in last.scenario.faults.outages] == [1.0]
    assert [c.scenario.warehouses[0].movements_per_hour for c in sw.configs[:3]] == [
        100, 200, 300]  # last key varies fastest
    assert all(c.scenario.duration_h == 3 for c in sw.configs)
    assert sw.configs[0].params == {"patterns.inventory": "direct", "faults.outages": [],
                                    "warehouses.0.movements_per_hour": 100}


def test_several_base_files_are_a_grid_dimension() -> None:
    files = sorted((SCENARIOS / "patterns").glob("*.toml"))
    configs = expand(files, {"erp.api.workers": [4, 8]})
    assert len(configs) == 8
    assert configs[0].label == "direct, workers=4"
    assert configs[0].params["scenario"] == "direct"
    assert {c.scenario.patterns.inventory for c in configs} == {
        "direct", "orchestrated", "event_driven", "hybrid"}


def test_shipped_sweep_files_load() -> None:
    files = sorted((SCENARIOS / "sweeps").glob("*.toml"))
    assert files
    for f in files:
        assert load_sweep(f).configs, f


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[grid]\n"patterns.colour" = ["red"]',
         "field 'patterns.colour': unknown field; known here: order_release, inventory"),
        ('[grid]\n"erp.api.workers" = [4, 0]',
         "field 'erp.api.workers': Input should be greater than or equal to 1"),
        ('[grid]\n"duration_h" = ["long"]', "field 'duration_h': Input should be a valid number"),
        ('[grid]\n"warehouses.3.workers" = [1]',
         "field 'warehouses.3.workers': index 3 out of range"),
        ('[grid]\n"erp.api.workers" = 4', "field 'grid.erp.api.workers': Input should be a "
         "valid list"),
        ('[grid]\n"erp.api.workers" = []', "grid 'erp.api.workers' has no values"),
        ('[grid]\n"a" = [1, 2]\n[labels]\n"a" = ["x"]', "labels 'a' has 1 names for 2"),
        ('kpi = "speed"', "unknown KPI 'speed'"),
        ("replications = 0", "field 'replications': Input should be greater than or equal to 1"),
        ("colour = 1", "field 'colour': Extra inputs are not permitted"),
        ("[grid\n", "not valid TOML"),
        ('rank_within = ["erp.api.workers"]\n[grid]\n"duration_h" = [2]',
         "rank_within 'erp.api.workers' is not a grid key"),
    ],
)
def test_bad_sweep_files_name_the_file_and_the_field(tmp_path: Path, text: str,
                                                     expected: str) -> None:
    f = write(tmp_path, text + "\n")
    with pytest.raises(SweepError) as err:
        load_sweep(f)
    assert str(err.value).startswith(str(f)) and expected in str(err.value)


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SweepError, match="no such sweep file"):
        load_sweep(tmp_path / "nope.toml")
    f = tmp_path / "s.toml"
    f.write_text('base = "missing.toml"\n')
    with pytest.raises(SweepError, match=r"s\.toml: .*missing\.toml: no such scenario file"):
        load_sweep(f)


def test_the_sweep_may_override_the_kpis_sense(tmp_path: Path) -> None:
    sw = load_sweep(write(tmp_path, 'kpi = "slos_met"\n'))
    assert sw.lower_is_better is False
    sw = load_sweep(write(tmp_path, 'kpi = "lost"\nlower_is_better = false\n'))
    assert (sw.kpi, sw.lower_is_better) == ("lost", False)
