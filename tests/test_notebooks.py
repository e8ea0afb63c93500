"""The notebooks: committed without outputs, in sync with notebooks/build.py, never importing
locust, and each one executes with small parameters (nbclient, in this venv's Python); the
load-test one reads the files of a short real `loadtests.run`."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat as _nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

nbformat: Any = _nbformat  # untyped: mypy would flag every call

REPO = Path(__file__).parents[1]
NOTEBOOKS = REPO / "notebooks"
FILES = sorted(NOTEBOOKS.glob("*.ipynb"))
LOADTEST = "04_loadtest_results.ipynb"  # reads a load-test run's files; runs no simulation
SIMULATIONS = [f for f in FILES if f.name != LOADTEST]

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
    LOADTEST: {"OUTAGE_S": None},  # RESULTS: the `loadtest_run` fixture's directory
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
    code_text = "\n".join(c.source for c in code)
    assert not re.search(r"^\s*(import|from)\s+(locust|gevent)\b", code_text, re.MULTILINE)


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


def execute(nb: Any, kernel: str) -> str:
    """Run the notebook from notebooks/ (as Jupyter would); return its printed text after
    checking that no cell failed and that it drew at least one plot."""
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=60, kernel_name=kernel,
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    assert time.perf_counter() - t0 < 45
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert [o for o in outputs if o.output_type == "error"] == []
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the plots were drawn
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream")


@pytest.mark.parametrize("path", SIMULATIONS, ids=lambda p: p.name)
def test_notebook_runs_with_small_parameters(path: Path, kernel: str, tmp_path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    with_parameters(nb, {**SMALL[path.name], "OUT": str(tmp_path / "out")})
    text = execute(nb, kernel)
    assert " 0 failed" in text
    assert (tmp_path / "out" / "runs.parquet").exists()


@pytest.fixture(scope="module")
def loadtest_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One short real load test (service + locust, loopback only, in subprocesses), with the
    ERP outage early enough to fall inside it."""
    out = tmp_path_factory.mktemp("loadtest")
    cmd = [sys.executable, "-m", "loadtests.run", "--duration", "6", "--rate", "40",
           "--outage-at", "2", "--outage-s", "2", "--out", str(out)]
    try:
        done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as e:  # its output may be bytes even with text=True
        said = [b.decode(errors="replace") if isinstance(b, bytes) else b or ""
                for b in (e.stdout, e.stderr)]
        pytest.fail("loadtests.run did not finish within 120 s:\n" + "\n".join(said))
    if done.returncode != 0:
        pytest.fail(f"loadtests.run exited with {done.returncode}:\n{done.stdout}\n"
                    f"{done.stderr}")
    return out


def test_loadtest_notebook_reads_a_real_run(kernel: str, loadtest_run: Path) -> None:
    nb = nbformat.read(NOTEBOOKS / LOADTEST, as_version=4)
    with_parameters(nb, {**SMALL[LOADTEST], "RESULTS": str(loadtest_run)})
    nb.cells.append(nbformat.v4.new_code_cell(  # it read files only: no locust, no gevent
        'import sys\nassert not {"locust", "gevent"} & set(sys.modules), "locust imported"'))
    text = execute(nb, kernel)
    assert "verdict: PASSED" in text and "no failed requests" in text


def test_loadtest_notebook_without_results_says_to_run_make_loadtest(
        kernel: str, tmp_path: Path) -> None:
    nb = nbformat.read(NOTEBOOKS / LOADTEST, as_version=4)
    with_parameters(nb, {"RESULTS": str(tmp_path / "missing")})
    with pytest.raises(CellExecutionError, match="run `make loadtest` first"):
        NotebookClient(nb, timeout=60, kernel_name=kernel,
                       resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
