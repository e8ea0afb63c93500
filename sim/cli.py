"""The `twin` command."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="interop-twin: digital twin of ERP <-> WMS integration.", no_args_is_help=True
)


@app.callback()
def main() -> None:
    """interop-twin: measure how ERP, WMS, carrier and shop drift apart under faults."""


@app.command()
def version() -> None:
    """Print the installed version."""
    from importlib.metadata import version as v

    typer.echo(v("interop-twin"))
