"""The notebooks: committed without outputs, in sync with notebooks/build.py, free of locust,
and each one executes with small parameters (nbclient, in this venv's Python)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat as _nbformat
import pytest
from nbclient import NotebookClient

nbformat: Any = _nbformat  # untyped: mypy would flag every call

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
FILES = sorted(NOTEBOOKS.glob("*.ipynb"))

# A one-hour day at a tenth of the baseline's size: each run takes well under a second.
TINY = {"duration_h": 1.5, "warmup_h": 0.25, "drain_h": 1, "catalog.skus": 100,
        "warehouses.0.movements_per_hour": 400, "shop.orders_per_hour": 20}
SMALL: dict[str, dict[str, Any]] = {
    "01_compare_patterns.ipynb": {
        "REPLICATIONS": 2, "WORKERS": 2,  # one notebook starts a process pool from the kernel
        "SET": {**TINY, "faults.outages": [{"system": "erp", "start_h": 0.5,
                                            "duration_h": 0.25}]},
    },
    "02_outage_recovery.ipynb": {
        "SCENARIOS": ["patterns/direct.toml", "patterns/event_driven.toml"],
        "OUTAGE": {"system": "erp", "start_h": 0.5, "duration_h": 0.25, "kind": "down"},
        "REPLICATIONS": 2, "WORKERS": 1, "SET": TINY,
    },
    "03_capacity_planning.ipynb": {
        "SCENARIOS": ["patterns/direct.toml", "patterns/event_driven.toml"],
        "RATES": [300, 1500, 3000], "REPLICATIONS": 2, "WORKERS": 1,
        "SET": {**TINY, "duration_h": 1, "warmup_h": 0, "faults.outages": [],
                "erp.api.rate_limit_per_min": 30, "shop.orders_per_hour": 0},
        "SLO_S": 60, "SEARCH_LO": 300, "SEARCH_HI": 3000, "SEARCH_STEPS": 1,
    },
}


def builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("notebook_build", NOTEBOOKS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_notebook_has_small_parameters_for_ci() -> None:
    assert [f.name for f in FILES] == sorted(SMALL)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_committed_without_outputs_and_with_one_parameters_cell(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert nb.cells[0].cell_type == "markdown" and "Change the question" in nb.cells[0].source
    assert "locust" not in path.read_text()


def test_notebooks_match_their_builder() -> None:
    build = builder()
    for path in FILES:
        assert path.read_text() == build.text(path.name), "run python notebooks/build.py"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A kernelspec for this interpreter, first on JUPYTER_PATH: the notebooks must run in
    the venv that has the project, not in whatever `python3` kernel the machine has."""
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "interop-twin-test"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "interop-twin (tests)", "language": "python",
    }))
    mp = pytest.MonkeyPatch()
    mp.setenv("JUPYTER_PATH", str(root))
    mp.setenv("JUPYTER_PLATFORM_DIRS", "1")  # jupyter_core's own migration warning, off
    yield "interop-twin-test"
    mp.undo()


def with_parameters(nb: Any, values: dict[str, Any]) -> None:
    """Papermill's way: a cell right after the `parameters` one that overrides them."""
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{k} = {v!r}" for k, v in values.items())
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(
        source, metadata={"tags": ["injected-parameters"]}))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_notebook_runs_with_small_parameters(path: Path, kernel: str, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    with_parameters(nb, {**SMALL[path.name], "OUT": str(tmp_path / "out")})
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=60, kernel_name=kernel,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    assert time.perf_counter() - t0 < 45
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs if o.output_type == "stream")
    assert " 0 failed" in text
    assert (tmp_path / "out" / "runs.parquet").exists()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images  # the plots were drawn
