"""A digest of everything the twin computes, per shipped scenario: the check that a speed-up
changed nothing but the speed.

`loadtests.bench.instructions` says a build is cheaper; this says it still simulates the same
thing. Each scenario in `scenarios/` runs for `--hours` (or its own duration when its faults
need more, up to 48 h; longer ones are skipped), plus the twin benchmark's scenario for 2 h;
the digest covers the sampled series, every latency sample with its time and site, the counts,
the bus counters, API calls and cost, the check and SimPy's event count. `--against DIR` runs
another checkout (a git worktree of the old build) the same way and lists what differs.

    python -m loadtests.bench.fingerprint [--hours 6] [--against /tmp/old-build]

About 5 minutes per checkout (the two go in parallel). Prints JSON; exits 1 when
`--against` finds a difference.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from loadtests.bench.common import machine

REPO = Path(__file__).resolve().parents[2]
LONGEST_H = 48.0
"""Scenarios whose faults need a longer run than this are skipped (a week takes minutes)."""


def digest(result: Any) -> str:
    """16 hex digits over a `sim.twin.RunResult`'s outputs (wall time excluded)."""
    h = hashlib.sha256()
    for arrays in (result.series, result.latency, result.latency_at, result.latency_site):
        for name in sorted(arrays):
            h.update(name.encode())
            h.update(np.ascontiguousarray(arrays[name]).tobytes())
    h.update(json.dumps([result.counts, result.bus, result.api_calls, result.api_cost,
                         result.warehouse_blocked_s, result.events, result.check],
                        sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def fingerprints(hours: float, root: Path = REPO,
                 progress: Callable[[str], None] | None = None) -> dict[str, str]:
    """Scenario file (or "bench") -> digest of a run of `root`'s scenarios by the twin that
    imports (the one on PYTHONPATH)."""
    from loadtests.bench.twin import scenario as bench
    from sim.scenario import ScenarioError, load
    from sim.twin import run

    out: dict[str, str] = {}
    for path in sorted((root / "scenarios").glob("*.toml")):
        name = f"scenarios/{path.name}"
        try:
            sc = load(path, duration_h=hours)
        except ScenarioError:  # its faults lie beyond `hours`: its own duration
            sc = load(path)
            if sc.duration_h > LONGEST_H:
                out[name] = f"skipped: {sc.duration_h:g} h"
                continue
        out[name] = digest(run(sc))
        if progress is not None:
            progress(name)
    out["bench"] = digest(run(bench(2, 10_000)))
    return out


def measure(checkout: Path, hours: float) -> dict[str, str]:
    """`fingerprints` of another checkout, in a process of its own: this file, run by its
    path with the other checkout's code on PYTHONPATH (an older build lacks this module)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--hours", str(hours), "--root", str(checkout), "--quiet"],
        cwd=checkout, env={**os.environ, "PYTHONPATH": str(checkout)},
        capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the fingerprint of {checkout} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, str] = json.loads(proc.stdout)["this"]
    return result


def differences(this: dict[str, str], other: dict[str, str]) -> list[str]:
    return sorted(k for k in this.keys() | other.keys() if this.get(k) != other.get(k))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=6.0, help="simulated hours per scenario")
    p.add_argument("--against", type=Path, help="another checkout to run the same way")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--root", type=Path, default=REPO, help=argparse.SUPPRESS)  # see `measure`
    a = p.parse_args(argv)

    def say(name: str) -> None:
        if not a.quiet:
            print(f"  {name}", file=sys.stderr, flush=True)

    with ThreadPoolExecutor(1) as pool:
        other = (pool.submit(measure, a.against.resolve(), a.hours)
                 if a.against is not None else None)
        out: dict[str, Any] = {"benchmark": "fingerprint", "hours": a.hours,
                               "this": fingerprints(a.hours, a.root.resolve(), say)}
        if other is not None:
            out["against"] = other.result()
            out["differ"] = differences(out["this"], out["against"])
    out["machine"] = machine()
    print(json.dumps(out, indent=2))
    return 1 if out.get("differ") else 0


if __name__ == "__main__":
    raise SystemExit(main())
