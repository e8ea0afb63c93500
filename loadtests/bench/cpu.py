"""CPU per movement of ``twin serve`` at one fixed, modest load.

The throughput search (``loadtests.bench.service``) swings by half on this shared machine within
an hour; CPU time spent per movement at a fixed offered load does not depend on how busy the
other core is nearly as much, so it is how two builds are compared. Batches of 500 are posted
one at a time (50 ms apart) after a warm-up, the backlog drains (ERP and WMS deliveries
included), and the CPU of the service's main process and of its intake worker is read from
``/proc``. Prints JSON. Compare builds by running it from each build's checkout
(``PYTHONPATH=<checkout> python -m loadtests.bench.cpu``), interleaved.

``--store postgres``: the service on a throwaway PostgreSQL (a fresh schema per run), and the
CPU of the server's processes too (``server``). There the event loop also *waits* for the
server, which CPU time does not show: the requests' latency, one at a time, does.
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
from loadtests.pg import PgServer, throwaway


def _children(pid: int) -> list[int]:
    with contextlib.suppress(OSError):  # none listed (e.g. the intake runs in the loop)
        return [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def _cpu(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int, server_pid: int | None = None) -> dict[str, float]:
    """User + system CPU seconds of the process and its direct children (the intake worker),
    and with `server_pid` of PostgreSQL's processes (the postmaster's children: the
    service's backends, the WAL writer, the checkpointer)."""
    out = {"main": _cpu(pid)}
    for i, child in enumerate(_children(pid), 1):
        out[f"child{i}"] = _cpu(child)
    if server_pid is not None:
        out["server"] = sum(map(_cpu, [server_pid, *_children(server_pid)]))
    return out


def measure(batches: int, pg: PgServer | None = None, run: int = 0) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="twin-cpu-") as tmp:
        keys = {s: secrets.token_urlsafe(24) for s in SYSTEMS}
        with (Path(tmp) / "service.log").open("wb") as log:
            port = free_port()
            store = None if pg is None else (pg.url, f"bench_cpu_{run}")
            procs = start_service(port, Path(tmp) / "twin.db", keys, log, partners_nice=10,
                                  store=store)
            server = None if pg is None else pg.pid
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
                before, latencies = cpu_s(procs[-1].pid, server), []
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
                after = cpu_s(procs[-1].pid, server)
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
    ap.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    args = ap.parse_args(argv)
    with contextlib.ExitStack() as stack:
        pg = stack.enter_context(throwaway()) if args.store == "postgres" else None
        runs = [measure(args.batches, pg, k) for k in range(args.repeat)]
    out: dict[str, object] = {"store": args.store, "runs": runs}
    for what, of in (("main_us_per_movement", "main"), ("server_us_per_movement", "server")):
        values = sorted(float(r["cpu_us_per_movement"][of])  # type: ignore[index]
                        for r in runs if of in r["cpu_us_per_movement"])  # type: ignore[operator]
        if values:
            out[f"{what}_median"] = values[len(values) // 2]
    p50s = sorted(float(r["request_p50_ms"]) for r in runs)  # type: ignore[arg-type]
    out["request_p50_ms_median"] = p50s[len(p50s) // 2]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
