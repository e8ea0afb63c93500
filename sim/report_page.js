// The twin's report page: draws the data embedded in #report-data with uPlot (inlined before
// this script). Plain JS, no build step; sim/report_page.py inlines this file.
(function () {
  "use strict";

  const HOUR = 3600;
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const several = data.scenarios.length > 1;
  // Matplotlib's tab10 without its red: red is kept for the fault windows alone.
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];
  const SHADE = "rgba(214, 39, 40, 0.14)";
  const SHADE_TEXT = "#b3261e";

  // What the browser test reads: the charts, and how many fault windows each one shaded.
  const report = { charts: {}, shaded: {}, ready: false };
  window.twinReport = report;

  const color = (i) => COLORS[i % COLORS.length];
  const fmt = (v, digits) => (v == null ? "–" : v.toLocaleString("en", {
    maximumFractionDigits: digits,
  }));

  function width(el) {
    return Math.max(360, el.clientWidth || 900);
  }

  // Latency panels side by side: three a row on a wide screen, two on a narrower one
  // (less each box's padding and border, and the gaps between boxes).
  function panelWidth(el) {
    const w = width(el);
    const cols = w >= 1100 ? 3 : 2;
    return Math.max(300, Math.floor((w - 12 * (cols - 1)) / cols) - 14);
  }

  // A uPlot hook drawing every fault window as a band over the plot area, labelled at the
  // top (staggered, since several scenarios' windows often start close together).
  function shadeWindows(id) {
    return (u) => {
      const ctx = u.ctx;
      const { left, top, width: w, height: h } = u.bbox;
      const px = window.devicePixelRatio || 1;
      let drawn = 0;
      ctx.save();
      ctx.beginPath();
      ctx.rect(left, top, w, h);
      ctx.clip();
      data.windows.forEach((win, i) => {
        const x0 = u.valToPos(win.start_s / HOUR, "x", true);
        const x1 = u.valToPos(win.end_s / HOUR, "x", true);
        if (!(x1 >= left && x0 <= left + w)) return;  // zoomed out of view
        ctx.fillStyle = SHADE;
        ctx.fillRect(x0, top, Math.max(x1 - x0, px), h);
        ctx.fillStyle = SHADE_TEXT;
        ctx.font = `${Math.round(11 * px)}px system-ui, sans-serif`;
        ctx.textBaseline = "top";
        ctx.fillText(win.label, Math.max(x0, left) + 3 * px, top + (3 + 14 * (i % 3)) * px);
        drawn += 1;
      });
      ctx.restore();
      report.shaded[id] = drawn;
    };
  }

  function chart(container, id, opts, aligned) {
    const box = document.createElement("div");
    box.className = "chart";
    box.id = `chart-${id}`;
    container.appendChild(box);
    const u = new uPlot({ width: width(container) - 14, height: 260, ...opts }, aligned, box);
    report.charts[id] = u;
    return u;
  }

  // -- divergence and backlog over simulated time ---------------------------------------------

  function timeChart(container, id, title, ylabel, lines) {
    // One line per (scenario, series); each was thinned on its own, so join them on time.
    const aligned = uPlot.join(lines.map((l) => [l.t.map((t) => t / HOUR), l.y]));
    return chart(container, id, {
      title,
      scales: { x: { time: false } },
      series: [
        { label: "hour", value: (u, v) => (v == null ? "–" : `${v.toFixed(2)} h`) },
        ...lines.map((l) => ({
          label: l.label, stroke: l.color, width: 1.5, dash: l.dash, spanGaps: true,
          value: (u, v) => fmt(v, 1),
        })),
      ],
      axes: [{ label: "simulated hours" }, { label: ylabel, size: 70 }],
      hooks: { drawClear: [shadeWindows(id)] },
    }, aligned);
  }

  function timeCharts() {
    const el = document.getElementById("charts-time");
    const line = (sc, i, key, label, dash) => ({
      t: sc.series[key].t, y: sc.series[key].y, color: color(i), dash, label,
    });
    const each = (key, alone, suffix, dash) => data.scenarios.map((sc, i) => line(
      sc, i, key, several ? `${sc.name}${suffix}` : alone, dash));
    timeChart(el, "in-flight", "ERP vs WMS divergence: in flight", "in-flight units",
      each("in_flight_units", "in flight", ""));
    timeChart(el, "unexplained", "ERP vs WMS divergence: unexplained (damage)",
      "unexplained units", each("unexplained_units", "unexplained", ""));
    const backlog = [];
    data.scenarios.forEach((sc, i) => {
      backlog.push(line(sc, i, "bus_backlog", several ? `${sc.name}: bus` : "bus (to the ERP)"));
      backlog.push(line(sc, i, "wms_queue",
        several ? `${sc.name}: WMS work queue` : "WMS work queue", [6, 4]));
    });
    timeChart(el, "backlog", "Backlog: bus (to the ERP) and warehouse work waiting for a worker",
      "messages waiting", backlog);
  }

  // -- latency distributions -------------------------------------------------------------------

  function latencyCharts() {
    const el = document.getElementById("charts-latency");
    data.flows.forEach((flow) => {
      const with_ = data.scenarios.map((sc, i) => [sc, i]).filter(([sc]) => sc.latency[flow]);
      if (!with_.length) return;
      const aligned = uPlot.join(with_.map(([sc]) => [sc.latency[flow].x,
        sc.latency[flow].share]));
      chart(el, `latency-${flow}`, {
        title: flow,
        height: 240,
        width: panelWidth(el),
        scales: { x: { time: false, distr: 3 }, y: { range: [0, 1] } },
        series: [
          { label: "seconds", value: (u, v) => (v == null ? "–" : `${fmt(v, 3)} s`) },
          ...with_.map(([sc, i]) => ({
            label: sc.name, stroke: color(i), width: 1.5, spanGaps: true,
            paths: uPlot.paths.stepped({ align: 1 }),
            value: (u, v) => (v == null ? "–" : `${(100 * v).toFixed(1)} %`),
          })),
        ],
        axes: [{ label: "seconds (log)" }, { label: "share completed within", size: 60 }],
      }, aligned);
    });
  }

  function windowList() {
    const ul = document.getElementById("windows");
    data.windows.forEach((w) => {
      const li = document.createElement("li");
      li.textContent = `${w.label}: ${fmt(w.start_s / HOUR, 2)} h – ${fmt(w.end_s / HOUR, 2)} h`;
      ul.appendChild(li);
    });
    if (!data.windows.length) {
      const li = document.createElement("li");
      li.textContent = `No fault windows in ${several ? "these runs" : "this run"}.`;
      ul.appendChild(li);
    }
  }

  windowList();
  timeCharts();
  latencyCharts();
  window.addEventListener("resize", () => {
    Object.values(report.charts).forEach((u) => {
      const el = u.root.parentElement.parentElement;
      const w = el.id === "charts-latency" ? panelWidth(el) : width(el) - 14;
      u.setSize({ width: w, height: u.height });
    });
  });
  report.ready = true;
})();
