"""SIGKILL under load: `twin serve` in a subprocess on a loopback port, calling the ERP and
WMS twins (`twin twins`) in a second process over HTTP; movements posted concurrently, the ERP
switched down, `kill -9` of the core mid-stream, a restart on the same SQLite file, the ERP
back up, then the history checker against the ERP's own bookings: every acknowledged movement
booked exactly once, none twice.

Marked `sigkill`; about 5-10 s. Bounded everywhere: a fixed number of requests per worker, a
deadline on startup, load and drain, and the server is killed in `finally` whatever happens.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from integration_core.checker import check
from integration_core.service import SYSTEMS
from tests.service.helpers import KEYS, PARTNER_KEY, expand, movement

pytestmark = [pytest.mark.anyio, pytest.mark.sigkill]
REPO = Path(__file__).resolve().parents[2]
WORKERS = 8
REQUESTS_PER_WORKER = 400
BATCH = 20


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(db: Path, port: int, twins: str, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TWIN_RATE_WMS": "1000000", "TWIN_RATE_ADMIN": "1000000",
           "TWIN_PARTNER_KEY": PARTNER_KEY,
           **{f"TWIN_API_KEY_{s.upper()}": KEYS[s] for s in SYSTEMS}}
    cmd = [sys.executable, "-c", "from sim.cli import app; app()", "serve",
           "--host", "127.0.0.1", "--port", str(port), "--db", str(db),
           "--log-level", "warning", "--erp-url", f"{twins}/erp", "--wms-url", f"{twins}/wms"]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def start_twins(db: Path, port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TWIN_PARTNER_KEY": PARTNER_KEY}
    cmd = [sys.executable, "-c", "from sim.cli import app; app()", "twins",
           "--host", "127.0.0.1", "--port", str(port), "--db", str(db),
           "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


async def wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path,
                     timeout_s: float = 30.0, probe: str = "/readyz") -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base, timeout=2.0) as c:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited {proc.returncode}: {log.read_text()}")
            try:
                if (await c.get(probe)).status_code == 200:
                    return
            except httpx.TransportError:  # not listening yet: connection refused
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not ready in {timeout_s} s: {log.read_text()}")
            await asyncio.sleep(0.05)


async def load_then_kill(base: str, proc: subprocess.Popen[bytes], attempted: list[str],
                         acked: list[str], kill_after_acks: int, max_s: float) -> None:
    """Workers post singles and batches; a killer switches the ERP twin down halfway and
    sends SIGKILL once `kill_after_acks` movements were acknowledged (or after `max_s`),
    while requests are still in flight."""
    headers = {"X-API-Key": KEYS["wms"]}
    killed = asyncio.Event()

    async def worker(w: int, c: httpx.AsyncClient) -> None:
        for i in range(REQUESTS_PER_WORKER):
            if killed.is_set():
                return
            try:
                if i % 10 == 9:
                    ids = [f"w{w}-{i}-{j}" for j in range(BATCH)]
                    attempted.extend(ids)
                    r = await c.post("/v1/movements:batch", headers=headers, json={
                        "movements": [movement(m, location=f"L{j % 5}")
                                      for j, m in enumerate(ids)]})
                    if r.status_code == 202:
                        acked.extend(it["movement_id"] for it in r.json()["items"]
                                     if it["status"] in ("accepted", "duplicate"))
                else:
                    mid = f"w{w}-{i}"
                    attempted.append(mid)
                    r = await c.post("/v1/movements", headers=headers,
                                     json=movement(mid, location=f"L{i % 5}"))
                    if r.status_code in (200, 202):
                        acked.append(mid)
            except httpx.TransportError:
                return  # the server is gone: this request is attempted, not acknowledged

    async def killer(c: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + max_s
        while len(acked) < kill_after_acks // 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        # Halfway, the ERP goes down: what follows is acknowledged but still in flight when
        # the process dies, and must be recovered from the store after the restart.
        r = await c.put("/v1/admin/faults/erp", json={"mode": "down"},
                        headers={"X-API-Key": KEYS["admin"]})
        assert r.status_code == 200
        while len(acked) < kill_after_acks and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        killed.set()

    limits = httpx.Limits(max_connections=WORKERS + 1)
    async with httpx.AsyncClient(base_url=base, timeout=5.0, limits=limits) as c:
        await asyncio.gather(killer(c), *(worker(w, c) for w in range(WORKERS)))


async def drain(base: str, timeout_s: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base, timeout=5.0,
                                 headers={"X-API-Key": KEYS["admin"]}) as c:
        while True:
            doc: dict[str, Any] = (await c.get("/v1/status")).json()
            if doc["drained"]:
                return doc
            if time.monotonic() > deadline:
                raise AssertionError(f"not drained in {timeout_s} s: {doc['consumers']}")
            await asyncio.sleep(0.05)


async def twins_ready(tmp_path: Path, procs: list[subprocess.Popen[bytes]], log: IO[bytes],
                      log_path: Path) -> str:
    """`twin twins` started (its file in `tmp_path`, appended to `procs`); its base URL."""
    twins = f"http://127.0.0.1:{free_port()}"
    procs.append(start_twins(tmp_path / "twins.db", int(twins.rsplit(":", 1)[1]), log))
    await wait_ready(twins, procs[-1], log_path, probe="/healthz")
    return twins


async def applied_counts(c: httpx.AsyncClient, ids: list[str]) -> dict[str, int]:
    """The ERP's bookings of `ids` (admin client), asked 10,000 at a time."""
    counts: dict[str, int] = {}
    for start in range(0, len(ids), 10_000):
        r = await c.post("/v1/erp/applied-counts", json={"movement_ids": ids[start:start + 10_000]})
        assert r.status_code == 200, r.text
        counts.update(r.json()["counts"])
    return counts


def kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)


async def test_sigkill_under_load_loses_nothing_acknowledged(tmp_path: Path) -> None:
    db = tmp_path / "twin.db"
    attempted: list[str] = []
    acked: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    log_path = tmp_path / "server.log"
    try:
        with log_path.open("wb") as log:
            twins = await twins_ready(tmp_path, procs, log, log_path)
            port = free_port()
            procs.append(start_server(db, port, twins, log))
            base = f"http://127.0.0.1:{port}"
            await wait_ready(base, procs[1], log_path)
            await load_then_kill(base, procs[1], attempted, acked, kill_after_acks=1500,
                                 max_s=8.0)
            assert procs[1].wait(timeout=10) == -signal.SIGKILL
            assert len(acked) >= 100, f"too little load before the kill: {len(acked)} acked"

            port = free_port()
            procs.append(start_server(db, port, twins, log))
            base = f"http://127.0.0.1:{port}"
            await wait_ready(base, procs[2], log_path)
            async with httpx.AsyncClient(base_url=base, timeout=5.0,
                                         headers={"X-API-Key": KEYS["admin"]}) as c:
                r = await c.put("/v1/admin/faults/erp", json={"mode": "up"})
                assert r.status_code == 200 and r.json()["refused"] > 0  # it was down
            status = await drain(base)
            assert status["consumers"]["erp"]["recovered_at_start"] > 0  # the ERP was down
            async with httpx.AsyncClient(base_url=base, timeout=10.0,
                                         headers={"X-API-Key": KEYS["admin"]}) as c:
                counts = await applied_counts(c, attempted)
                rec = (await c.post("/v1/reconcile")).json()
        result = check(attempted=attempted, acknowledged=acked, applied=expand(counts))
        summary = result.summary()
        assert result.ok, summary
        assert result.lost == frozenset() and result.duplicated == {}
        assert max(counts.values()) == 1
        assert rec["divergence_units"] == 0, rec
        print(f"\nSIGKILL test: attempted {len(attempted)}, acknowledged {len(acked)}, "
              f"applied {result.applied}, recovered (applied, never acked) "
              f"{len(result.recovered)}, redelivered after restart: "
              f"{status['consumers']['erp']['recovered_at_start']}")
    finally:
        kill_all(procs)
