"""The `twin` command: run, compare, validate scenarios; export their JSON Schema."""

from __future__ import annotations

import json
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from sim.scenario import Scenario, ScenarioError, json_schema, load

if TYPE_CHECKING:
    from sim.executors import Executor

app = typer.Typer(
    help="interop-twin: measure how ERP, WMS, carrier and shop drift apart under faults.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _load(path: Path, seed: int | None, sets: list[str] | None = None) -> Scenario:
    """The scenario in `path` with `--set KEY=VALUE` assignments (dotted paths, TOML values,
    as in sweeps) and `--seed` applied; errors name the file and the field."""
    from sim.sweep import resolve

    assignments = _parse_set(sets or [])
    if seed is not None:
        assignments["seed"] = seed
    try:
        return resolve(path, assignments)
    except ValueError as exc:  # ScenarioError, or a --set path that does not fit
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


SET_HELP = ("KEY=VALUE applied to the scenario, a dotted path and a TOML value, e.g. "
            "--set erp.api.workers=16 --set 'patterns.inventory=\"hybrid\"'.")


def _run_all(scenarios: list[Scenario]) -> list:  # type: ignore[type-arg]
    from sim.twin import run

    results = []
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(), console=console, disable=not console.is_terminal,
    ) as progress:
        for sc in scenarios:
            task = progress.add_task(sc.name, total=sc.duration_s, info="")
            wall0 = time.perf_counter()

            def tick(now: float, total: float, events: int, task: TaskID = task,
                     wall0: float = wall0) -> None:
                rate = events / max(time.perf_counter() - wall0, 1e-9)
                progress.update(task, completed=min(now, total),
                                info=f"{now / 3600:6.1f} sim h  {rate:,.0f} events/s")

            try:
                results.append(run(sc, tick))
            except Exception:
                console.print(f"[red]run failed[/red]: replay with "
                              f"`twin run <file> --seed {sc.seed}` (scenario {sc.name})")
                raise
            progress.update(task, completed=sc.duration_s)
    return results


@app.command("run")
def run_cmd(
    scenario: Annotated[Path, typer.Argument(help="Scenario TOML file.")],
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("results/run"),
    seed: Annotated[int | None, typer.Option(help="Override the scenario's seed.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
) -> None:
    """Run one scenario and write summary.json, Parquet, plots, report.md and report.html."""
    from sim.report import write_run

    sc = _load(scenario, seed, set_)
    (result,) = _run_all([sc])
    s = write_run(result, out / sc.name)
    d = s["divergence"]
    typer.echo(json.dumps({
        "scenario": s["scenario"], "out": str(out / sc.name),
        "inventory_sync_p95_s": s["latency"]["inventory_sync"]["p95"],
        "unexplained_final_units": d["unexplained_final_units"],
        "time_to_consistency_s": d["time_to_consistency_s"],
        "lost": s["lost"], "duplicated": s["duplicated"],
        "warehouse_blocked_s": s["warehouse_blocked_s"], "wall_s": s["wall_s"],
    }, indent=2))


@app.command()
def compare(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario TOML files.")],
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("results/compare"),
    seed: Annotated[int | None, typer.Option(help="One seed for all (default: each "
                                                   "file's own).")] = None,
    kpi: Annotated[str, typer.Option(help="Rank by this KPI (see `twin kpis`).")] = "damage",
    set_: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP + " Applied to "
                                                              "every scenario.")] = None,
) -> None:
    """Run several scenarios; print the verdict and write decision.md, comparison.csv (every
    KPI), comparison.md, plots and one folder per run."""
    from sim.decision import terminal
    from sim.kpis import kpi as lookup_kpi
    from sim.report import comparison_decision, write_comparison

    try:
        lookup_kpi(kpi)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    scs = [_load(p, seed, set_) for p in scenarios]
    names = [s.name for s in scs]
    if len(set(names)) != len(names):
        console.print(f"[red]error:[/red] scenario names must differ, got {names}")
        raise typer.Exit(2)
    write_comparison(_run_all(scs), out, kpi)
    summaries = [json.loads((out / n / "summary.json").read_text()) for n in names]
    typer.echo(terminal(comparison_decision(summaries, kpi), str(out)))


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="Scenario or sweep TOML files.")],
    show: Annotated[bool, typer.Option(help="Print each resolved scenario (extends and "
                                            "defaults applied) as JSON.")] = False,
) -> None:
    """Check scenario and sweep files; errors name the file and the field."""
    from sim.sweep import SweepError, is_sweep, load_sweep

    bad = 0
    for f in files:
        try:
            if is_sweep(f):
                sw = load_sweep(f)
                typer.echo(f"ok  {f} (sweep: {len(sw.configs)} configurations x "
                           f"{sw.replications} replications)")
                if show:
                    for c in sw.configs:
                        typer.echo(f"# {c.id} {c.label}")
                        typer.echo(c.scenario.model_dump_json(indent=2))
                continue
            sc = load(f)
            empty = f.is_file() and not tomllib.loads(f.read_text())
            typer.echo(f"ok  {f}" + (" (empty: every field takes its default)" if empty else ""))
            if show:
                typer.echo(sc.model_dump_json(indent=2))
        except (ScenarioError, SweepError) as exc:
            bad += 1
            console.print(f"[red]error:[/red] {exc}")
    if bad:
        raise typer.Exit(2)


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")]
    = None,
) -> None:
    """Print the JSON Schema of scenario files (every knob with its description)."""
    text = json.dumps(json_schema(), indent=2) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)


@app.command()
def calibrate(
    run_dir: Annotated[Path | None, typer.Argument(help="A load test's run directory "
                                                   "(python -m loadtests.run --out DIR).")]
    = None,
    out: Annotated[Path, typer.Option("-o", "--out", help="The scenario to write.")]
    = Path("calibrated.toml"),
    plan: Annotated[Path | None, typer.Option(help="A load plan alone (loadtests/shapes/"
                                              "*.toml): its stages and faults as twin input.")]
    = None,
    movements: Annotated[Path | None, typer.Option(help="Your movements log: CSV "
                                                   "timestamp,kind,... (docs/calibration.md).")]
    = None,
    calls: Annotated[Path | None, typer.Option(help="Your partner calls log: CSV timestamp,"
                                               "partner,operation,duration_s,batch_size.")]
    = None,
    name: Annotated[str | None, typer.Option(help="The scenario's name (default: the "
                                             "output file's).")] = None,
) -> None:
    """Fit a scenario from measurements: arrival rates per stage, service-time distributions
    (the best family by Kolmogorov-Smirnov), batch sizes, the plan's faults."""
    from sim.calibrate import CalibrationError, write_scenario
    from sim.calibrate import calibrate as fit

    try:
        cal, source = fit(run_dir, plan=plan, movements=movements, calls=calls,
                          name=name or out.stem)
        write_scenario(cal, out, source)
    except CalibrationError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    fitted = ", ".join(f"{p} {f.best.family} (D = {f.best.ks:.3f}, {f.n} calls)"
                       for p, (f, _) in cal.service.items()) or "none measured"
    typer.echo(f"wrote {out}: {len(cal.movement_stages)} movement stage(s), "
               f"{len(cal.outages)} outage(s); service times: {fitted}")


@app.command()
def kpis() -> None:
    """List every KPI (for `--kpi`, sweeps and SLOs `kpi = ...`) and what it measures."""
    from sim.kpis import KPIS

    width = max(map(len, KPIS))
    for k in KPIS.values():
        better = "" if k.lower_is_better else " (higher is better)"
        typer.echo(f"{k.name.ljust(width)}  {k.description}{better}")


@app.command()
def version() -> None:
    """Print the installed version."""
    from importlib.metadata import version as v

    typer.echo(v("interop-twin"))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind; loopback unless you mean "
                                           "otherwise.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    db: Annotated[Path | None, typer.Option(help="SQLite file of all durable state "
                                                 "(default: $TWIN_DB or twin.db).")] = None,
    synchronous: Annotated[str | None, typer.Option(help="SQLite synchronous level: NORMAL "
                                                         "or FULL.")] = None,
    store: Annotated[str | None, typer.Option(
        help="PostgreSQL URL (postgresql://user@host:port/dbname) of the durable state instead "
             "of the SQLite file (default: $TWIN_STORE; a password is better in $TWIN_STORE, "
             "PGPASSWORD or ~/.pgpass than on a command line).")] = None,
    store_schema: Annotated[str | None, typer.Option(
        help="PostgreSQL schema of the service's tables (default: $TWIN_STORE_SCHEMA or "
             "interop_twin).")] = None,
    instance_id: Annotated[str | None, typer.Option(
        help="With --store: this instance's id among several sharing the schema (default: "
             "$TWIN_INSTANCE_ID; 'auto': host name and process id). Unset: one instance "
             "per schema.")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request (costly under "
                                                  "load).")] = False,
    erp_url: Annotated[str | None, typer.Option(help="Base URL of the ERP (e.g. a `twin "
                                                     "twins` server's .../erp); default: "
                                                     "$TWIN_ERP_URL, else twins in process.")]
    = None,
    wms_url: Annotated[str | None, typer.Option(help="Base URL of the WMS (.../wms); "
                                                     "default: $TWIN_WMS_URL.")] = None,
    gc_tuning: Annotated[bool, typer.Option(help="Freeze start-up objects and collect the "
                                                 "young generation less often (fewer "
                                                 "collector pauses under load).")] = True,
    feed: Annotated[Path | None, typer.Option(
        help="Drop folder of the file feed: X12 files (.x12, .edi) and CSV movement files "
             "(.csv), written as name.part then renamed; processed/ and failed/ inside it "
             "(default: $TWIN_FEED_DIR; docs/edi.md).")] = None,
) -> None:
    """Run the live integration service (HTTP API v1) under uvicorn, in one process.

    API keys come from the environment: TWIN_API_KEY_SHOP, _WMS, _ERP, _CARRIER, _ADMIN (a
    system without a key cannot call); TWIN_RATE_<SYSTEM> sets its requests per second.
    Without --erp-url/--wms-url (or TWIN_ERP_URL/TWIN_WMS_URL) the ERP and WMS twins run in
    this process, over <db>.twins.db; with them, the core calls those URLs and sends
    TWIN_PARTNER_KEY. TWIN_INTAKE_WORKERS processes (default 1; 0: none) read movement
    batches off the event loop. With --store (or TWIN_STORE) the bus and the idempotency
    records live in PostgreSQL (one instance per schema, or several with --instance-id, which
    then need --erp-url and --wms-url: one ERP for all); the in-process twins stay on
    <db>.twins.db."""
    import os
    import secrets

    import httpx
    import uvicorn
    from pydantic import SecretStr, ValidationError

    from integration_core.service import Settings, create_app

    erp_url = erp_url or os.environ.get("TWIN_ERP_URL")
    wms_url = wms_url or os.environ.get("TWIN_WMS_URL")
    remote = erp_url is not None or wms_url is not None
    if remote and (erp_url is None or wms_url is None):
        console.print("[red]error:[/red] give both --erp-url and --wms-url, or neither")
        raise typer.Exit(2)
    local_key = secrets.token_urlsafe(24)
    if instance_id == "auto":
        import socket

        instance_id = f"{socket.gethostname()}-{os.getpid()}"
    try:
        settings = Settings.from_env(
            os.environ, db=db, synchronous=synchronous, erp_url=erp_url, wms_url=wms_url,
            store=store, store_schema=store_schema, feed_dir=feed, instance_id=instance_id,
            partner_key=None if remote else SecretStr(local_key))
    except ValueError as exc:
        why = str(exc)
        if isinstance(exc, ValidationError):  # paths and messages only: inputs may hold keys
            why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                            for e in exc.errors(include_input=False, include_url=False))
        console.print(f"[red]error:[/red] invalid service settings: {why}")
        raise typer.Exit(2) from None
    systems = ", ".join(k.system for k in settings.keys)
    transport = None
    if remote:
        partners = f"ERP {settings.erp_url}, WMS {settings.wms_url}"
    else:
        from sim.live import create_twins_app

        twins_db = settings.db.with_name(settings.db.name + ".twins.db")
        transport = httpx.ASGITransport(app=create_twins_app(twins_db, local_key))
        partners = f"ERP and WMS twins in process ({twins_db})"
    if settings.instance_id is not None and not remote:
        console.print("[red]error:[/red] --instance-id: several instances must call one ERP "
                      "and one WMS: give --erp-url and --wms-url")
        raise typer.Exit(2)
    where = (f"db {settings.db}, synchronous {settings.synchronous}" if settings.store is None
             else settings.store_label)
    if settings.instance_id is not None:
        where += f", instance {settings.instance_id}"
    console.print(f"serving on http://{host}:{port} ({where}, keys for: {systems}; "
                  f"{partners})")
    if settings.feed_dir is not None:
        console.print(f"file feed: {settings.feed_dir} (every {settings.feed_poll_s:g} s)")
    app_ = create_app(settings, partner_transport=transport)
    if gc_tuning:
        from integration_core.service.collector import tune_collector

        tune_collector()
    # One worker: the engine owns the SQLite file and the bus's in-memory queues (the intake
    # processes only parse).
    uvicorn.run(app_, host=host, port=port,
                log_level=log_level, access_log=access_log, workers=1)


@app.command()
def twins(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8090,
    db: Annotated[Path, typer.Option(help="SQLite file of the twins' state.")]
    = Path("twins.db"),
    seed: Annotated[int, typer.Option(help="Seed of the flaky fault switch.")] = 0,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Run the ERP and WMS twins the service calls (under /erp and /wms), with their fault
    switches (PUT /erp/fault, /wms/fault). Callers send TWIN_PARTNER_KEY as X-Partner-Key."""
    import os

    import uvicorn

    from sim.live import create_twins_app

    key = os.environ.get("TWIN_PARTNER_KEY", "")
    if len(key) < 16:
        console.print("[red]error:[/red] TWIN_PARTNER_KEY: set a key of at least 16 "
                      "characters (the service sends the same one)")
        raise typer.Exit(2)
    from integration_core.service.collector import tune_collector

    console.print(f"twins on http://{host}:{port}/erp and /wms (db {db})")
    app_ = create_twins_app(db, key, seed)
    tune_collector()  # the service's setting: the twins allocate as much per movement
    uvicorn.run(app_, host=host, port=port, log_level=log_level,
                access_log=False, workers=1)


def _run_progress(total: int | None) -> Progress:
    """A bar over runs (an experiment's unit of work), not simulated time."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/"
        + ("{task.total}" if total else "?") + " runs  {task.fields[info]}"),
        TimeElapsedColumn(), console=console, disable=not console.is_terminal,
    )


def _executor(workers: int | None, dask: str | None) -> Executor:
    from sim.executors import make_executor

    try:
        return make_executor(workers, dask)
    except (OSError, TimeoutError) as exc:
        console.print(f"[red]error:[/red] cannot reach the Dask scheduler at {dask}: {exc}")
        raise typer.Exit(2) from None


def _parse_set(items: list[str]) -> dict[str, object]:
    """`KEY=VALUE` pairs; VALUE is read as a TOML value (`4`, `"erp"`, `[1, 2]`), else text."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            console.print(f"[red]error:[/red] --set expects KEY=VALUE, got {item!r}")
            raise typer.Exit(2)
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


@app.command()
def sweep(
    file: Annotated[Path, typer.Argument(help="Sweep TOML file (see sim/sweep.py).")],
    out: Annotated[Path | None, typer.Option(help="Results directory (default: "
                                                  "results/sweeps/<name>).")] = None,
    workers: Annotated[int | None, typer.Option(help="Local worker processes (default: all "
                                                     "cores; 1: in this process).")] = None,
    dask: Annotated[str | None, typer.Option(help="Dask scheduler address, e.g. "
                                                  "tcp://host:8786.")] = None,
    kpi: Annotated[str | None, typer.Option(help="Rank by this KPI (default: the file's).")]
    = None,
    replications: Annotated[int | None, typer.Option(help="Override the file's count.")]
    = None,
    timeseries: Annotated[bool, typer.Option(help="Also keep every run's sampled series "
                                                  "(timeseries.parquet).")] = False,
) -> None:
    """Run a sweep: replications of every grid point; means with 95% CIs and a ranking."""
    from sim.decision import terminal
    from sim.executors import RunOutcome
    from sim.experiment import run_sweep
    from sim.kpis import kpi as lookup_kpi
    from sim.sweep import SweepError, load_sweep

    try:
        sw = load_sweep(file)
        if kpi is not None:
            lookup_kpi(kpi)
    except (SweepError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    n = replications or sw.replications
    dest = out or Path("results/sweeps") / sw.name
    ex = _executor(workers, dask)
    try:
        with _run_progress(len(sw.configs) * n) as progress:
            task = progress.add_task(sw.name, total=len(sw.configs) * n, info="")
            failed = 0

            def tick(o: RunOutcome) -> None:
                nonlocal failed
                failed += not o.ok
                progress.update(task, advance=1, info=f"{failed} failed" if failed else "")

            extra = {} if kpi is None else {"kpi": kpi, "lower_is_better": None}
            exp = run_sweep(sw, replications=n, executor=ex, out=dest,
                            keep_timeseries=timeseries, on_outcome=tick, **extra)
    finally:
        ex.close()
    typer.echo(terminal(exp.decision(), str(dest)))
    typer.echo(f"Means with 95% CIs and every KPI: {dest}/report.md (and runs.parquet, "
               "summary.parquet, ...)")
    for f in exp.failures:
        console.print(f"[red]{f.message()}[/red]")
    if exp.failures:
        raise typer.Exit(1)


@app.command()
def capacity(
    scenarios: Annotated[list[Path], typer.Argument(help="Scenario files, e.g. one per "
                                                         "pattern.")],
    slo: Annotated[float, typer.Option(help="Upper limit on the KPI (seconds for latency).")]
    = 300.0,
    lo: Annotated[float, typer.Option(help="Lowest value probed.")] = 1000.0,
    hi: Annotated[float, typer.Option(help="Highest value probed.")] = 60000.0,
    field: Annotated[str, typer.Option(help="Dotted scenario field to raise: one site by "
                                            "index or id (warehouses.DC.movements_per_hour), "
                                            "every site with * (warehouses.*.peak_multiplier "
                                            "with --lo 1 --hi 5 scales them all).")]
    = "warehouses.0.movements_per_hour",
    kpi: Annotated[str, typer.Option(help="KPI held under the SLO.")] = "inventory_sync_p95_s",
    replications: Annotated[int, typer.Option(help="Runs per probe.")] = 3,
    steps: Annotated[int, typer.Option(help="Bisection steps after probing lo and hi.")] = 6,
    criterion: Annotated[str, typer.Option(help="upper: the CI's upper bound must meet the "
                                                "SLO; mean: the mean must.")] = "upper",
    guard: Annotated[list[str] | None, typer.Option(help="KPI=LIMIT no replication may exceed "
                                                        "(default updates_given_up=0).")]
    = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE applied to every "
                                                              "run, e.g. duration_h=4.")] = None,
    out: Annotated[Path, typer.Option(help="Results directory.")] = Path("results/capacity"),
    workers: Annotated[int | None, typer.Option(help="Local worker processes.")] = None,
    dask: Annotated[str | None, typer.Option(help="Dask scheduler address.")] = None,
) -> None:
    """Per scenario, the highest load (movements per hour by default) meeting an SLO."""
    from sim.capacity import capacity_search, report_markdown

    if criterion not in ("upper", "mean"):
        console.print(f"[red]error:[/red] --criterion must be upper or mean, got {criterion!r}")
        raise typer.Exit(2)
    fixed = _parse_set(set_ or [])
    guards = None if guard is None else {k: float(str(v)) for k, v in _parse_set(guard).items()}
    ex = _executor(workers, dask)
    try:
        with _run_progress(None) as progress:
            task = progress.add_task("capacity", total=None, info="")
            found = capacity_search(
                scenarios, slo, lo=lo, hi=hi, field=field, kpi=kpi, replications=replications,
                steps=steps, criterion="upper" if criterion == "upper" else "mean",
                guards=guards, fixed=fixed, executor=ex, out=out,
                on_outcome=lambda o: progress.update(task, advance=1),
            )
    except (ScenarioError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        ex.close()
    from sim.results import load_meta

    meta = load_meta(out)
    typer.echo(report_markdown(meta, found, meta.get("failures", [])))
    typer.echo(f"written to {out}/ (report.md, probes.parquet, capacity.parquet, runs.parquet)")
