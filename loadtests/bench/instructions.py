"""Instructions per movement: the twin's cost, or the live service's, counted instead of timed.

On this shared 2-core machine a CPU-time figure moves by 10-30% with the neighbours' load, so
two builds a few percent apart cannot be told apart by timing. Valgrind's callgrind counts the
instructions the interpreter executes, which does not depend on the load: the same build
gives the same count to a few parts per million. This runs the twin benchmark's scenario
(`loadtests.bench.twin.scenario`, event-driven at 10,000 movements/h) under callgrind for two
durations, and divides the difference in instructions by the difference in movements, which
removes start-up and imports. `--against DIR` counts another checkout the same way (a git
worktree of the old build) and reports the ratio.

    python -m loadtests.bench.instructions [--hours 0.25 0.75] [--against /tmp/old-build]
    python -m loadtests.bench.instructions --path service [--batches 10 30] [--against DIR]

`--path service` counts `loadtests/bench/service_path.py` instead: the service's own work on
batches of 500 (intake read, store, answer, WMS view, ERP postings and acks) without HTTP, for
two numbers of batches. It runs this checkout's file over the other checkout's code, which must
have `routes.wms.batch_answer` and `partners.posting_body` (2026-12-04 on).

About a minute per checkout (the two runs of each go in parallel); needs ``valgrind``
(``apt-get install -y valgrind``). Instructions are not time (a cache miss costs more than an
add), so confirm a large change with `loadtests.bench.twin` too. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from loadtests.bench.common import machine

REPO = Path(__file__).resolve().parents[2]
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")
_RUN = (
    "import json, sys\n"
    "from loadtests.bench.twin import scenario\n"
    "from sim.twin import run\n"
    "r = run(scenario(float(sys.argv[1]), 10_000))\n"
    "print(json.dumps({'movements': r.counts['movements_generated']}))\n"
)


def collected(valgrind_log: str) -> int:
    """The instruction count callgrind reports at exit."""
    found = _COLLECTED.findall(valgrind_log)
    if not found:
        raise RuntimeError("no 'Collected :' line in valgrind's output:\n" + valgrind_log[-2000:])
    return int(found[-1])


def per_movement(a: tuple[int, int], b: tuple[int, int]) -> float:
    """Instructions per movement between two runs given as (instructions, movements)."""
    (ia, ma), (ib, mb) = sorted([a, b], key=lambda x: x[1])
    if mb <= ma:
        raise ValueError("the two runs simulated the same number of movements")
    return (ib - ia) / (mb - ma)


SERVICE_PATH = Path(__file__).with_name("service_path.py")


def command(path: str, size: float) -> list[str]:
    """The Python command line of one run: the twin for `size` hours, or the service path
    for `size` batches."""
    if path == "service":
        return [str(SERVICE_PATH), str(int(size))]
    return ["-c", _RUN, str(size)]


def count(checkout: Path, size: float, path: str = "twin") -> tuple[int, int]:
    """(instructions, movements) of one run of `checkout`'s code under callgrind."""
    with tempfile.TemporaryDirectory(prefix="twin-ir-") as tmp:
        proc = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
             sys.executable, *command(path, size)],
            cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)},
            capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the {path} under valgrind failed in {checkout}:\n"
                           f"{proc.stderr[-2000:]}")
    movements = json.loads(proc.stdout.strip().splitlines()[-1])["movements"]
    return collected(proc.stderr), movements


def measure(checkout: Path, sizes: tuple[float, float], path: str = "twin") -> dict[str, Any]:
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda n: count(checkout, n, path), sizes))
    unit = "batches" if path == "service" else "hours"
    return {"checkout": str(checkout), "runs": [
                {unit: int(n) if path == "service" else n, "instructions": i, "movements": m}
                for n, (i, m) in zip(sizes, runs, strict=True)],
            "instructions_per_movement": round(per_movement(*runs))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, nargs=2, default=(0.25, 0.75),
                   help="the two simulated durations (default 0.25 0.75)")
    p.add_argument("--path", choices=("twin", "service"), default="twin",
                   help="the twin's week scenario (default) or the live service's batch path")
    p.add_argument("--batches", type=int, nargs=2, default=(10, 30),
                   help="--path service: the two numbers of batches of 500 (default 10 30)")
    p.add_argument("--against", type=Path, help="another checkout to count the same way")
    a = p.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed: apt-get install -y valgrind", file=sys.stderr)
        return 2
    sizes = (float(a.batches[0]), float(a.batches[1])) if a.path == "service" else (
        a.hours[0], a.hours[1])
    scenario = "loadtests/bench/service_path.py" if a.path == "service" else "loadtests.bench.twin"
    out: dict[str, Any] = {"benchmark": "instructions", "scenario": scenario,
                           "this": measure(REPO, sizes, a.path)}
    if a.against is not None:
        out["against"] = measure(a.against.resolve(), sizes, a.path)
        out["ratio"] = round(out["this"]["instructions_per_movement"]
                             / out["against"]["instructions_per_movement"], 4)
    out["machine"] = machine()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
