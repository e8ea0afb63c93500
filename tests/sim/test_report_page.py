"""report.html from short real twin runs: one file that needs nothing else (no URL, no other
file), whose embedded data is the run's own, and whose scenario names, user text, cannot break
out of the page."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sim.metrics import summary
from sim.report_page import (
    MAX_POINTS,
    SERIES,
    downsample,
    ecdf,
    embed_json,
    write_comparison_page,
    write_run_page,
)
from sim.twin import RunResult, run
from tests.sim.test_twin import scenario

HOSTILE = '</script><script>window.pwned = 1</script><!-- & "q" \'a\' <b>x</b>'


def short_run(name: str, pattern: str = "event_driven", outage: tuple[float, float] = (1, 0.75),
              system: str = "erp") -> RunResult:
    """Three simulated hours of tests.sim.test_twin's small landscape, with orders (so every
    flow has latencies), one outage and one SLO; well under a second."""
    start_h, hours = outage
    return run(scenario(
        pattern, name=name, duration_h=3, shop={"orders_per_hour": 60},
        faults={"outages": [{"system": system, "start_h": start_h, "duration_h": hours}]},
        slos=[{"flow": "inventory_sync", "percentile": 95, "max_s": 60}]))


@pytest.fixture(scope="module")
def one() -> RunResult:
    return short_run("calm-ish")


@pytest.fixture(scope="module")
def two(one: RunResult) -> list[RunResult]:
    return [one, short_run("direct", "direct", outage=(2, 0.5))]


def embedded(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    (blob,) = re.findall(
        r'<script type="application/json" id="report-data">(.*?)</script>', text, re.S)
    data: dict[str, Any] = json.loads(blob)
    return data


def external_refs(text: str) -> list[str]:
    """Anything the browser would fetch from elsewhere: a src or href to a URL (or a
    protocol-relative //host), a CSS url(...) or @import to one."""
    pattern = (r"""(?:\b(?:src|href)\s*=\s*["']?\s*|url\(\s*["']?\s*|@import\s+["']?\s*)"""
               r"(?:[a-z][a-z0-9+.-]*:)?//")
    return re.findall(pattern, text, re.I)


def test_run_page_is_one_file_with_the_runs_own_data(one: RunResult, tmp_path: Path) -> None:
    s = summary(one)
    path = write_run_page(one, s, tmp_path / "run")
    assert path == tmp_path / "run" / "report.html"
    text = path.read_text(encoding="utf-8")
    assert external_refs(text) == []
    assert "<script src" not in text and '<link rel="stylesheet"' not in text
    assert "uPlot" in text and "Permission is hereby granted" in text  # inlined, licence kept

    data = embedded(path)
    (sc,) = data["scenarios"]
    assert sc["name"] == "calm-ish" and data["kind"] == "run"
    assert len(one.series["t"]) < MAX_POINTS  # short: embedded whole, sample for sample
    for key in SERIES:
        np.testing.assert_array_equal(sc["series"][key]["t"], one.series["t"])
        np.testing.assert_array_equal(sc["series"][key]["y"], one.series[key])
    assert [(w["label"], w["start_s"], w["end_s"]) for w in data["windows"]] \
        == [("erp down", 3600.0, 6300.0)] == one.fault_windows
    lat = sc["latency"]["inventory_sync"]
    samples = one.latency["inventory_sync"]
    assert lat["share"][-1] == 1.0 and len(lat["x"]) == min(len(samples), MAX_POINTS)
    assert lat["x"][-1] == pytest.approx(samples.max(), abs=1e-4)  # the slowest one kept
    assert sc["summary"]["divergence"]["max_units"] == s["divergence"]["max_units"]

    # The key tables, in the HTML itself (they read without the script).
    for table in ("kpis", "slos", "faults", "latency"):
        assert f'<table id="{table}">' in text
    assert "inventory_sync p95 &lt;= 60 s" in text and "erp down" in text


def test_comparison_page_has_every_scenario_and_every_fault_window(
    two: list[RunResult], tmp_path: Path
) -> None:
    summaries = [summary(r) for r in two]
    path = write_comparison_page(two, summaries, None, tmp_path / "cmp")
    text = path.read_text(encoding="utf-8")
    assert external_refs(text) == []
    data = embedded(path)
    assert data["kind"] == "comparison"
    assert [sc["name"] for sc in data["scenarios"]] == ["calm-ish", "direct"]
    for sc, r in zip(data["scenarios"], two, strict=True):
        np.testing.assert_array_equal(sc["series"]["bus_backlog"]["y"], r.series["bus_backlog"])
    # Each scenario's outage shaded, named by its owner (the windows differ).
    assert [w["label"] for w in data["windows"]] == ["calm-ish: erp down", "direct: erp down"]
    assert '<table id="comparison">' in text
    assert '<a href="calm-ish/report.html">' in text  # each scenario's own page, relative


def test_a_hostile_scenario_name_stays_text(one: RunResult, tmp_path: Path) -> None:
    r = short_run(HOSTILE)
    path = write_comparison_page([one, r], [summary(one), summary(r)], None, tmp_path)
    text = path.read_text(encoding="utf-8")
    assert HOSTILE not in text and "</script><script>window.pwned" not in text
    # Exactly the page's own elements: the data block and the script.
    assert text.count("</script>") == 2 and text.count("<script") == 2
    assert "<!--" not in text
    assert [sc["name"] for sc in embedded(path)["scenarios"]] == ["calm-ish", HOSTILE]
    assert "&lt;/script&gt;&lt;script&gt;window.pwned" in text  # the tables: HTML-escaped


def test_a_long_run_makes_a_page_of_sensible_size(one: RunResult, tmp_path: Path) -> None:
    # The short run stretched to 100,000 samples a series (10 weeks at a minute) and 200,000
    # latencies a flow: the page must stay small, thinned to MAX_POINTS a line, spikes kept.
    n = 100_000
    rng = np.random.default_rng(3)
    series = {k: rng.poisson(20, n).astype(np.float64) for k in one.series}
    series["t"] = np.arange(n, dtype=np.float64) * 60
    series["bus_backlog"][77_777] = 123_456.0
    latency = {f: rng.exponential(5.0, 200_000) for f in one.latency}
    long = replace(one, series=series, latency=latency)
    path = write_run_page(long, summary(one), tmp_path)
    assert path.stat().st_size < 1_000_000
    (sc,) = embedded(path)["scenarios"]
    for key in SERIES:
        assert len(sc["series"][key]["t"]) <= MAX_POINTS
    backlog = sc["series"]["bus_backlog"]
    assert max(backlog["y"]) == 123_456.0
    assert backlog["t"][backlog["y"].index(123_456.0)] == 77_777 * 60
    assert all(len(x["x"]) <= MAX_POINTS for x in sc["latency"].values())


def test_embed_json_escapes_what_could_end_a_script_element() -> None:
    text = embed_json({"name": "</script><!--&"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"name": "</script><!--&"}
    # NaN and infinities, which JSON.parse refuses, as null; numpy scalars as numbers.
    assert json.loads(embed_json([np.float64("nan"), np.inf, np.int64(3)])) == [None, None, 3]


def test_downsampling_keeps_peaks_troughs_and_ends() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(100_000, dtype=np.float64) * 60
    y = rng.poisson(5, len(t)).astype(np.float64)
    y[31_337] = 10_000.0  # one spike, one sample wide
    y[70_001:70_003] = 0.0
    st, sy = downsample(t, y)
    assert len(st) <= MAX_POINTS
    assert np.all(np.diff(st) > 0)  # still in time order, no sample twice
    assert sy.max() == 10_000.0 and st[sy.argmax()] == t[31_337]
    assert sy.min() == 0.0 and st[0] == t[0] and st[-1] == t[-1]
    index = np.searchsorted(t, st)
    np.testing.assert_array_equal(y[index], sy)  # real samples, none invented
    short_t, short_y = downsample(t[:50], y[:50])  # short: unchanged
    np.testing.assert_array_equal(short_t, t[:50])
    np.testing.assert_array_equal(short_y, y[:50])


def test_latency_distribution_is_thinned_evenly_and_keeps_the_slowest() -> None:
    samples = np.random.default_rng(2).exponential(3.0, 50_000)
    samples[123] = 9_999.0
    x, share = ecdf(samples)
    assert len(x) <= MAX_POINTS and np.all(np.diff(x) >= 0) and np.all(np.diff(share) > 0)
    assert x[-1] == 9_999.0 and share[-1] == 1.0
    median = x[np.searchsorted(share, 0.5)]
    assert median == pytest.approx(np.median(samples), rel=0.01)
