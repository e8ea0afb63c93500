"""Writes the experiment notebooks (stock Jupyter, no outputs) from the cell sources below.

    python notebooks/build.py           # rewrite notebooks/*.ipynb
    python notebooks/build.py --check   # exit 1 if a committed notebook differs

Edit the sources here, not the .ipynb files: tests/test_notebooks.py checks they match. Each
notebook has one cell tagged `parameters` (papermill's convention); CI runs every notebook with
small values put in after it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

def setup(imports: str) -> str:
    return f"""\
from pathlib import Path

{imports}

from sim.executors import make_executor
from sim.experiment import run_experiment
from sim.sweep import expand

# The repository root: the notebook runs from notebooks/ (Jupyter) or from the root.
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "scenarios").is_dir())
BASES = [ROOT / "scenarios" / s for s in SCENARIOS]"""


RUN_NOTE = """\
configs = {configs}
executor = make_executor(WORKERS, DASK)
try:
    exp = run_experiment(configs, REPLICATIONS, executor=executor,
                         out=ROOT / OUT if OUT else None, {kwargs})
finally:
    executor.close()
print(f"{{len(exp.tables['runs'])}} runs, {{len(exp.failures)}} failed")
for f in exp.failures:
    print(f.message())  # seed and the `twin run` command that replays it"""

PATTERN_FILES = """\
SCENARIOS = ["patterns/direct.toml", "patterns/orchestrated.toml",
             "patterns/event_driven.toml", "patterns/hybrid.toml"]  # under scenarios/"""

EXECUTION = """\
WORKERS = None  # local worker processes; None: all cores, 1: inside this kernel
DASK = None  # a Dask scheduler address such as "tcp://scheduler:8786" spreads the runs"""


def compare_patterns() -> list[NotebookNode]:
    return [
        new_markdown_cell("""\
# Compare integration patterns, with confidence intervals

One run of a stochastic simulation proves little. This notebook runs every pattern scenario
`REPLICATIONS` times (independent seeds, shared between patterns so they face the same
traffic) and shows the latency of each flow and the divergence between ERP and WMS side by
side, as means with 95% confidence intervals (Student t). The ranking then orders the
patterns by one KPI and says when the intervals overlap: no winner is claimed then.

**Change the question** in the parameters cell: `SET` overrides any scenario field for every
run (dotted paths, e.g. `{"faults.outages": [{"system": "erp", "start_h": 8,
"duration_h": 4}]}` for a longer outage, `{"warehouses.0.movements_per_hour": 8000}` for a
busier site); `KPI` picks what the ranking orders by (any name in `sim.kpis.KPIS`);
`SCENARIOS` can list your own files. More replications narrow the intervals."""),
        new_code_cell(f"""\
{PATTERN_FILES}
REPLICATIONS = 5
SET = {{}}  # dotted scenario field -> value, applied to every run
KPI = "unexplained_final_units"  # the ranking's KPI
{EXECUTION}
OUT = "results/notebooks/01_compare_patterns"  # under the repository root; None: memory only""",
                      metadata={"tags": ["parameters"]}),
        new_code_cell(setup("import matplotlib.pyplot as plt\nimport numpy as np\n"
                            "from IPython.display import Markdown, display")),
        new_code_cell(RUN_NOTE.format(configs="expand(BASES, fixed=SET)",
                                      kwargs='name="compare_patterns", kpi=KPI')),
        new_markdown_cell("""\
Each cell: mean over the replications ± the half-width of its 95% confidence interval.
`(n/N)` means the KPI was undefined in some runs (a flow without samples, or consistency never
reached after the fault) and the mean is over the n that had it."""),
        new_code_cell("""\
from sim.results import summary_table

display(Markdown(summary_table(exp)))"""),
        new_markdown_cell("""\
The verdict over the means: the pick and why, the Pareto set over damage, sync latency and API
calls, and the ranking (`sim.decision`; the same as `twin sweep` prints)."""),
        new_code_cell("""\
from sim.decision import terminal

print(terminal(exp.decision()))"""),
        new_markdown_cell("""\
One panel per KPI on which the patterns differ (a panel where every pattern shows the same
value says nothing, so it is left out): the mean and its 95% confidence interval per pattern,
each on its own scale. "> horizon": the percentile falls on work that never finished."""),
        new_code_cell("""\
summ = exp.tables["summary"].set_index(["label", "kpi"])
labels = [c.label for c in exp.configs]
CANDIDATES = ["damage", "unexplained_final_units", "updates_given_up", "orders_stuck",
              "dead_letters_left", "inventory_sync_p95_s", "order_release_p95_s",
              "order_to_ship_p95_s", "time_to_consistency_s", "api_calls"]
kpis = set(summ.index.get_level_values("kpi"))


def means(kpi):
    return summ.loc[[(label, kpi) for label in labels], "mean"].to_numpy(float)


shown = [k for k in CANDIDATES if k in kpis and len(set(np.round(means(k), 6))) > 1]
cols = 3
rows = max(1, -(-len(shown) // cols))
fig, axes = plt.subplots(rows, cols, figsize=(13, 2.4 + 1.9 * rows), squeeze=False)
y = np.arange(len(labels))
for ax, kpi in zip(axes.ravel(), shown, strict=False):
    m = means(kpi)
    half = summ.loc[[(label, kpi) for label in labels], "half_width"].fillna(0).to_numpy(float)
    finite = np.isfinite(m)
    ax.errorbar(np.where(finite, m, np.nan), y, xerr=np.where(finite, half, 0), fmt="o",
                capsize=3)
    for i in y[~finite]:
        ax.annotate("> horizon", (0.98, i), xycoords=("axes fraction", "data"), ha="right",
                    va="center", fontsize=8, color="tab:red")
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_ylim(-0.5, len(labels) - 0.5)
    ax.set_title(kpi.replace("_", " "), fontsize=9)
    ax.grid(axis="x", alpha=0.3)
for ax in axes.ravel()[len(shown):]:
    ax.set_visible(False)
fig.suptitle(f"Mean of {exp.replications} replications per pattern; bars: 95% confidence "
             "interval")
fig.tight_layout()"""),
        new_markdown_cell("""\
## Ranking

Ordered by `KPI` (lower is better unless the KPI says otherwise). Intervals that do not
overlap mean a real difference; overlapping ones do not prove there is none. The same value in
every run is a tie (the same rank), and fewer than 3 runs give no interval."""),
        new_code_cell("""\
print(exp.ranking.verdict(exp.labels))
exp.tables["ranking"][["rank", "label", "n", "mean", "ci_low", "ci_high", "overlaps", "ties"]]"""),
        new_markdown_cell("""\
Every table is in `OUT` as Parquet: `sim.results.load(ROOT / OUT)` returns `runs` (one row per
run and its seed), `summary` (every KPI with n, mean, std, CI, min, max), `ranking`, `configs`
and `failures`; `experiment.json` records the seeds, package versions and git revision."""),
    ]


def outage_recovery() -> list[NotebookNode]:
    return [
        new_markdown_cell("""\
# Outage recovery: divergence and backlog around an ERP outage

Every pattern scenario runs with the same ERP outage, `REPLICATIONS` times. The plots show,
over simulated time, the divergence still on its way (in flight), the divergence nobody will
fix by waiting (unexplained: given up, lost, applied twice), the bus backlog towards the ERP and
the warehouse work queue (workers blocked on a synchronous ERP call). Lines are the mean over
replications, bands their min-max. The table gives the time to consistency after the outage
with its 95% confidence interval, and how many runs never got back to consistent.

**Change the question**: `OUTAGE` is any fault of the scenario schema (`system` may be `erp`,
`wms`, `core`, a link such as `core_erp`; `kind` `down`, `slow` or `crash`); `SET` overrides
other fields (e.g. `{"bus.durable": False}` with a `crash` of the `core`)."""),
        new_code_cell(f"""\
{PATTERN_FILES}
OUTAGE = {{"system": "erp", "start_h": 10, "duration_h": 4, "kind": "down"}}
REPLICATIONS = 3
SET = {{}}  # dotted scenario field -> value, applied to every run
HOURS_BEFORE, HOURS_AFTER = 2, 8  # the plotted window around the outage
{EXECUTION}
OUT = "results/notebooks/02_outage_recovery"  # under the repository root; None: memory only""",
                      metadata={"tags": ["parameters"]}),
        new_code_cell(setup("import matplotlib.pyplot as plt\nimport pandas as pd")),
        new_code_cell(RUN_NOTE.format(
            configs='expand(BASES, fixed={**SET, "faults.outages": [OUTAGE]})',
            kwargs='name="outage_recovery",\n                         '
                   'kpi="time_to_consistency_s", keep_timeseries=True')),
        new_code_cell("""\
ts = exp.tables["timeseries"].merge(exp.tables["configs"][["config_id", "label"]])
ts["hour"] = ts["t"] / 3600
start, end = OUTAGE["start_h"], OUTAGE["start_h"] + OUTAGE["duration_h"]
ts = ts[(ts["hour"] >= start - HOURS_BEFORE) & (ts["hour"] <= end + HOURS_AFTER)]
series = {"in_flight_units": "in flight, units", "unexplained_units": "unexplained, units",
          "bus_backlog": "bus backlog, messages", "wms_queue": "warehouse work queue"}
fig, axes = plt.subplots(len(series), 1, figsize=(11, 10), sharex=True)
for ax, (column, title) in zip(axes, series.items(), strict=True):
    for label, part in ts.groupby("label", sort=False):
        band = part.groupby("hour")[column].agg(["mean", "min", "max"])
        ax.plot(band.index, band["mean"], lw=1.2, label=label)
        ax.fill_between(band.index, band["min"], band["max"], alpha=0.15)
    ax.axvspan(start, end, color="tab:red", alpha=0.1)
    ax.set_ylabel(title, fontsize=8)
axes[0].legend(fontsize=8, loc="upper right")
axes[0].set_title(f"{OUTAGE['system']} {OUTAGE.get('kind', 'down')} from {start:g} h to "
                  f"{end:g} h (shaded); mean of {exp.replications} replications, band min-max")
axes[-1].set_xlabel("simulated hours")
fig.tight_layout()"""),
        new_markdown_cell("""\
## Time to consistency

From the end of the outage until unexplained divergence is 0 and in-flight divergence is back
at its pre-outage level. `never` counts runs that did not get there before the run ended
(for `direct`, updates given up are never re-sent: it does not recover by itself)."""),
        new_code_cell("""\
ttc = exp.tables["summary"].query("kpi == 'time_to_consistency_s'")
table = pd.DataFrame({
    "pattern": ttc["label"],
    "minutes (mean)": ttc["mean"] / 60,
    "95% CI low": ttc["ci_low"] / 60,
    "95% CI high": ttc["ci_high"] / 60,
    "consistent runs": ttc["n"],
    "never": ttc["missing"],
}).reset_index(drop=True)
print(exp.ranking.verdict(exp.labels))
table.round(1)"""),
    ]


def capacity_planning() -> list[NotebookNode]:
    return [
        new_markdown_cell("""\
# Capacity planning: lag against load, and the saturation knee

Each pattern runs at a range of movement rates (`RATES`, movements per hour in the first
warehouse), `REPLICATIONS` times each. The first plot shows the p95 inventory-sync lag against
the rate with 95% confidence intervals: flat while the integration keeps up, then a knee where
a queue starts to grow without bound (the ERP's rate limit, its API workers, or for `direct`
the warehouse workers blocked on each call). The second shows updates a direct caller gave up:
they never reach the latency samples, so a pattern can look fast while dropping work. A
bisection (`sim.capacity`) then finds, per pattern, the highest rate that keeps the lag under
`SLO_S` (by the upper bound of the confidence interval, and nothing given up).

**Change the question**: `FIELD` can be any numeric scenario field (e.g.
`"shop.orders_per_hour"`, with `KPI = "order_release_p95_s"`); `SET` changes the landscape
(e.g. `{"erp.api.rate_limit_per_min": 2000}` for a bigger ERP plan). High rates are slow to
simulate: the defaults take several minutes on two cores; fewer `RATES` or `SEARCH = False`
give a quicker look, `DASK` a bigger machine."""),
        new_code_cell(f"""\
{PATTERN_FILES}
FIELD = "warehouses.0.movements_per_hour"
RATES = [5000, 15000, 25000, 30000, 35000, 40000]
KPI = "inventory_sync_p95_s"
SLO_S = 300  # the baseline's SLO on p95 inventory-sync lag
KNEE_FACTOR = 3  # the knee: first rate whose mean lag exceeds this x the lowest rate's
REPLICATIONS = 3
SET = {{"duration_h": 2, "warmup_h": 0.25, "faults.outages": []}}  # steady load, no outage
SEARCH = True  # also bisect for the capacity (runs more simulations)
SEARCH_LO, SEARCH_HI, SEARCH_STEPS = 1000, 45000, 4
{EXECUTION}
OUT = "results/notebooks/03_capacity_planning"  # under the repository root; None: memory only""",
                      metadata={"tags": ["parameters"]}),
        new_code_cell(setup("import matplotlib.pyplot as plt\nimport pandas as pd\n"
                            "from IPython.display import display")),
        new_code_cell(RUN_NOTE.format(configs="expand(BASES, {FIELD: RATES}, SET)",
                                      kwargs='name="capacity_planning", kpi=KPI')),
        new_code_cell("""\
summ = exp.tables["summary"]
lag = summ[summ["kpi"] == KPI]
given_up = summ[summ["kpi"] == "updates_given_up"]
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
for name, part in lag.groupby("scenario", sort=False):
    part = part.sort_values(FIELD)
    axes[0].errorbar(part[FIELD], part["mean"], yerr=part["half_width"].fillna(0), marker="o",
                     capsize=3, label=name)
for name, part in given_up.groupby("scenario", sort=False):
    part = part.sort_values(FIELD)
    axes[1].plot(part[FIELD], part["mean"], marker="o", label=name)
axes[0].axhline(SLO_S, color="tab:red", ls="--", lw=1, label=f"SLO {SLO_S:g} s")
axes[0].set_yscale("log")
axes[0].set_ylabel(f"{KPI} (log)")
axes[1].set_ylabel("updates given up (mean per run)")
for ax in axes:
    ax.set_xlabel(FIELD)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig.tight_layout()"""),
        new_code_cell("""\
def knee(part: pd.DataFrame) -> float | None:
    part = part.sort_values(FIELD)
    over = part[part["mean"] > KNEE_FACTOR * part["mean"].iloc[0]]
    return None if over.empty else float(over[FIELD].iloc[0])


def last_under_slo(part: pd.DataFrame) -> float | None:
    ok = part[(part["ci_high"].fillna(part["mean"]) <= SLO_S)]
    return None if ok.empty else float(ok[FIELD].max())


pd.DataFrame([
    {"pattern": name, "knee at": knee(part), "highest rate under the SLO": last_under_slo(part)}
    for name, part in lag.groupby("scenario", sort=False)
])"""),
        new_markdown_cell("""\
## Capacity by bisection

Between `SEARCH_LO` and `SEARCH_HI`, at most `SEARCH_STEPS` halvings after probing both ends;
each probe is `REPLICATIONS` runs with the same seeds. A probe passes when the upper bound of
the 95% confidence interval of the mean lag is under `SLO_S` and no run gave an update up."""),
        new_code_cell("""\
from sim.capacity import capacity_frame, capacity_search

if SEARCH:
    executor = make_executor(WORKERS, DASK)
    try:
        found = capacity_search(BASES, SLO_S, lo=SEARCH_LO, hi=SEARCH_HI, field=FIELD, kpi=KPI,
                                replications=REPLICATIONS, steps=SEARCH_STEPS, fixed=SET,
                                executor=executor,
                                out=ROOT / OUT / "capacity" if OUT else None)
    finally:
        executor.close()
    display(capacity_frame(found, SLO_S))"""),
    ]


def loadtest_results() -> list[NotebookNode]:
    return [
        new_markdown_cell("""\
# Load-test results: throughput, latency and the checker's verdict

Reads what `make loadtest` (`python -m loadtests.run`) left in `RESULTS`: the CSV files
locust wrote, and `summary.json` with the service's own numbers gathered after the drain. It
only reads files: nothing here starts the service or the load generator.

- **Throughput over time**: requests per second sent, and the p95 latency, second by second.
  The run's plan takes the ERP twin down in the middle (`--plan`, or `--outage-at`,
  `--outage-s`); movements are accepted while it is down and applied once it is back.
- **How the service coped**: its backlog per consumer, open outbox calls and event-loop lag,
  sampled each second (`status.csv`): an outage shows as the ERP backlog growing, then
  draining.
- **Latency percentiles per endpoint**: p50, p95 and p99, in two views. *From the actual
  send* is what the load generator measures by default. *From the intended send time* starts
  the clock when the open-model schedule said the request was due: a request held back
  because the previous one was late counts that wait too. A closed-loop tool leaves that
  wait out and hides the tail when the server saturates (coordinated omission); when the two
  views differ, the server could not keep up with the offered rate.
- **Failures by type**: every request whose answer was not the expected one (a 5xx, a
  malformed payload accepted, ...), and exceptions in the load generator.
- **The checker's verdict**: every movement acknowledged with a 2xx must be applied in the
  ERP twin exactly once. *lost*: acknowledged, never applied; *duplicated*: applied more than
  once; *unexpected*: applied without being attempted; *recovered*: applied although no
  acknowledgement came back (harmless: the producer would have retried). Then the
  reconciliation after the drain and the bus counters.

**Change the question**: run `make loadtest` again, or `python -m loadtests.run` with other
`--rate` (requests per second offered), `--duration` (seconds), `--users`, `--outage-at`,
`--outage-s` and `--out`; point `RESULTS` at that `--out` directory. To find where the
service saturates, run a few rates into separate directories and compare the two latency
views."""),
        new_code_cell("""\
RESULTS = "results/loadtest"  # the run's --out, under the repository root (or absolute)
OUTAGE_S = None  # (start, end) s to shade; None: the faults of the run's plan (summary.json)""",
                      metadata={"tags": ["parameters"]}),
        new_code_cell("""\
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

# The repository root: the notebook runs from notebooks/ (Jupyter) or from the root.
ROOT = next(p for p in (Path.cwd(), *Path.cwd().parents) if (p / "scenarios").is_dir())
DIR = ROOT / RESULTS
if not (DIR / "summary.json").is_file():
    raise FileNotFoundError(
        f"no load-test results in {DIR} (summary.json missing): run `make loadtest` first, "
        "or `python -m loadtests.run --out DIR` and set RESULTS to DIR")
summary = json.loads((DIR / "summary.json").read_text())
stats = pd.read_csv(DIR / "locust_stats.csv")
history = pd.read_csv(DIR / "locust_stats_history.csv", na_values=["N/A"])
failures = pd.read_csv(DIR / "locust_failures.csv")
exceptions_csv = DIR / "locust_exceptions.csv"
exceptions = pd.read_csv(exceptions_csv) if exceptions_csv.exists() else pd.DataFrame()
print(f"{DIR}: {summary['duration_s']} s at {summary['offered_rate_per_s']:g} requests/s "
      f"offered; {'PASSED' if summary['ok'] else 'FAILED'}")
faults = summary.get("plan", {}).get("faults", [])
WINDOWS = ([tuple(OUTAGE_S)] if OUTAGE_S else
           [(f["at_s"], f["at_s"] + f["for_s"]) for f in faults])  # shaded in the plots"""),
        new_markdown_cell("""\
## Throughput and p95 over time

Locust's history has one aggregated row per second. Every request is counted twice in it
(its own entry and its `intended:` entry), so the rate is halved; the p95 is over both
views together and over locust's last few seconds. The shaded bands are the plan's faults
(timed by locust on the plan's clock)."""),
        new_code_cell("""\
hist = history[history["Name"] == "Aggregated"].copy()
hist["t"] = hist["Timestamp"] - hist["Timestamp"].iloc[0]
# Requests/s from the running total (locust's own column lags and smooths).
hist["sent_per_s"] = hist["Total Request Count"].diff() / hist["t"].diff() / 2
fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
ax1.plot(hist["t"], hist["sent_per_s"], drawstyle="steps-post")
ax1.axhline(summary["offered_rate_per_s"], color="tab:gray", ls="--", lw=1, label="offered")
ax1.set_ylabel("requests/s")
ax1.legend(fontsize=8)
ax2.plot(hist["t"], hist["95%"], color="tab:orange")
ax2.set_ylabel("p95 latency, ms\\n(locust's recent window)")
ax2.set_xlabel("seconds since the load started")
for ax in (ax1, ax2):
    for start, end in WINDOWS:
        if start < hist["t"].max():  # a fault may come after a short run
            ax.axvspan(start, min(end, hist["t"].max()), color="tab:red", alpha=0.1)
    ax.grid(alpha=0.3)
fig.tight_layout()"""),
        new_markdown_cell("""\
## How the service coped: backlogs and event-loop lag

`status.csv` samples `GET /v1/status` once a second. *ERP backlog*: movements acknowledged
and not yet booked by the ERP (in flight: explained divergence, not damage). *Event-loop
lag*: the worst delay a ready request met in the last 5 s; when it grows, every request
waits, and the latency from the intended send time grows with it."""),
        new_code_cell("""\
status_csv = DIR / "status.csv"
if not status_csv.is_file():
    print("no status.csv in this run (older runs did not sample the service)")
else:
    status = pd.read_csv(status_csv)
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True)
    for col, label in [("backlog_erp", "to the ERP"), ("backlog_wms", "WMS view"),
                       ("backlog_orders", "order desk"), ("outbox_open_calls", "outbox calls")]:
        ax1.plot(status["t_s"], status[col], label=label, drawstyle="steps-post")
    ax1.set_ylabel("messages waiting")
    ax1.legend(fontsize=8)
    ax2.plot(status["t_s"], status["event_loop_lag_s"] * 1000, color="tab:purple")
    ax2.set_ylabel("event-loop lag, ms\\n(worst of the last 5 s)")
    ax2.set_xlabel("seconds since the load started (approximately)")
    for ax in (ax1, ax2):
        for start, end in WINDOWS:
            ax.axvspan(start, end, color="tab:red", alpha=0.1)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    print(f"peak ERP backlog {status['backlog_erp'].max():,}, worst event-loop lag "
          f"{status['event_loop_lag_s'].max() * 1000:.0f} ms")"""),
        new_markdown_cell("""\
## Latency per endpoint: from the actual send and from the intended send time"""),
        new_code_cell("""\
PCTS = ["50%", "95%", "99%"]
per = stats[stats["Name"] != "Aggregated"].copy()
per[PCTS] = per[PCTS].apply(pd.to_numeric, errors="coerce")
per["view"] = np.where(per["Type"] == "INTENDED", "intended", "actual")
per["endpoint"] = per["Name"].str.removeprefix("intended: ").str.removeprefix("POST ")
views = {"actual": "from the actual send", "intended": "from the intended send time"}
fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
for ax, (view, title) in zip(axes, views.items(), strict=True):
    part = per[per["view"] == view].set_index("endpoint")
    part[PCTS].plot.bar(ax=ax, rot=20, width=0.8)
    ax.set_title(f"Latency {title}")
    ax.set_ylabel("ms")
    ax.set_xlabel("")
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
fig.tight_layout()
table = per.pivot_table(index="endpoint", columns="view", values=[*PCTS, "Request Count"],
                        aggfunc="first")
table.columns = [f"{pct} {view}" for pct, view in table.columns]
display(table[["Request Count actual", *(f"{p} {v}" for p in PCTS for v in views)]])"""),
        new_markdown_cell("""\
## Failures by type"""),
        new_code_cell("""\
if failures.empty:
    print("no failed requests")
else:
    display(failures.groupby(["Name", "Error"])["Occurrences"].sum()
            .sort_values(ascending=False).to_frame())
if exceptions.empty:
    print("no exceptions in the load generator")
else:
    display(exceptions[["Count", "Message"]])"""),
        new_markdown_cell("""\
## The checker's verdict and the service's numbers

Counts of movement ids. `ok` needs the load generator to exit cleanly, none lost,
duplicated or unexpected, no divergence left after the drain and no dead letter."""),
        new_code_cell("""\
checker = summary["checker"]
verdict = pd.Series({k: v for k, v in checker.items() if k != "examples"}, name="checker")
display(verdict.to_frame())
for kind, ids in checker["examples"].items():
    if ids:
        print(f"{kind}, e.g.: {', '.join(map(str, ids))}")
service = {**{f"reconcile: {k}": v for k, v in summary["reconcile"].items()},
           "dead letters": summary["dead_letters"],
           **{f"bus: {k}": v for k, v in summary["bus_counters"].items()}}
display(pd.Series(service, name="after the drain").to_frame())
print(f"verdict: {'PASSED' if summary['ok'] else 'FAILED'} "
      f"(load generator exit code {summary['locust_exit_code']})")"""),
    ]


NOTEBOOKS = {
    "01_compare_patterns.ipynb": compare_patterns,
    "02_outage_recovery.ipynb": outage_recovery,
    "03_capacity_planning.ipynb": capacity_planning,
    "04_loadtest_results.ipynb": loadtest_results,
}


def notebook(name: str) -> NotebookNode:
    nb = new_notebook(cells=NOTEBOOKS[name]())
    for i, cell in enumerate(nb.cells):
        cell.id = f"{name[:2]}-{i:02d}"  # stable ids: rebuilding changes nothing
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nb


def text(name: str) -> str:
    return nbformat.writes(notebook(name)) + "\n"


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for name in NOTEBOOKS:
        path = HERE / name
        if check:
            if not path.exists() or path.read_text() != text(name):
                stale.append(name)
        else:
            path.write_text(text(name))
    if stale:
        print(f"out of date (run python notebooks/build.py): {', '.join(stale)}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
