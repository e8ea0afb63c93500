"""A full disk under load: `twin serve` with its SQLite file on a small tmpfs, the partner twins
in their own process (their files elsewhere), movements posted until writes fail, then space
freed while the service keeps running.

While the disk is full every request that needs a write answers 503 problem+json with
Retry-After (never a 500, never a reset), /readyz says so, and nothing acknowledged is lost:
after the space comes back (no restart) the checker proves every 202 booked exactly once by
the ERP, none of the refused ones booked, and reconciliation finds 0 divergence between the
ERP and the core's own WMS view.

Mounting a tmpfs needs root: the test skips, saying so, where it cannot mount one (CI runs as
root, so there it runs). Bounded: a fixed number of requests, deadlines on every wait, the
processes killed and the tmpfs unmounted in `finally`. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration_core.checker import check
from tests.service.helpers import KEYS, expand, movement
from tests.service.test_sigkill import (
    applied_counts,
    drain,
    free_port,
    kill_all,
    start_server,
    twins_ready,
    wait_ready,
)

pytestmark = pytest.mark.anyio
TMPFS_MB = 48
FREE_MB = 2.0  # left free by the ballast when the load starts
BATCH = 50


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root and runs this test)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs",
                           str(mnt)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(mnt: Path, leave_mb: float) -> Path:
    """A ballast file that leaves `leave_mb` free on the tmpfs."""
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    ballast = mnt / "ballast"
    with ballast.open("wb") as f:
        f.write(b"\0" * max(0, free - int(leave_mb * 2**20)))
    return ballast


async def post_until_full(c: httpx.AsyncClient, acked: list[str], refused: list[str],
                          max_batches: int = 4000) -> dict[str, Any]:
    """Batches of new movements until 20 have been refused for lack of space (bounded)."""
    seen: dict[str, Any] = {"503": 0, "ready_503": 0, "other": []}
    for b in range(max_batches):
        ids = [f"b{b}-{j}" for j in range(BATCH)]
        r = await c.post("/v1/movements:batch", json={
            "movements": [movement(m, location=f"L{j % 7}") for j, m in enumerate(ids)]})
        if r.status_code == 202:
            acked.extend(it["movement_id"] for it in r.json()["items"]
                         if it["status"] == "accepted")
        elif r.status_code == 503:
            assert r.headers["content-type"] == "application/problem+json", r.text
            assert int(r.headers["retry-after"]) >= 1
            assert "full" in r.json()["detail"], r.text
            refused.extend(ids)
            seen["503"] += 1
            ready = await c.get("/readyz")
            seen["ready_503"] += ready.status_code == 503
            if seen["503"] >= 20:
                return seen
        else:
            seen["other"].append((r.status_code, r.text[:200]))
    return seen


async def test_a_full_disk_is_an_outage_and_loses_nothing(small_disk: Path,
                                                          tmp_path: Path) -> None:
    procs: list[subprocess.Popen[bytes]] = []
    log_path = tmp_path / "server.log"
    acked: list[str] = []
    refused: list[str] = []
    try:
        with log_path.open("wb") as log:
            twins = await twins_ready(tmp_path, procs, log, log_path)
            port = free_port()
            procs.append(start_server(small_disk / "twin.db", port, twins, log))
            base = f"http://127.0.0.1:{port}"
            await wait_ready(base, procs[1], log_path)
            ballast = fill(small_disk, FREE_MB)
            async with httpx.AsyncClient(base_url=base, timeout=10.0,
                                         headers={"X-API-Key": KEYS["wms"]}) as c:
                seen = await post_until_full(c, acked, refused)
                assert seen["other"] == [], seen["other"]  # no 500, no other status
                assert seen["503"] >= 20, f"the disk never filled: {seen}"
                assert seen["ready_503"] > 0
                # Full for a while longer: the delivery loop and the ERP workers keep trying
                # (the ERP books what they post, the settlement fails, they post it again).
                await asyncio.sleep(2.0)
                assert (await c.get("/healthz")).status_code == 200
                assert procs[1].poll() is None  # the service rode it out

                ballast.unlink()  # space is back; the same process carries on
                deadline = time.monotonic() + 30
                while (await c.get("/readyz")).status_code != 200:
                    assert time.monotonic() < deadline, "not ready again after space came back"
                    await asyncio.sleep(0.1)
                for b in range(10):  # and accepts again
                    ids = [f"after{b}-{j}" for j in range(BATCH)]
                    r = await c.post("/v1/movements:batch", json={"movements": [
                        movement(m, location=f"L{j % 7}") for j, m in enumerate(ids)]})
                    assert r.status_code == 202, r.text
                    acked.extend(ids)
            status = await drain(base, timeout_s=60.0)
            async with httpx.AsyncClient(base_url=base, timeout=30.0,
                                         headers={"X-API-Key": KEYS["admin"]}) as c:
                attempted = acked + refused
                counts = await applied_counts(c, attempted)
                rec = (await c.post("/v1/reconcile")).json()
        result = check(attempted=attempted, acknowledged=acked, applied=expand(counts))
        assert result.ok, result.summary()
        assert result.lost == frozenset() and result.duplicated == {}
        assert all(counts[m] == 1 for m in acked)
        assert all(counts[m] == 0 for m in refused)  # a 503 stored nothing
        assert rec["divergence_units"] == 0 and rec["unexplained_units"] == 0, rec
        assert status["background_failures"] > 0  # the delivery loop did hit the full disk
        print(f"\ndisk-full test: {len(acked)} movements acknowledged and booked once, "
              f"{seen['503']} batches refused with 503 ({len(refused)} movements, none "
              f"booked), background store failures {status['background_failures']}")
    finally:
        kill_all(procs)
