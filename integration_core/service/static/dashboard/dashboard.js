// The dashboard page: draws what the service's snapshots say, and nothing more. Every
// number is computed in integration_core/service/dashboard.py; this file formats, charts and
// posts the one action (requeue). Text goes in with textContent only: causes and ids come
// from partners' messages and are never parsed as HTML.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const HISTORY = 300;
  let session = null;
  let source = null;
  let charts = null;
  let series = [[], [], [], [], [], [], []];  // t, p50, p95, sync lag, in/s, out/s, backlog

  // -- formatting --------------------------------------------------------------------------

  function secs(v) {
    if (v === null || v === undefined) return "–";
    if (v < 1) return `${Math.round(v * 1000)} ms`;
    if (v < 120) return `${v.toFixed(1)} s`;
    if (v < 7200) return `${(v / 60).toFixed(1)} min`;
    return `${(v / 3600).toFixed(1)} h`;
  }
  const rate = (v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(1) : Math.round(v).toString());
  const int = (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en"));

  function cell(row, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    row.appendChild(td);
    return td;
  }

  function fill(tableId, rows, empty, build) {
    const body = $(tableId).querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell(tr, empty);
      td.colSpan = $(tableId).querySelectorAll("th").length;
      body.appendChild(tr);
      return;
    }
    for (const r of rows) {
      const tr = document.createElement("tr");
      build(tr, r);
      body.appendChild(tr);
    }
  }

  // -- session -----------------------------------------------------------------------------

  async function start() {
    const r = await fetch("/v1/dashboard/session", { credentials: "same-origin" });
    if (r.ok) {
      session = await r.json();
      showBoard();
    } else {
      showLogin("");
    }
  }

  function showLogin(message) {
    if (source) { source.close(); source = null; }
    session = null;
    $("board").hidden = true;
    $("status-bar").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message;
    $("key").focus();
  }

  function showBoard() {
    $("login").hidden = true;
    $("board").hidden = false;
    $("status-bar").hidden = false;
    $("who").textContent = `${session.system}${session.can_requeue ? " (admin)" : " (read-only)"}`;
    $("requeue-note").textContent = session.can_requeue ? ""
      : "Read-only session: requeueing needs the admin key.";
    if (!charts) charts = makeCharts();
    connect();
  }

  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = $("key").value;
    $("key").value = "";  // the page forgets the key at once: the cookie is the session
    const r = await fetch("/v1/dashboard/session", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key }),
    });
    if (r.ok) {
      session = await r.json();
      showBoard();
    } else {
      const p = await r.json().catch(() => ({ detail: r.statusText }));
      showLogin(`${r.status}: ${p.detail}`);
    }
  });

  $("logout").addEventListener("click", async () => {
    await fetch("/v1/dashboard/session", { method: "DELETE", credentials: "same-origin" });
    showLogin("Logged out.");
  });

  // -- the stream --------------------------------------------------------------------------

  function connect() {
    if (source) source.close();
    source = new EventSource("/v1/dashboard/events", { withCredentials: true });
    source.addEventListener("open", () => setConn("live", "live"));
    source.addEventListener("error", async () => {
      setConn("reconnecting", "lost");
      // An expired or closed session ends the stream for good: back to the login form.
      const r = await fetch("/v1/dashboard/session", { credentials: "same-origin" });
      if (r.status === 401) showLogin("Session ended; log in again.");
    });
    source.addEventListener("history", (ev) => {
      const points = JSON.parse(ev.data);
      series = series.map((_, i) => points.map((p) => p[i]));
      redraw();
    });
    source.addEventListener("snapshot", (ev) => render(JSON.parse(ev.data)));
  }

  function setConn(text, cls) {
    const el = $("conn");
    el.textContent = text;
    el.className = `pill ${cls}`;
  }

  // -- rendering ---------------------------------------------------------------------------

  function render(s) {
    document.body.dataset.seq = String(s.seq);
    $("not-ready").hidden = s.ready;
    if (!s.ready) return;
    const o = s.orders;
    $("orders-p50").textContent = secs(o.p50_s);
    $("orders-p95").textContent = secs(o.p95_s);
    $("orders-window").textContent = secs(o.window_s);
    $("orders-released").textContent = int(o.released);
    $("orders-waiting").textContent = int(o.waiting);
    $("orders-oldest").textContent = secs(o.oldest_waiting_s);
    const inv = s.inventory;
    $("sync-lag").textContent = secs(inv.sync_lag_s);
    $("mov-in").textContent = rate(inv.movements_in_per_s);
    $("mov-out").textContent = rate(inv.movements_out_per_s);
    $("applied").textContent = int(inv.booked_while_watched);
    $("loop-lag").textContent = secs(s.event_loop_lag_s);
    $("dead-total").textContent = int(s.dead_letters.total);

    const down = Object.entries(s.partners).filter(([, p]) => p.state !== "up" && p.state !== "unknown");
    const banner = $("outage");
    banner.hidden = !down.length && !s.storage_error;
    banner.textContent = [
      ...down.map(([name, p]) => `${name.toUpperCase()} ${p.state}: ${p.detail}. The core keeps accepting and retries; backlog ${int((s.consumers[name] || {}).backlog)}.`),
      ...(s.storage_error ? [`Store failing: ${s.storage_error}`] : []),
    ].join(" ");

    fill("partners", Object.entries(s.partners), "no partners", (tr, [name, p]) => {
      tr.dataset.partner = name;
      cell(tr, name.toUpperCase());
      cell(tr, p.state, `state state-${p.state}`);
      cell(tr, p.detail || "");
      cell(tr, p.calls === undefined ? "–" : int(p.calls));
      cell(tr, p.refused === undefined ? "–" : int(p.refused));
    });
    fill("consumers", Object.entries(s.consumers), "no consumers", (tr, [name, c]) => {
      tr.dataset.consumer = name;
      cell(tr, name);
      cell(tr, int(c.backlog), "backlog");
      cell(tr, secs(c.lag_s));
      cell(tr, int(c.dead_letters));
    });

    const rec = s.reconcile;
    const sev = rec.by_severity;
    $("reconcile-summary").textContent = rec.divergence === null
      ? `No reconciliation yet (every ${secs(rec.interval_s)}; ${rec.skipped} skipped while the ERP did not answer).`
      : `Run ${rec.runs}, ${secs(rec.seen_s_ago)} ago: ${rec.breaks_total} breaks (${sev.high} high, ${sev.medium} medium, ${sev.low} low); `
        + `divergence ${int(rec.divergence.units)} units, ${int(rec.divergence.unexplained_units)} unexplained; `
        + `${rec.skipped} runs skipped while the ERP did not answer.`;
    fill("breaks", rec.breaks, "no breaks", (tr, b) => {
      cell(tr, b.key);
      cell(tr, b.severity, `sev-${b.severity}`);
      cell(tr, b.kind);
      cell(tr, int(b.erp_qty));
      cell(tr, int(b.wms_qty));
      cell(tr, int(b.in_flight_units));
      cell(tr, int(b.residual));
      cell(tr, secs(b.age_s));
    });

    fill("dead-letters", s.dead_letters.items, "no dead letters", (tr, d) => {
      tr.dataset.id = d.id;
      cell(tr, d.consumer);
      cell(tr, d.type || "(unparsed)");
      cell(tr, d.correlation_id || d.message_id || "");
      cell(tr, `${d.cause_type}: ${d.cause_message}`, "cause");
      cell(tr, int(d.attempts));
      cell(tr, secs(d.age_s));
      const td = cell(tr, "");
      if (session && session.can_requeue && d.requeueable) {
        const b = document.createElement("button");
        b.type = "button";
        b.className = "requeue";
        b.textContent = "Requeue";
        b.addEventListener("click", () => requeue(d.id, b));
        td.appendChild(b);
      }
    });

    if (s.point) {
      series.forEach((col, i) => col.push(s.point[i]));
      if (series[0].length > HISTORY) series = series.map((col) => col.slice(-HISTORY));
      redraw();
    }
  }

  async function requeue(id, button) {
    button.disabled = true;
    const r = await fetch(`/v1/dashboard/dead-letters/${encodeURIComponent(id)}/requeue`, {
      method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": session.csrf },
    });
    const doc = await r.json().catch(() => ({}));
    $("requeue-result").textContent = r.ok ? `Requeued ${id}.` : `Requeue refused (${r.status}): ${doc.detail}`;
    if (!r.ok) button.disabled = false;
  }

  // -- charts ------------------------------------------------------------------------------

  function makeCharts() {
    if (typeof uPlot === "undefined") return null;  // the page still shows every number
    const width = () => Math.max(320, $("chart-latency").parentElement.clientWidth - 28);
    const latency = new uPlot({
      width: width(), height: 200, scales: { x: { time: true } },
      series: [{}, { label: "p50", stroke: "#2a6fdb", width: 2 },
        { label: "p95", stroke: "#c62828", width: 2 }],
      axes: [{}, { values: (u, vals) => vals.map((v) => secs(v)) }],
    }, [[], [], []], $("chart-latency"));
    const movements = new uPlot({
      width: width(), height: 200, scales: { x: { time: true }, n: {} },
      series: [{}, { label: "in/s", stroke: "#1f8a4c", width: 2, scale: "n" },
        { label: "out/s", stroke: "#2a6fdb", width: 2, scale: "n" },
        { label: "ERP backlog", stroke: "#b26a00", width: 2, scale: "n", dash: [6, 4] }],
      axes: [{}, { scale: "n" }],
    }, [[], [], [], []], $("chart-movements"));
    window.addEventListener("resize", () => {
      latency.setSize({ width: width(), height: 200 });
      movements.setSize({ width: width(), height: 200 });
    });
    return { latency, movements };
  }

  function redraw() {
    if (!charts) return;
    const [t, p50, p95, , inRate, outRate, backlog] = series;
    charts.latency.setData([t, p50, p95]);
    charts.movements.setData([t, inRate, outRate, backlog]);
  }

  start();
})();
