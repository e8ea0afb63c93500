"""CPU per movement of ``twin serve`` at one fixed, modest load.

The throughput search (``loadtests.bench.service``) swings by half on this shared machine within
an hour; CPU time spent per movement at a fixed offered load does not depend on how busy the
other core is nearly as much, so it is how two builds are compared. Batches of 500 are posted
one at a time (50 ms apart) after a warm-up, the backlog drains (ERP and WMS deliveries
included), and the CPU of the service's main process and of its intake worker is read from
``/proc``. Prints JSON. Compare builds by running it from each build's checkout
(``PYTHONPATH=<checkout> python -m loadtests.bench.cpu``), interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import tempfile
import time
from pathlib import Path

import httpx

from loadtests.bench.httpload import Payload
from loadtests.bench.service import HOST, SYSTEMS, free_port, start_service, stop_process, wait_http


def cpu_s(pid: int) -> dict[str, float]:
    """User + system CPU seconds of the process and its direct children (the intake worker)."""
    pids = [pid]
    with contextlib.suppress(OSError):  # no children listed: the intake runs in the loop
        pids += [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for i, p in enumerate(pids):
        fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        out["main" if i == 0 else f"child{i}"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def measure(batches: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="twin-cpu-") as tmp:
        keys = {s: secrets.token_urlsafe(24) for s in SYSTEMS}
        with (Path(tmp) / "service.log").open("wb") as log:
            port = free_port()
            procs = start_service(port, Path(tmp) / "twin.db", keys, log, partners_nice=10)
            try:
                base = f"http://{HOST}:{port}"
                wait_http(base, procs[-1], "/readyz", 200)
                hdr = {"content-type": "application/json"}
                wms = httpx.Client(base_url=base, headers={"X-API-Key": keys["wms"]}, timeout=30)
                admin = httpx.Client(base_url=base, headers={"X-API-Key": keys["admin"]},
                                     timeout=30)
                warm = Payload(kind="batch", batch_size=500, id_prefix="warm", unique=True)
                for i in range(10):
                    wms.post("/v1/movements:batch", content=warm.body(i), headers=hdr)
                time.sleep(3)  # let the warm-up drain before the meter starts
                load = Payload(kind="batch", batch_size=500, id_prefix="load", unique=True)
                before, latencies = cpu_s(procs[-1].pid), []
                for i in range(batches):
                    t = time.perf_counter()
                    r = wms.post("/v1/movements:batch", content=load.body(i), headers=hdr)
                    latencies.append(time.perf_counter() - t)
                    r.raise_for_status()
                    time.sleep(0.05)
                drained = False
                for _ in range(600):
                    drained = bool(admin.get("/v1/status").json().get("drained"))
                    if drained:
                        break
                    time.sleep(0.1)
                after = cpu_s(procs[-1].pid)
            finally:
                for p in procs:
                    stop_process(p)
    moved = batches * 500
    per = {k: round((after[k] - before.get(k, 0.0)) / moved * 1e6, 1) for k in after}
    latencies.sort()
    return {"movements": moved, "drained": drained, "cpu_us_per_movement": per,
            "request_p50_ms": round(latencies[len(latencies) // 2] * 1e3, 1),
            "load": [round(x, 2) for x in os.getloadavg()]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    runs = [measure(args.batches) for _ in range(args.repeat)]
    mains = sorted(float(r["cpu_us_per_movement"]["main"]) for r in runs)  # type: ignore[index]
    print(json.dumps({"runs": runs, "main_us_per_movement_median": mains[len(mains) // 2]},
                     indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
