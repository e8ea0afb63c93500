"""File feed throughput: a CSV movement file read (parse + validate against the item master)
and carried out (published in chunks on a fresh SQLite bus store, the file's ledger entry
written), against the `csv` module's bare reading of the same bytes in the same run.

The file is built before timing from a seeded generator: receipts, picks and adjustments over
1,000 SKUs and 50 locations, every movement with its own id. Each timed pass carries it out
on a new store, so no row is a duplicate.

    python -m loadtests.bench.feed [--rows 100000] [--repeat 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from integration_core.bus import SQLiteStore
from integration_core.clock import ManualClock
from integration_core.engine import Engine
from integration_core.feed import CsvLimits, EdiInbox, FileFeed, FileVerdict, digest, read_movements
from integration_core.models import Catalog, Item, UnitConversion
from loadtests.bench.common import machine, median_time

HEADER = "movement_id,kind,sku,location,quantity,unit,occurred_at\n"
KINDS = ("receipt", "pick", "adjustment")


def catalog() -> Catalog:
    case = (UnitConversion(unit="CS", factor=12),)
    return Catalog(Item(sku=f"SKU-{i:05d}", conversions=case) for i in range(1000))


def csv_file(rows: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    kinds = rng.integers(0, len(KINDS), rows)
    skus = rng.integers(0, 1000, rows)
    locs = rng.integers(0, 50, rows)
    qty = rng.integers(1, 40, rows)
    cases = rng.random(rows) < 0.2
    out = [HEADER]
    for i in range(rows):
        kind = KINDS[int(kinds[i])]
        q = int(qty[i]) * (-1 if kind == "adjustment" and i % 2 else 1)
        out.append(f"MV-{i},{kind},SKU-{int(skus[i]):05d},L-{int(locs[i]):02d},{q},"
                   f"{'CS' if cases[i] else ''},2026-01-05T08:{i % 60:02d}:00Z\n")
    return "".join(out).encode()


def bare_csv(data: bytes) -> int:
    """The floor: the same bytes decoded and split into fields, nothing checked or built."""
    return sum(1 for _ in csv.reader(data.decode().splitlines()))


def feed_run(data: bytes, cat: Catalog, folder: Path, n: int) -> tuple[float, float, int]:
    """(read seconds, carry-out seconds, rows carried out) on a fresh store."""
    engine = Engine(SQLiteStore(folder / f"bench-{n}.db"), ManualClock(0.0), cat)
    try:
        feed = FileFeed(engine, EdiInbox(engine))
        d = digest(data)
        t0 = time.perf_counter()
        parsed = read_movements(data, cat, d, CsvLimits(max_bytes=1 << 30, max_rows=10**7))
        t1 = time.perf_counter()
        outcome = feed.process_csv("bench.csv", d, parsed)
        t2 = time.perf_counter()
        assert outcome.verdict is FileVerdict.PROCESSED, outcome.detail
        return t1 - t0, t2 - t1, outcome.carried_out
    finally:
        engine.store.close()


def run(rows: int, repeat: int, seed: int) -> dict[str, Any]:
    data = csv_file(rows, seed)
    cat = catalog()
    gc.collect()
    split_s, split_runs = median_time(lambda: bare_csv(data), repeat)
    reads, carries = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(repeat):
            read_s, carry_s, carried = feed_run(data, cat, Path(tmp), n)
            assert carried == rows
            reads.append(read_s)
            carries.append(carry_s)
    read_med = sorted(reads)[len(reads) // 2]
    carry_med = sorted(carries)[len(carries) // 2]
    total = sorted(r + c for r, c in zip(reads, carries, strict=True))[len(reads) // 2]
    return {
        "rows": rows,
        "bytes": len(data),
        "repeat": repeat,
        "seed": seed,
        "read_s": round(read_med, 4),
        "read_rows_per_s": round(rows / read_med),
        "carry_out_s": round(carry_med, 4),
        "carry_out_rows_per_s": round(rows / carry_med),
        "file_rows_per_s": round(rows / total),
        "bare_csv_s": round(split_s, 4),
        "bare_csv_rows_per_s": round(rows / split_s),
        "read_time_over_bare_csv": round(read_med / split_s, 1),
        "read_runs_s": [round(t, 4) for t in reads],
        "carry_out_runs_s": [round(t, 4) for t in carries],
        "bare_csv_runs_s": [round(t, 4) for t in split_runs],
        "machine": machine(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    print(json.dumps(run(args.rows, args.repeat, args.seed), indent=2))


if __name__ == "__main__":
    main()
