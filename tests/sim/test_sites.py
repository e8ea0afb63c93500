"""Several sites for real: per-warehouse KPIs in every output, per-site SLOs, and faults
that take one site's WMS down while the others go on."""

from __future__ import annotations

from typing import Any

import pytest

from sim.kpis import flatten
from sim.metrics import comparison_row, latency_frame, summary, timeseries_frame
from sim.scenario import Scenario
from sim.twin import run


def two_sites(**kw: Any) -> Scenario:
    base: dict[str, Any] = {
        "name": "sites", "seed": 11, "duration_h": 4, "drain_h": 2,
        "catalog": {"skus": 200}, "shop": {"orders_per_hour": 40},
        "warehouses": [{"id": "DC", "movements_per_hour": 1200},
                       {"id": "3PL", "operator": "3pl", "batch_minutes": 30,
                        "movements_per_hour": 300}],
        "slos": [
            {"flow": "inventory_sync", "percentile": 95, "max_s": 120, "warehouse": "DC"},
            {"flow": "inventory_sync", "percentile": 95, "max_s": 120, "warehouse": "3PL"},
            {"flow": "inventory_sync", "percentile": 95, "max_s": 120},
            {"kpi": "divergence_max_units", "max": 10**9, "warehouse": "3PL"},
        ],
    }
    base.update(kw)
    return Scenario.model_validate(base)


@pytest.fixture(scope="module")
def batched() -> dict[str, Any]:
    r = run(two_sites())
    return {"r": r, "s": summary(r)}


def test_a_3pls_batches_do_not_drown_the_dcs_figures(batched: dict[str, Any]) -> None:
    s = batched["s"]
    dc, tpl = s["warehouses"]["DC"], s["warehouses"]["3PL"]
    assert dc["latency"]["inventory_sync"]["p95"] < 60
    assert tpl["latency"]["inventory_sync"]["p95"] > 600  # half an hour's batch, on average
    met = {x["name"]: x["met"] for x in s["slos"]}
    assert met == {"inventory_sync@DC p95 <= 120 s": True,
                   "inventory_sync@3PL p95 <= 120 s": False,
                   "inventory_sync p95 <= 120 s": False,
                   "divergence_max_units@3PL <= 1e+09": True}
    # The sites' parts add up to the whole.
    total = s["counts"]["movements_generated"]
    assert dc["counts"]["movements_generated"] + tpl["counts"]["movements_generated"] == total
    assert (dc["counts"]["orders_placed"] + tpl["counts"]["orders_placed"]
            == s["counts"]["orders_placed"])


def test_per_site_figures_are_in_every_output(batched: dict[str, Any]) -> None:
    r, s = batched["r"], batched["s"]
    lat = latency_frame(r)
    sync = lat[lat["flow"] == "inventory_sync"]
    assert set(sync["warehouse"]) == {"DC", "3PL"}
    assert len(sync) == len(r.latency["inventory_sync"])
    assert set(lat.loc[lat["flow"] == "master_data_sync", "warehouse"]) <= {""}
    ts = timeseries_frame(r)
    both = ts["divergence_units_DC"] + ts["divergence_units_3PL"]
    assert (both == ts["divergence_units"]).all()
    row = comparison_row(s)
    assert row["inventory_sync_p95_s@3PL"] == s["warehouses"]["3PL"]["latency"][
        "inventory_sync"]["p95"]
    flat = flatten(s)
    assert flat["inventory_sync_p95_s@DC"] == s["warehouses"]["DC"]["latency"][
        "inventory_sync"]["p95"]
    assert flat["unexplained_max_units@3PL"] is not None


def test_one_sites_wms_outage_leaves_the_other_alone() -> None:
    outage = {"outages": [{"system": "wms", "warehouse": "3PL", "start_h": 1,
                           "duration_h": 1}]}
    quiet = summary(run(two_sites(faults={})))
    hit = summary(run(two_sites(faults=outage)))
    assert hit["faults"][0]["what"] == "wms 3PL down"
    # The DC's traffic is the same draw; its sync latency does not move with the 3PL's outage.
    dc_q, dc_h = (x["warehouses"]["DC"]["latency"]["inventory_sync"] for x in (quiet, hit))
    assert dc_h["p95"] == pytest.approx(dc_q["p95"], rel=0.2)
    tpl_q, tpl_h = (x["warehouses"]["3PL"]["latency"]["inventory_sync"] for x in (quiet, hit))
    assert tpl_h["max"] > tpl_q["max"] + 1800  # held through the outage, posted after


@pytest.mark.parametrize("bad, msg", [
    ({"slos": [{"flow": "inventory_sync", "max_s": 1, "warehouse": "EAST"}]},
     "no such warehouse"),
    ({"slos": [{"kpi": "api_calls", "max": 1, "warehouse": "DC"}]}, "not measured per"),
    ({"faults": {"outages": [{"system": "erp", "warehouse": "DC", "start_h": 1,
                              "duration_h": 1}]}}, "one site's WMS"),
])
def test_site_targets_are_checked(bad: dict[str, Any], msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        two_sites(**bad)


def test_the_shipped_dc_and_3pl_scenario_tells_the_sites_apart() -> None:
    from pathlib import Path

    from sim.scenario import load

    path = Path(__file__).resolve().parents[2] / "scenarios" / "dc_and_3pl.toml"
    s = summary(run(load(path)))
    dc, tpl = s["warehouses"]["DC"], s["warehouses"]["3PL"]
    # Three orders in four ship from the DC (order_weight 3 : 1), within a few percent.
    share = dc["counts"]["orders_placed"] / s["counts"]["orders_placed"]
    assert share == pytest.approx(0.75, abs=0.03)
    # The 3PL's WMS outage strands only its own direct releases; the DC's orders all ship.
    assert tpl["counts"]["orders_stuck"] > 0 and dc["counts"]["orders_stuck"] == 0
    # With the reconciler's patience past the 3PL's delays, nothing is left unexplained.
    assert tpl["divergence"]["unexplained_final_units"] == 0
    met = {x["name"]: x["met"] for x in s["slos"]}
    assert met["order_to_ship@DC p95 <= 3600 s"] and met["unexplained_final_units@3PL <= 0"]
