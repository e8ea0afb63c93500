"""The live service's own work on movement batches, in one process and without HTTP.

What ``twin serve`` does with a ``POST /v1/movements:batch`` of 500, step by step as the
service does it, minus the sockets: the intake worker's read (JSON, limits, validation against
the item master) and the pickle that carries its answer to the loop; storing the batch and
writing the route's answer; the delivery loop's pump (the core's WMS view); the ERP worker's
postings (the request body as the partner client encodes it, and the acks). The clock is a
`ManualClock` and the inputs are `loadtests.bench.httpload.Payload`'s, so a run does the same
work every time: under callgrind (`loadtests.bench.instructions --path service`) its count is
a deterministic figure of the service's CPU per movement, which the wall-clock benchmarks on
this shared machine cannot give.

    python loadtests/bench/service_path.py BATCHES   # prints {"movements": ...} as JSON

Run by its path so that `--against` can count an older checkout with this file.
"""

from __future__ import annotations

import gc
import json
import pickle
import sys
import tempfile
from pathlib import Path

from pydantic import SecretStr

from integration_core.clock import ManualClock
from integration_core.service.config import DEFAULT_SCOPES, SYSTEMS, ApiKey, Settings
from integration_core.service.intake import read_batch
from integration_core.service.live import LiveEngine
from integration_core.service.partners import posting_body
from integration_core.service.routes.wms import batch_answer
from loadtests.bench.httpload import Payload

try:
    from integration_core.service.collector import tune_collector
except ImportError:  # a checkout from before 2026-12-04 (`--against`): `twin serve` did this

    def tune_collector() -> None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)

BATCH = 500


def settings(db: Path) -> Settings:
    """The service's defaults, but checkpoints inside the commits (no thread: a run on one
    thread counts the same every time)."""
    keys = tuple(ApiKey(system=s, key=SecretStr(f"bench-{s}-key-0123456789"),
                        scopes=DEFAULT_SCOPES[s]) for s in SYSTEMS)
    return Settings(db=db, keys=keys, checkpoint_interval_s=0)


def run(batches: int, db: Path) -> dict[str, int]:
    """Post `batches` batches, each delivered to the WMS view and the ERP before the next."""
    s = settings(db)
    clock = ManualClock(1_800_000_000.0)
    engine = LiveEngine(s, clock)
    catalog, limits = s.catalog(), s.json_limits()
    load = Payload(kind="batch", batch_size=BATCH, id_prefix="load", unique=True)
    tune_collector()  # as `twin serve` and its intake worker do
    stored = posted = answered = 0
    try:
        for i in range(batches):
            clock.advance(0.05)
            read = pickle.loads(pickle.dumps(
                read_batch(catalog, load.body(i), s.batch_max, limits), protocol=5))
            read.raise_problem()
            accepted = engine.accept_movements([r for _, r in read.valid], "wms")
            answered += len(batch_answer(read, accepted))
            stored += sum(not a.duplicate for a in accepted)
            while engine.pump(clock.now()):  # the delivery loop: until nothing is due
                pass
            while deliveries := engine.erp_due(clock.now(), s.erp_batch):
                posted += len(deliveries) if posting_body(
                    [engine.posting(d) for d in deliveries]) else 0
                engine.settle(deliveries, None, clock.now())
        status = engine.status()
    finally:
        engine.close()
    return {"movements": stored, "posted": posted, "answer_bytes": answered,
            "drained": int(bool(status.get("drained")))}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with tempfile.TemporaryDirectory(prefix="twin-path-") as tmp:
        print(json.dumps(run(int(args[0]), Path(tmp) / "twin.db")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
