"""The twin's report.html in a real browser: headless Chromium (tests/browser.py) opens the file
from disk and the charts must have been drawn, fault windows shaded, from nothing but the file:
no request of any kind, no console error. For one run (its scenario named to break out of the
page, which must stay text) and for a comparison of two designs under different outages; the
comparison's screenshot is the README's (docs/img/twin-report.png with INTEROP_SCREENSHOTS=1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sim.metrics import summary
from sim.report_page import write_comparison_page, write_run_page
from tests.browser import REPO, chromium, keep_screenshot, severe_errors, wait_until
from tests.sim.test_report_page import HOSTILE, short_run

SCREENSHOT = REPO / "docs" / "img" / "twin-report.png"
TIME_CHARTS = ("in-flight", "unexplained", "backlog")

# The share of a canvas column, inside the plot area, painted in the fault windows' red: the
# shade is rgba(214, 39, 40, 0.14) on a transparent canvas, so a shaded pixel reads back as
# strong red with a small alpha; lines, grid and the other series' colours are not that red.
SHADED_SHARE = """
const [id, hour] = arguments;
const u = window.twinReport.charts[id];
const x = Math.round(u.valToPos(hour, "x", true));
const b = u.bbox;
const px = u.ctx.getImageData(x, Math.round(b.top), 1, Math.round(b.height)).data;
let red = 0;
for (let i = 0; i < px.length; i += 4) {
  if (px[i + 3] > 10 && px[i] > 150 && px[i + 1] < 90 && px[i + 2] < 90) red += 1;
}
return red / (px.length / 4);
"""

CANVASES = """
return Array.from(document.querySelectorAll(".uplot canvas"))
  .map((c) => [c.width, c.height]);
"""


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    with chromium(tmp_path, monkeypatch, window=(1400, 1700)) as driver:
        yield driver


def open_page(browser: Any, path: Path) -> None:
    browser.get(path.resolve().as_uri())
    wait_until("the page's script done", lambda: browser.execute_script(
        "return window.twinReport && window.twinReport.ready"))


def check_drawn(browser: Any, windows: list[tuple[float, float]], calm_hour: float) -> None:
    """Every chart has a canvas of some size; each time chart shaded every window (its hook
    says how many it drew, and the pixels in the middle of each are red) and nothing where
    no window is."""
    charts = browser.execute_script("return Object.keys(window.twinReport.charts)")
    sizes = browser.execute_script(CANVASES)
    assert len(sizes) == len(charts) >= len(TIME_CHARTS) + 1
    assert all(w > 100 and h > 100 for w, h in sizes), sizes
    def shaded(chart: str) -> int:
        n: int = browser.execute_script("return window.twinReport.shaded[arguments[0]]", chart)
        return n

    for chart in TIME_CHARTS:
        # The hook counts the windows it drew on each draw; uPlot may draw once more after load.
        wait_until(f"{chart}: every window shaded",
                   lambda: shaded(chart) == len(windows))  # noqa: B023 (waited on here)
        for start_h, end_h in windows:
            share = browser.execute_script(SHADED_SHARE, chart, (start_h + end_h) / 2)
            assert share > 0.8, (chart, start_h, share)
        assert browser.execute_script(SHADED_SHARE, chart, calm_hour) < 0.02, chart


def check_self_contained(browser: Any) -> None:
    # Nothing fetched at all (no script, style, image or font from anywhere, not even from
    # disk), and the console silent.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert severe_errors(browser) == []


def test_run_page_draws_its_charts_and_keeps_a_hostile_name_as_text(
    browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    r = short_run(HOSTILE)
    open_page(browser, write_run_page(r, summary(r), tmp_path / "run"))
    check_drawn(browser, [(1.0, 1.75)], calm_hour=0.5)
    check_self_contained(browser)
    assert browser.find_element(By.TAG_NAME, "h1").text == HOSTILE
    assert browser.title == HOSTILE
    assert browser.execute_script("return window.pwned === undefined")
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 2
    for table in ("kpis", "slos", "faults", "latency"):
        assert browser.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr"), table
    assert "MISSED" in browser.find_element(By.ID, "slos").text
    assert "erp down: 1 h – 1.75 h" in browser.find_element(By.ID, "windows").text
    # A latency panel per flow that has samples: all five in this landscape.
    latency = browser.find_elements(By.CSS_SELECTOR, "#charts-latency .uplot")
    assert len(latency) == 5
    browser.save_screenshot(str(tmp_path / "run.png"))


def test_comparison_page_one_series_per_scenario_and_every_outage_shaded(
    browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    results = [short_run("event_driven"), short_run("direct", "direct", outage=(2, 0.5))]
    path = write_comparison_page(results, [summary(r) for r in results], None, tmp_path / "cmp")
    open_page(browser, path)
    check_drawn(browser, [(1.0, 1.75), (2.0, 2.5)], calm_hour=0.5)
    check_self_contained(browser)
    # The legend: one entry per scenario (the x column's aside).
    labels = [e.text for e in browser.find_elements(
        By.CSS_SELECTOR, "#chart-in-flight .u-legend .u-series .u-label")]
    assert labels[1:] == ["event_driven", "direct"], labels
    heads = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#comparison thead th")]
    assert heads == ["KPI", "event_driven", "direct"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#faults tbody tr")) == 2
    assert len(browser.find_elements(By.CSS_SELECTOR, "#slos tbody tr")) == 2
    browser.save_screenshot(str(tmp_path / "comparison-full.png"))
    # The README's picture: the charts, from the section heading down.
    browser.execute_script("document.getElementById('charts-time').parentElement"
                           ".scrollIntoView()")
    keep_screenshot(browser, tmp_path, SCREENSHOT)
