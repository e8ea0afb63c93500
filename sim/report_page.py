"""`report.html`: the markdown report's charts and key tables as one self-contained page an
analyst opens from disk. No network and no other file: uPlot (vendored with the dashboard) and
the page's own script and style are inlined, the data is embedded as JSON, and the fault
windows are shaded by a uPlot hook. One run, or a comparison with one series per scenario."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from importlib.resources import files
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sim.metrics import comparison_row, site_rows
from sim.twin import RunResult
from sim.wording import fault_rows, fmt_cell, seed_statement, shaded_windows, slo_measure

MAX_POINTS = 2000
"""Most points a chart line carries into the page (`downsample`, `ecdf`): a month sampled each
minute is 43,200 points a line, megabytes of JSON and a slow page, for no visible gain."""

# The time series the charts draw: the same as plot_divergence and plot_backlog in sim.report.
SERIES = ("in_flight_units", "unexplained_units", "bus_backlog", "wms_queue")

_HERE = Path(__file__).parent
# Located from the top package: importing integration_core.service would load FastAPI into
# every `twin run` for the sake of three files.
_UPLOT = files("integration_core") / "service" / "static" / "vendor" / "uplot"


def downsample(t: np.ndarray, y: np.ndarray, max_points: int = MAX_POINTS
               ) -> tuple[np.ndarray, np.ndarray]:
    """At most `max_points` samples of (t, y), peaks kept: min-max decimation. The series is cut
    into consecutive buckets and each keeps its lowest and highest sample (in time order), plus
    the first and last sample, so an outage's spike and the return to zero both survive where a
    stride or a mean would flatten them. Shorter series come back unchanged."""
    n = len(t)
    if n <= max_points:
        return t, y
    buckets = max(1, (max_points - 2) // 2)
    filled = np.nan_to_num(np.asarray(y, dtype=np.float64), nan=0.0)  # NaN: choose as 0
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    keep = {0, n - 1}
    for a, b in pairwise(edges.tolist()):
        if b > a:
            seg = filled[a:b]
            keep.add(a + int(seg.argmin()))
            keep.add(a + int(seg.argmax()))
    idx = np.fromiter(sorted(keep), dtype=np.int64)
    return t[idx], y[idx]


def ecdf(samples: np.ndarray, max_points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """The latency distribution as plot_latency draws it (share completed within x seconds),
    thinned to at most `max_points` ranks spread evenly over the sorted samples: the shape is
    kept and the slowest sample (the peak) always is. Seconds floored at 1 ms for the log axis."""
    x = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(x)
    if n == 0:
        return x, x
    idx = np.unique(np.linspace(0, n - 1, min(n, max_points)).round().astype(np.int64))
    # Rounded: a 0.1 ms and 1e-6 share resolution is far below a pixel, and halves the JSON.
    return np.round(np.maximum(x[idx], 1e-3), 4), np.round((idx + 1) / n, 6)


def _plain(v: Any) -> Any:
    """JSON-able: numpy scalars and arrays as Python values, NaN and infinities as null (the
    browser's JSON.parse refuses NaN), anything else unknown as its text."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple | np.ndarray):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if v is None or isinstance(v, bool | int | str):
        return v
    return str(v)


def embed_json(data: Any) -> str:
    """`data` as JSON safe inside a <script> element: with `<`, `>` and `&` as \\u escapes no
    text (a scenario named `</script>...`) can close the element or open a comment, and
    JSON.parse gives back the very same strings."""
    text = json.dumps(_plain(data), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _scenario_data(r: RunResult, s: Mapping[str, Any]) -> dict[str, Any]:
    t = np.asarray(r.series["t"], dtype=np.float64)
    series = {}
    for name in SERIES:
        st, sy = downsample(t, np.asarray(r.series[name], dtype=np.float64))
        series[name] = {"t": st, "y": sy}
    latency = {}
    for flow in _flows(s):
        x, share = ecdf(r.latency.get(flow, np.empty(0)))
        if len(x):
            latency[flow] = {"x": x, "share": share}
    return {"name": r.scenario.name, "description": r.scenario.description or "",
            "series": series, "latency": latency, "fault_windows": r.fault_windows,
            "summary": s}


def _flows(s: Mapping[str, Any]) -> list[str]:
    """The flows, in the summary's order (sim.metrics' FLOWS)."""
    return list(s["latency"])


def _windows(results: list[RunResult]) -> list[dict[str, Any]]:

    return [{"label": what, "start_s": start, "end_s": end}
            for what, start, end in shaded_windows(results)]


# -- tables: rendered here, so they read without the script too -------------------------------

def _cell(v: Any) -> str:

    text = fmt_cell(v)
    classes = (["num"] if isinstance(v, int | float) and not isinstance(v, bool) else []) + (
        ["missed"] if text in ("MISSED", "never") else [])
    cls = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{cls}>{html.escape(text)}</td>"


def _table(rows: Sequence[Mapping[str, Any]], table_id: str) -> str:
    if not rows:
        return '<p class="none">None.</p>'
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in cols) + "</tr>" for r in rows)
    return (f'<table id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


def _kpi_rows(s: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The markdown report's "Did stock stay in sync?" list as label, value."""
    d = s["divergence"]
    return [
        {"KPI": "max divergence (units)", "value": d["max_units"]},
        {"KPI": "SKU-locations out of sync at worst", "value": d["skus_out_of_sync_max"]},
        {"KPI": "unexplained at the end (units)", "value": d["unexplained_final_units"]},
        {"KPI": "unexplained at worst (units)", "value": d["unexplained_max_units"]},
        {"KPI": "time to consistency after the last fault (s)",
         "value": d["time_to_consistency_s"] if d["time_to_consistency_s"] is not None
         else "never"},
        {"KPI": "lost / duplicated / unexpected",
         "value": f"{s['lost']:,} / {s['duplicated']:,} / {s['unexpected']:,}"},
        {"KPI": "warehouse blocked on synchronous partners (s)",
         "value": s["warehouse_blocked_s"]},
        {"KPI": "ERP API calls", "value": s["api_calls"].get("erp", 0)},
    ]


def _latency_rows(s: Mapping[str, Any], scenario: str | None = None) -> list[dict[str, Any]]:
    """Per flow its count and percentiles; one that falls on unfinished work (listed in
    `censored`) reads "> horizon", as its value is unknown but longer than the run."""
    first = {"scenario": scenario} if scenario is not None else {}
    rows = []
    for f in _flows(s):
        stats = dict(s["latency"][f])
        for name in stats.pop("censored", None) or ():
            stats[name] = "> horizon"
        rows.append({**first, "flow": f, **stats})
    return rows


def _slo_rows(s: Mapping[str, Any], scenario: str | None = None) -> list[dict[str, Any]]:

    first = {"scenario": scenario} if scenario is not None else {}
    return [{**first,
             "SLO": x.get("name") or f"{x['flow']} p{x['percentile']:g} <= {x['max_s']:g} s",
             "result": "met" if x["met"] else "MISSED", "measured": slo_measure(x)}
            for x in s["slos"]]


def _fault_table_rows(s: Mapping[str, Any], scenario: str | None = None
                      ) -> list[dict[str, Any]]:

    first = {"scenario": scenario} if scenario is not None else {}
    return [{**first, **row} for row in fault_rows(s["divergence"]["faults"])]


def _transposed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The comparison table with one column per scenario, as the charts' legend reads."""
    names = [str(r["scenario"]) for r in rows]
    cols = [c for c in rows[0] if c != "scenario"] if rows else []
    return [{"KPI": c, **{n: r.get(c) for n, r in zip(names, rows, strict=True)}} for c in cols]


# -- the page ----------------------------------------------------------------------------------

def _asset(path: Any) -> str:
    text: str = path.read_text(encoding="utf-8")
    return text


def _uplot_js() -> str:
    # The minified file opens with uPlot's own /*! ... */ header; its MIT licence goes in
    # front of it, whole, since the page carries a copy of the library.
    licence = _asset(_UPLOT / "LICENSE").replace("*/", "* /")
    version = _asset(_UPLOT / "VERSION").strip()
    return f"/* {version}, vendored in integration_core/service/static/vendor/uplot.\n" \
           f"{licence}*/\n{_asset(_UPLOT / 'uPlot.iife.min.js')}"


def _script_safe(code: str) -> str:
    """Inlined code must not end its element early or open an HTML comment in it."""
    for closer in ("</script", "</style", "<!--"):
        if closer in code.lower():
            raise ValueError(f"inlined asset contains {closer!r}")
    return code


def _page(title: str, intro: Iterable[str], first: Iterable[str], then: Iterable[str],
          data: Mapping[str, Any]) -> str:
    """The page: `first` (the verdict: KPIs, SLOs) above the charts, `then` (detail) below."""
    css = _script_safe(_asset(_UPLOT / "uPlot.min.css") + "\n" + _asset(_HERE / "report_page.css"))
    js = _script_safe(_uplot_js() + "\n" + _asset(_HERE / "report_page.js"))
    intro_html = "".join(f"<p>{html.escape(p)}</p>" for p in intro if p)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No favicon request: opened from disk, the browser would look for file:///favicon.ico.
        '<link rel="icon" href="data:,">',
        f"<title>{html.escape(title)}</title>",
        f"<style>\n{css}\n</style>",
        "</head>",
        "<body>",
        f"<header><h1>{html.escape(title)}</h1>{intro_html}</header>",
        *first,
        "<section><h2>Divergence and backlog over time</h2>",
        '<p class="note">Shaded: fault windows. In flight: on its way; unexplained: damage '
        "(lost, duplicated, wrongly applied). Drag to zoom, double-click to reset.</p>",
        '<div id="charts-time" class="charts"></div>',
        '<ul id="windows" class="windows"></ul></section>',
        "<section><h2>How fast were the flows?</h2>",
        '<p class="note">Share of operations completed within x seconds (log scale).</p>',
        '<div id="charts-latency" class="charts latency"></div></section>',
        *then,
        '<noscript><p>The charts need JavaScript; the tables above do not.</p></noscript>',
        f'<script type="application/json" id="report-data">{embed_json(data)}</script>',
        f"<script>\n{js}\n</script>",
        "</body>",
        "</html>",
        "",
    ])


def _section(heading: str, body: str) -> str:
    return f"<section><h2>{html.escape(heading)}</h2>{body}</section>"


def write_run_page(r: RunResult, s: Mapping[str, Any], out: Path) -> Path:
    """`out/report.html` for one run: `s` is its `sim.metrics.summary` (write_run has it)."""
    out.mkdir(parents=True, exist_ok=True)
    patterns = ", ".join(f"{k} = {v}" for k, v in s["patterns"].items())
    intro = [r.scenario.description or "",
             f"Seed {s['seed']}, {s['duration_h']} simulated hours "
             f"(warm-up {s['warmup_h']} h cut from KPIs), patterns: {patterns}.",
             f"Wall time {s['wall_s']} s, {s['events']:,} events."]
    first = [_section("Did stock stay in sync?", _table(_kpi_rows(s), "kpis")),
             _section("SLOs", _table(_slo_rows(s), "slos"))]
    then = [_section("Each fault", _table(_fault_table_rows(s), "faults")),
            _section("Latency (s)", _table(_latency_rows(s), "latency"))]
    sites = site_rows(s)
    if len(sites) > 1:
        then.append(_section("Each warehouse", _table(sites, "warehouses")))
    data = {"kind": "run", "flows": _flows(s), "windows": _windows([r]),
            "scenarios": [_scenario_data(r, s)]}
    path = out / "report.html"
    path.write_text(_page(str(s["scenario"]), intro, first, then, data), encoding="utf-8")
    return path


def write_comparison_page(results: list[RunResult], summaries: Sequence[Mapping[str, Any]],
                          table: pd.DataFrame | None, out: Path) -> Path:
    """`out/report.html` for `twin compare`: `summaries` are write_run's return values in the
    order of `results`, `table` the comparison table written to comparison.csv (None: built
    here from the summaries)."""

    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = (
        [{str(k): v for k, v in x.items()} for x in table.to_dict("records")]
        if table is not None
        else [comparison_row(dict(s)) for s in summaries])
    names = [str(s["scenario"]) for s in summaries]
    intro = [seed_statement({str(s["scenario"]): int(s["seed"]) for s in summaries}),
             "Lower is better everywhere except slos_met. unexplained_final_units, lost and "
             "duplicated are damage; in-flight divergence and latency are the price of "
             "decoupling."]
    # Each scenario's own page, which write_comparison leaves in <scenario>/report.html.
    links = "".join(
        f'<li><a href="{html.escape(_relative(n), quote=True)}">{html.escape(n)}</a></li>'
        for n in names)
    first = [
        _section("Side by side", _table(_transposed(rows), "comparison")),
        _section("SLOs", _table([x for s, n in zip(summaries, names, strict=True)
                                 for x in _slo_rows(s, n)], "slos")),
    ]
    then = [
        _section("Each fault", _table([x for s, n in zip(summaries, names, strict=True)
                                       for x in _fault_table_rows(s, n)], "faults")),
        _section("Latency (s)", _table([x for s, n in zip(summaries, names, strict=True)
                                        for x in _latency_rows(s, n)], "latency")),
        _section("Each scenario's report", f'<ul class="scenarios">{links}</ul>'),
    ]
    data = {"kind": "comparison", "flows": _flows(summaries[0]) if summaries else [],
            "windows": _windows(results),
            "scenarios": [_scenario_data(r, s) for r, s in zip(results, summaries, strict=True)]}
    path = out / "report.html"
    title = f"Comparison of {len(results)} scenarios"
    path.write_text(_page(title, intro, first, then, data), encoding="utf-8")
    return path


def _relative(name: str) -> str:
    from urllib.parse import quote

    return f"{quote(name, safe='')}/report.html"
