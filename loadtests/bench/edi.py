"""X12 gateway throughput: parse + validate + map (+ the 997) per interchange, against a bare
`str.split` of the same bytes (decode, split segments, split elements) in the same run.

The documents are built before timing from a seeded generator: a mix of 940s (order
releases, 1-20 lines), 945s (shipment confirmations), 947s (adjustments) and 846s (stock
snapshots, 50-200 items), each its own interchange with its own control number. Each timed
call feeds all of them through a fresh `Gateway` (so none is a duplicate).

    python -m loadtests.bench.edi [--documents 2000] [--repeat 5] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import json
from datetime import UTC, datetime
from typing import Any

import numpy as np

from integration_core.edi import Gateway, MemorySeen, Segment, TransactionSet, serialize
from integration_core.edi.envelope import make_set, wrap
from loadtests.bench.common import machine, median_time

WHEN = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
FUNCTIONAL_ID = {"940": "OW", "945": "SW", "947": "AW", "846": "IB"}


def _940(rng: np.random.Generator, n: int) -> TransactionSet:
    lines = int(rng.integers(1, 21))
    qty = rng.integers(1, 50, lines)
    body = [
        Segment("W05", ("N", f"ORD-{n}", f"PO-{n}")),
        Segment("N1", ("ST", "", "91", f"CUST-{n % 500}")),
        Segment("N1", ("WH", "", "91", "WH1-001")),
        Segment("G62", ("02", "20260305")),
    ]
    for i, q in enumerate(qty, 1):
        body += [
            Segment("LX", (str(i),)),
            Segment("W01", (str(q), "EA", "", "SK", f"SKU-{int(rng.integers(1000))}")),
        ]
    body.append(Segment("W76", (str(int(qty.sum())),)))
    return make_set("940", "0001", body)


def _945(rng: np.random.Generator, n: int) -> TransactionSet:
    lines = int(rng.integers(1, 11))
    qty = rng.integers(1, 50, lines)
    body = [
        Segment("W06", ("F", f"ORD-{n}", "20260302", f"SHP-{n}")),
        Segment("N1", ("SF", "", "91", "WH1-001")),
        Segment("W27", ("M", "UPSN", "GROUND")),
    ]
    for i, q in enumerate(qty, 1):
        body += [Segment("LX", (str(i),)), Segment("W12", ("CC", str(q), str(q), "0", "EA", "",
                 "SK", f"SKU-{int(rng.integers(1000))}"))]  # fmt: skip
    body.append(Segment("W03", (str(int(qty.sum())),)))
    return make_set("945", "0001", body)


def _947(rng: np.random.Generator, n: int) -> TransactionSet:
    body = [
        Segment("W15", ("20260301", f"ADJ-{n}", f"DEP-{n}")),
        Segment("N1", ("WH", "", "91", "WH1-001")),
    ]
    for i in range(1, int(rng.integers(1, 6)) + 1):
        q = int(rng.integers(1, 10)) * (1 if rng.random() < 0.5 else -1)
        body += [
            Segment("LX", (str(i),)),
            Segment("W19", ("AA", str(q), "EA", "", "SK", f"SKU-{int(rng.integers(1000))}")),
        ]
    return make_set("947", "0001", body)


def _846(rng: np.random.Generator, n: int) -> TransactionSet:
    items = int(rng.integers(50, 201))
    qty = rng.integers(0, 500, items)
    body = [
        Segment("BIA", ("00", "MM", f"SNAP-{n}", "20260301")),
        Segment("N1", ("WH", "", "91", "WH1-001")),
    ]
    for i, q in enumerate(qty):
        body += [Segment("LIN", (str(i + 1), "SK", f"SKU-{i}")), Segment("QTY", ("17", str(q)))]
    body.append(Segment("CTT", (str(items), str(int(qty.sum())))))
    return make_set("846", "0001", body)


BUILDERS = {"940": _940, "945": _945, "947": _947, "846": _846}
MIX = ("940", "940", "940", "945", "945", "945", "947", "947", "947", "846")


def documents(n: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        code = MIX[int(rng.integers(len(MIX)))]
        ts = BUILDERS[code](rng, i)
        ic = wrap([ts], functional_id=FUNCTIONAL_ID[code], sender=("ZZ", "THREEPL"),
                  receiver=("ZZ", "TWIN"), control=i + 1, when=WHEN)  # fmt: skip
        out.append(serialize(ic, line_break="\n"))
    return out


def bare_split(docs: list[bytes]) -> int:
    """The floor: the same bytes decoded and split, nothing checked or built."""
    segments = 0
    for raw in docs:
        for seg in raw.decode("latin-1").split("~"):
            segments += bool(seg.strip().split("*"))
    return segments


def gateway_run(docs: list[bytes]) -> tuple[int, int]:
    gw = Gateway(MemorySeen())
    messages = errors = 0
    for raw in docs:
        r = gw.receive(raw, 0.0)
        messages += len(r.messages)
        errors += len(r.errors) + len(r.dead_letters)
    return messages, errors


def run(n: int, repeat: int, seed: int) -> dict[str, Any]:
    docs = documents(n, seed)
    segments = sum(d.count(b"~") for d in docs)
    messages, errors = gateway_run(docs)
    assert errors == 0, "the generated documents must be clean"
    gc.collect()
    split_s, split_runs = median_time(lambda: bare_split(docs), repeat)
    gw_s, gw_runs = median_time(lambda: gateway_run(docs), repeat)
    return {
        "documents": n,
        "segments": segments,
        "bytes": sum(len(d) for d in docs),
        "messages": messages,
        "repeat": repeat,
        "seed": seed,
        "gateway_s": round(gw_s, 4),
        "gateway_segments_per_s": round(segments / gw_s),
        "gateway_documents_per_s": round(n / gw_s),
        "bare_split_s": round(split_s, 4),
        "bare_split_segments_per_s": round(segments / split_s),
        "gateway_time_over_bare_split": round(gw_s / split_s, 1),
        "gateway_runs_s": [round(t, 4) for t in gw_runs],
        "bare_split_runs_s": [round(t, 4) for t in split_runs],
        "machine": machine(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--documents", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    print(json.dumps(run(args.documents, args.repeat, args.seed), indent=2))


if __name__ == "__main__":
    main()
