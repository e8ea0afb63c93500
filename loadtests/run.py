"""End-to-end load test: start the service on a free loopback port, run locust headless
against it (with an ERP outage in the middle), then prove through the API that every
acknowledged movement was applied exactly once and nothing is left unexplained.

    python -m loadtests.run [--duration 60] [--rate 300] [--users 30] [--out results/loadtest]

Writes locust's HTML report and CSVs, the server log and ``summary.json`` to ``--out``; exits
non-zero when locust saw a failure (a 5xx, a malformed payload not refused, ...), when the
checker finds a movement lost or applied twice, or when divergence is left after the drain.
Traffic goes to 127.0.0.1 only; every wait has a deadline.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from integration_core.checker import check

REPO = Path(__file__).resolve().parents[1]
SYSTEMS = ("shop", "wms", "erp", "carrier", "admin")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with {proc.returncode} while starting")
        try:
            if httpx.get(f"{base}/readyz", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:  # not listening yet
            pass
        time.sleep(0.1)
    raise SystemExit(f"the service was not ready within {timeout_s} s")


def drain(api: httpx.Client, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        doc: dict[str, Any] = api.get("/v1/status").json()
        if all(c["backlog"] == 0 for c in doc["consumers"].values()):
            return doc
        if time.monotonic() > deadline:
            raise SystemExit(f"not drained within {timeout_s} s: {doc['consumers']}")
        time.sleep(0.2)


def read_log(path: Path) -> tuple[list[str], list[str]]:
    attempted, acked = [], []
    if path.exists():
        for line in path.read_text().splitlines():
            what, _, mid = line.partition(" ")
            (attempted if what == "attempt" else acked).append(mid)
    return attempted, acked


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=int, default=60, help="seconds of load")
    ap.add_argument("--rate", type=float, default=300.0, help="requests per second offered")
    ap.add_argument("--users", type=int, default=30, help="locust users sharing the rate")
    ap.add_argument("--outage-at", type=float, default=20.0, help="ERP down after (s)")
    ap.add_argument("--outage-s", type=float, default=8.0, help="ERP outage length (s)")
    ap.add_argument("--out", type=Path, default=Path("results/loadtest"))
    args = ap.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    keys = {s: secrets.token_urlsafe(24) for s in SYSTEMS}  # fresh per run, never printed
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="twin-load-") as tmp:
        db, load_log = Path(tmp) / "twin.db", Path(tmp) / "movements.log"
        env = {**os.environ, **{f"TWIN_API_KEY_{s.upper()}": k for s, k in keys.items()},
               **{f"TWIN_RATE_{s.upper()}": "1000000" for s in SYSTEMS}}
        server_log = (out / "server.log").open("wb")
        server = subprocess.Popen(
            [sys.executable, "-c", "from sim.cli import app; app()", "serve", "--host",
             "127.0.0.1", "--port", str(port), "--db", str(db), "--log-level", "warning"],
            env=env, cwd=REPO, stdout=server_log, stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(base, server)
            locust_env = {**os.environ, "TWIN_LOAD_RATE": str(args.rate),
                          "TWIN_LOAD_USERS": str(args.users), "TWIN_LOAD_LOG": str(load_log),
                          "TWIN_LOAD_KEY_WMS": keys["wms"], "TWIN_LOAD_KEY_SHOP": keys["shop"]}
            locust = subprocess.Popen(
                [sys.executable, "-m", "locust", "-f", str(REPO / "loadtests/locustfile.py"),
                 "--headless", "-u", str(args.users), "-r", str(args.users),
                 "--run-time", f"{args.duration}s", "--host", base, "--stop-timeout", "10",
                 "--csv", str(out / "locust"), "--html", str(out / "locust.html"),
                 "--only-summary"],
                env=locust_env, cwd=REPO,
            )
            with httpx.Client(base_url=base, timeout=30.0,
                              headers={"X-API-Key": keys["admin"]}) as api:
                t0 = time.monotonic()
                outage = [(args.outage_at, "down"), (args.outage_at + args.outage_s, "up")]
                for at, mode in outage if args.outage_s > 0 else []:
                    time.sleep(max(0.0, t0 + at - time.monotonic()))
                    api.put("/v1/admin/faults/erp", json={"mode": mode}).raise_for_status()
                    print(f"[{time.monotonic() - t0:5.1f} s] ERP twin {mode}", flush=True)
                locust_rc = locust.wait(timeout=args.duration + 120)
                status = drain(api, timeout_s=120.0)
                attempted, acked = read_log(load_log)
                counts: dict[str, int] = {}
                for i in range(0, len(attempted), 10_000):
                    r = api.post("/v1/erp/applied-counts",
                                 json={"movement_ids": attempted[i:i + 10_000]})
                    r.raise_for_status()
                    counts.update(r.json()["counts"])
                rec = api.post("/v1/reconcile").json()
                dead = api.get("/v1/dead-letters").json()["total"]
        finally:
            for p in (server,):
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    try:
                        p.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        p.kill()
            server_log.close()
    applied = [mid for mid, n in counts.items() for _ in range(n)]
    result = check(attempted=attempted, acknowledged=acked, applied=applied)
    ok = (locust_rc == 0 and result.ok and rec["unexplained_units"] == 0
          and rec["divergence_units"] == 0 and dead == 0)
    summary = {
        "ok": ok, "locust_exit_code": locust_rc, "duration_s": args.duration,
        "offered_rate_per_s": args.rate, "checker": result.summary(),
        "reconcile": {k: rec[k] for k in ("divergence_units", "in_flight_units",
                                          "unexplained_units", "skus_out_of_sync")},
        "dead_letters": dead, "bus_counters": status["counters"],
        "reports": {"html": str(out / "locust.html"), "csv": str(out / "locust_stats.csv")},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
