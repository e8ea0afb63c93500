"""Process and database faults under load, for several service instances on one PostgreSQL
(`python -m loadtests.run --store postgres --instances 3 --process-faults`, ``make
loadtest-pg``).

On the run's clock (fractions of its length, so a shorter run keeps the order):

1. at 20 %: instance 2 is SIGKILLed (it never comes back: the others take its partitions
   once its leases expire);
2. at 45 %: instance 3 is SIGSTOPped for twice the lease's time to live plus a second (its
   leases expire and are taken while it sleeps), then SIGCONTed: its first writes are fenced,
   it re-reads its leases, drops what it lost and rejoins, taking its fair share back;
3. at 75 %: the database is crashed and restarted (``pg_ctl stop -m immediate``, then start:
   recovery from the WAL); every instance answers 503 meanwhile and carries on after.

Takeover time: from the signal until the instances still answering own every partition
between them (polled every 0.1 s through ``/v1/status``); the bound the design states is the
lease's time to live plus a heartbeat interval (a third of it) plus the recovery of the
partitions' unfinished messages. Rejoin time: from SIGCONT until the resumed instance owns its
fair share again.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from loadtests.pg import PgServer

KILL_AT, PAUSE_AT, RESTART_AT = 0.20, 0.45, 0.75
POLL_S = 0.1


@dataclass
class FaultRecord:
    what: str
    at_s: float
    """Seconds into the load when it was done."""
    takeover_s: float | None = None
    rejoin_s: float | None = None
    down_s: float | None = None
    """Database restart: how long it took (stop + start)."""
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 2) if isinstance(v, float) else v)
                for k, v in self.__dict__.items() if v is not None}


@dataclass(eq=False)  # a thread: hashable by identity
class ProcessFaults(threading.Thread):
    bases: list[str]
    processes: list[subprocess.Popen[bytes]]
    pg: PgServer
    admin_key: str
    duration_s: float
    lease_ttl_s: float
    records: list[FaultRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(daemon=True)
        if len(self.bases) < 3:
            raise ValueError("process faults need 3 instances (one killed, one paused)")
        self.stopping = threading.Event()
        self.t0 = time.monotonic()

    def _wait_until(self, fraction: float) -> bool:
        return not self.stopping.wait(max(0.0, self.t0 + fraction * self.duration_s
                                          - time.monotonic()))

    def _owned(self, base: str) -> tuple[set[int], int] | None:
        try:
            doc = httpx.get(f"{base}/v1/status", headers={"X-API-Key": self.admin_key},
                            timeout=5.0).json()
        except (httpx.HTTPError, ValueError):
            return None
        inst = doc.get("instance") or {}
        return set(inst.get("owned", [])), int(inst.get("partitions", 0))

    def _covered(self, bases: list[str], since: float, timeout_s: float) -> float | None:
        """Seconds from `since` until the instances at `bases` own every partition."""
        deadline = since + timeout_s
        while time.monotonic() < deadline and not self.stopping.is_set():
            union: set[int] = set()
            total = 0
            for b in bases:
                got = self._owned(b)
                if got is not None:
                    union |= got[0]
                    total = got[1] or total
            if total and len(union) == total:
                return time.monotonic() - since
            time.sleep(POLL_S)
        return None

    def _rejoined(self, base: str, share: int, since: float, timeout_s: float) -> float | None:
        deadline = since + timeout_s
        while time.monotonic() < deadline and not self.stopping.is_set():
            got = self._owned(base)
            if got is not None and len(got[0]) >= share:
                return time.monotonic() - since
            time.sleep(POLL_S)
        return None

    def run(self) -> None:
        bound = 6 * self.lease_ttl_s + 30  # how long a takeover may take before we give up
        try:
            if not self._wait_until(KILL_AT):
                return
            t = time.monotonic()
            self.processes[1].send_signal(signal.SIGKILL)
            rec = FaultRecord("SIGKILL instance 2", t - self.t0)
            self.records.append(rec)
            rec.takeover_s = self._covered([self.bases[0], self.bases[2]], t, bound)

            if not self._wait_until(PAUSE_AT):
                return
            pause_s = 2 * self.lease_ttl_s + 1
            t = time.monotonic()
            self.processes[2].send_signal(signal.SIGSTOP)
            rec = FaultRecord(f"SIGSTOP instance 3 for {pause_s:g} s", t - self.t0)
            self.records.append(rec)
            rec.takeover_s = self._covered([self.bases[0]], t, pause_s)
            self.stopping.wait(max(0.0, t + pause_s - time.monotonic()))
            self.processes[2].send_signal(signal.SIGCONT)
            resumed = time.monotonic()
            got = self._owned(self.bases[0])
            partitions = got[1] if got else 64
            rec.rejoin_s = self._rejoined(self.bases[2], partitions // 2, resumed, bound)

            if not self._wait_until(RESTART_AT):
                return
            t = time.monotonic()
            rec = FaultRecord("database crash and restart", t - self.t0)
            self.records.append(rec)
            self.pg.restart("immediate")
            rec.down_s = time.monotonic() - t
            rec.takeover_s = self._covered([self.bases[0], self.bases[2]], t, bound)
        except Exception as exc:  # reported in the verdict, never a silent stop
            self.records.append(FaultRecord("fault thread failed", time.monotonic() - self.t0,
                                            error=f"{type(exc).__name__}: {exc}"))

    def stop(self) -> list[FaultRecord]:
        self.stopping.set()
        self.join(timeout=60)
        if self.processes[2].poll() is None:  # never leave it paused
            self.processes[2].send_signal(signal.SIGCONT)
        return self.records
