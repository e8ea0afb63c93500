"""The report's plots carry the decision: unfinished work stays visible, SLOs are drawn."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from sim.report import latency_figure
from sim.scenario import Scenario
from tests.sim.test_metrics import run


def test_latency_panels_keep_unfinished_work_below_one_and_draw_the_slo() -> None:
    r = run([], [0, 0], [0, 0])
    r.scenario = Scenario.model_validate({"name": "carrier_failure", "slos": [
        {"flow": "order_to_ship", "percentile": 95, "max_s": 3600}]})
    done = np.linspace(100.0, 1000.0, 80)
    r.latency = {"order_to_ship": done, "order_release": done / 100}
    r.latency_at = {k: np.zeros_like(v) for k, v in r.latency.items()}
    r.counts = {"orders_placed": 100, "orders_shipped": 80, "orders_released": 100,
                "orders_invoiced": 80}
    fig = latency_figure([r])
    try:
        panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
        assert set(panels) == {"order_to_ship", "order_release"}
        ship = panels["order_to_ship"]
        (legend,) = [t.get_text() for t in ship.get_legend().get_texts()]
        assert legend == "carrier_failure (20 unfinished)"
        curve = ship.get_lines()[0]
        assert max(curve.get_ydata()) == 0.8  # 80 of 100 orders ever shipped
        assert any("SLO p95 <= 3600 s" in t.get_text() for t in ship.texts)
        assert ship.get_xlim()[1] >= 3600  # the SLO's corner is on the panel
        assert not panels["order_release"].texts  # no SLO declared on that flow
    finally:
        plt.close(fig)


def test_a_run_of_several_sites_reports_each_warehouse(tmp_path: Path) -> None:
    from sim.report import write_run
    from sim.twin import run as simulate
    from tests.sim.test_sites import two_sites

    s = write_run(simulate(two_sites(duration_h=2, drain_h=1)), tmp_path)
    text = (tmp_path / "report.md").read_text()
    table = text.split("## Each warehouse", 1)[1].split("##", 1)[0]
    assert "| DC |" in table and "| 3PL |" in table
    p95 = s["warehouses"]["3PL"]["latency"]["inventory_sync"]["p95"]
    assert f"{p95:,.0f}" in table  # the 3PL's own p95, not the landscape's
    assert "Redrive policy: transient dead letters are redriven every 15 min." in text
    page = (tmp_path / "report.html").read_text()
    assert '<table id="warehouses">' in page and "<td>3PL</td>" in page
