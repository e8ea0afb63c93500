"""A system's API endpoint in simulated time, callback style for high volume.

`request(op, reply)` queues for a worker, holds for a service time, runs `op()` against the
system's state model and replies. Timeouts are the caller's business (see `sim.calls`): a
reply that arrives after the caller gave up is the ambiguous outcome that makes duplicates real.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Any

import numpy as np
import simpy

from integration_core.errors import PayloadError
from sim.distributions import sampler
from sim.kernel import Windows, at
from sim.scenario import ApiConfig
from sim.systems.pool import WorkerPool


class Status(StrEnum):
    OK = "ok"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    REJECTED = "rejected"
    """The request was understood and refused (bad payload): retrying cannot help."""
    TIMEOUT = "timeout"
    """Set by callers, never by the endpoint: no answer in time."""


Reply = Callable[[Status, Any], None]


class Endpoint:
    def __init__(
        self, env: simpy.Environment, name: str, cfg: ApiConfig, rng: np.random.Generator
    ) -> None:
        self.env = env
        self.name = name
        self.pool = WorkerPool(env, cfg.workers)
        self._service = sampler(cfg.service_time_s, rng)
        self.maintenance = Windows([(w.start_s, w.end_s) for w in cfg.maintenance])
        self.rate_limit = cfg.rate_limit_per_min
        self._window = -1
        self._in_window = 0
        self.down = False
        self.slow_factor = 1.0
        self.calls = 0
        self.served = 0
        self.refused: dict[Status, int] = {s: 0 for s in Status}

    def available(self) -> bool:
        return not self.down and not self.maintenance.active(self.env.now)

    def _admit(self) -> bool:
        """Fixed one-minute windows: simple, and what many cloud ERPs document."""
        if self.rate_limit is None:
            return True
        window = int(self.env.now // 60)
        if window != self._window:
            self._window, self._in_window = window, 0
        if self._in_window >= self.rate_limit:
            return False
        self._in_window += 1
        return True

    def request(self, op: Callable[[], Any], reply: Reply) -> None:
        self.calls += 1
        if not self.available():
            self.refused[Status.UNAVAILABLE] += 1
            reply(Status.UNAVAILABLE, None)
            return
        if not self._admit():
            self.refused[Status.RATE_LIMITED] += 1
            reply(Status.RATE_LIMITED, 60 - self.env.now % 60)
            return

        def task(done: Callable[[], None]) -> None:
            at(self.env, self._service() * self.slow_factor, self._finish, op, reply, done)

        self.pool.submit(task)

    def _finish(self, op: Callable[[], Any], reply: Reply, done: Callable[[], None]) -> None:
        done()
        if not self.available():  # went down while serving: the work is lost
            self.refused[Status.UNAVAILABLE] += 1
            reply(Status.UNAVAILABLE, None)
            return
        try:
            value = op()
        except PayloadError as exc:
            self.refused[Status.REJECTED] += 1
            reply(Status.REJECTED, exc)
            return
        self.served += 1
        reply(Status.OK, value)
