"""`twin serve --store postgresql://...` as a process: movements posted concurrently, SIGKILL
of the service mid-stream, a restart on the same schema (configured by ``TWIN_STORE`` this
time), then the history checker against the ERP twin's bookings: every acknowledged movement
booked exactly once. While an instance runs, a second one on the same schema refuses to start
(one instance per schema: several instances are not built yet, docs/postgres.md).

The ERP and WMS twins run inside the service process (their SQLite file beside ``--db``); the
service's own state is in the throwaway PostgreSQL only. About 10 s; bounded: a fixed number
of requests per worker, deadlines on every wait, every process killed in `finally`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

from integration_core.checker import check
from integration_core.service import SYSTEMS
from loadtests.pg import PgServer
from tests.service.helpers import KEYS, expand, movement
from tests.service.test_sigkill import applied_counts, drain, free_port, kill_all, wait_ready

pytestmark = [pytest.mark.anyio, pytest.mark.sigkill]
REPO = Path(__file__).resolve().parents[2]
WORKERS = 6
REQUESTS_PER_WORKER = 150
BATCH = 25


def serve(db: Path, port: int, log: IO[bytes], store: str, schema: str,
          by_env: bool = False) -> subprocess.Popen[bytes]:
    """`twin serve` on PostgreSQL: `store` by ``--store`` or (`by_env`) ``TWIN_STORE``."""
    env = {**os.environ, "TWIN_RATE_WMS": "1000000", "TWIN_RATE_ADMIN": "1000000",
           **{f"TWIN_API_KEY_{s.upper()}": KEYS[s] for s in SYSTEMS}}
    env.pop("TWIN_STORE", None)
    cmd = [sys.executable, "-c", "from sim.cli import app; app()", "serve",
           "--host", "127.0.0.1", "--port", str(port), "--db", str(db),
           "--log-level", "warning", "--store-schema", schema]
    if by_env:
        env["TWIN_STORE"] = store
    else:
        cmd += ["--store", store]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


async def load_then_kill(base: str, proc: subprocess.Popen[bytes], attempted: list[str],
                         acked: list[str], kill_after_acks: int, max_s: float) -> None:
    headers = {"X-API-Key": KEYS["wms"]}
    killed = asyncio.Event()

    async def worker(w: int, c: httpx.AsyncClient) -> None:
        for i in range(REQUESTS_PER_WORKER):
            if killed.is_set():
                return
            try:
                if i % 5 == 4:
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
                return  # the server is gone: attempted, not acknowledged

    async def killer() -> None:
        deadline = time.monotonic() + max_s
        while len(acked) < kill_after_acks and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        killed.set()

    async with httpx.AsyncClient(base_url=base, timeout=5.0,
                                 limits=httpx.Limits(max_connections=WORKERS)) as c:
        await asyncio.gather(killer(), *(worker(w, c) for w in range(WORKERS)))


async def test_serve_on_postgres_survives_sigkill_and_is_one_instance_per_schema(
        tmp_path: Path, pg_server: PgServer, pg_schema: str) -> None:
    db = tmp_path / "twin.db"
    attempted: list[str] = []
    acked: list[str] = []
    procs: list[subprocess.Popen[bytes]] = []
    log_path = tmp_path / "server.log"
    try:
        with log_path.open("wb") as log:
            port = free_port()
            procs.append(serve(db, port, log, pg_server.url, pg_schema))
            base = f"http://127.0.0.1:{port}"
            await wait_ready(base, procs[0], log_path)

            # A second instance on the same schema: refused (the state cache's lock).
            second = serve(tmp_path / "other.db", free_port(), log, pg_server.url, pg_schema)
            procs.append(second)
            assert second.wait(timeout=30) != 0
            assert "held by another store" in log_path.read_text()

            await load_then_kill(base, procs[0], attempted, acked, kill_after_acks=800,
                                 max_s=8.0)
            assert procs[0].wait(timeout=10) == -signal.SIGKILL
            assert len(acked) >= 100, f"too little load before the kill: {len(acked)} acked"

            port = free_port()
            procs.append(serve(db, port, log, pg_server.url, pg_schema, by_env=True))
            base = f"http://127.0.0.1:{port}"
            await wait_ready(base, procs[-1], log_path)
            await drain(base)
            async with httpx.AsyncClient(base_url=base, timeout=10.0,
                                         headers={"X-API-Key": KEYS["admin"]}) as c:
                counts = await applied_counts(c, attempted)
                rec = (await c.post("/v1/reconcile")).json()
        result = check(attempted=attempted, acknowledged=acked, applied=expand(counts))
        assert result.ok, result.summary()
        assert result.lost == frozenset() and result.duplicated == {}
        assert max(counts.values()) == 1
        assert rec["divergence_units"] == 0, rec
        assert not db.exists()  # the service's state went to PostgreSQL, not SQLite
    finally:
        kill_all(procs)
