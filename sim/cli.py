"""The `twin` command: run, compare, validate scenarios; export their JSON Schema."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from sim.scenario import Scenario, ScenarioError, json_schema, load

app = typer.Typer(
    help="interop-twin: measure how ERP, WMS, carrier and shop drift apart under faults.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _load(path: Path, seed: int | None) -> Scenario:
    try:
        return load(path, **({} if seed is None else {"seed": seed}))
    except ScenarioError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


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
) -> None:
    """Run one scenario and write summary.json, Parquet, plots and report.md."""
    from sim.report import write_run

    sc = _load(scenario, seed)
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
) -> None:
    """Run several scenarios and write one comparison table (CSV + markdown) and plots."""
    from sim.report import markdown_table, write_comparison

    scs = [_load(p, seed) for p in scenarios]
    names = [s.name for s in scs]
    if len(set(names)) != len(names):
        console.print(f"[red]error:[/red] scenario names must differ, got {names}")
        raise typer.Exit(2)
    table = write_comparison(_run_all(scs), out)
    typer.echo(markdown_table(table.to_dict("records")))
    typer.echo(f"\nwritten to {out}/ (comparison.csv, comparison.md, plots, one folder per run)")


@app.command()
def validate(files: Annotated[list[Path], typer.Argument(help="Scenario TOML files.")]) -> None:
    """Check scenario files; errors name the file and the field."""
    bad = 0
    for f in files:
        try:
            load(f)
            typer.echo(f"ok  {f}")
        except ScenarioError as exc:
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
def version() -> None:
    """Print the installed version."""
    from importlib.metadata import version as v

    typer.echo(v("interop-twin"))
