"""A system's API endpoint in simulated time, callback style for high volume.

`request(op, reply)` runs `op()` against the system's state model on one of the endpoint's
workers and calls `reply(status, value)` exactly once. The ERP, WMS and carrier twins pass
their state changes as plain callables, so the state models stay free of SimPy. No process
and no generator per call: a request costs a closure and one scheduled event, which matters
because the twin pushes millions of them.

A request, in order:

1. arrival: UNAVAILABLE if the endpoint is `down` or in a maintenance window; then
   RATE_LIMITED (value: seconds until one more call would be admitted) if it is over its
   sliding one-minute limit;
2. queue: waits FIFO for one of `workers` workers (`sim.systems.pool.WorkerPool`);
3. its turn: UNAVAILABLE at once, without holding the worker, if the endpoint went down while
   the request was queued (an outage drops the queue);
4. service: holds the worker for a service time x `slow_factor` (the factor in force when the
   service starts);
5. end of service: UNAVAILABLE if the endpoint is down at that instant (the work is lost);
   else SERVER_ERROR with probability `failure_probability` (the op is not applied); else
   `op()` runs at that instant: OK with its return value, or REJECTED with the
   `integration_core.errors.PayloadError` it raised (retrying cannot help). Any other
   exception from `op` is a bug in the model and propagates.

Timeouts are the caller's business (see `sim.calls`): a reply that arrives after the caller
gave up is the ambiguous outcome that makes duplicates real. The endpoint never answers
TIMEOUT.

Rate limit: a sliding window over the last 60 s of admitted calls. A call is refused if
`rate_limit_per_min` calls were admitted in (t - 60, t]; refused calls do not count. Unlike a
fixed per-minute window it never lets twice the limit through across a minute boundary.

Records (DESIGN principle 5): with `record=True`, every call that held a worker for its
service time, whatever its outcome, adds one row (arrival, start of service, end) to flat
float64 columns, in order of end; `records()` returns copies as numpy arrays. 24 bytes a call.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import simpy

from integration_core.errors import PayloadError
from sim.distributions import Sampler, sampler
from sim.kernel import Windows, at
from sim.scenario import ApiConfig, spans
from sim.systems.pool import WorkerPool

RATE_WINDOW_S = 60.0
"""Length of the sliding rate-limit window, seconds."""


class Status(StrEnum):
    """What the caller of an endpoint hears."""

    OK = "ok"
    UNAVAILABLE = "unavailable"
    """Down (outage or maintenance) at arrival, at its turn for a worker, or at the end of
    service. Worth retrying later."""
    RATE_LIMITED = "rate_limited"
    """Over the per-minute limit at arrival; the reply's value is the retry-after, seconds."""
    REJECTED = "rejected"
    """The request was understood and refused (bad payload): retrying cannot help."""
    SERVER_ERROR = "server_error"
    """Failed after service; the op was not applied. Worth retrying."""
    TIMEOUT = "timeout"
    """Set by callers, never by the endpoint: no answer in time."""


Reply = Callable[[Status, Any], None]


class ServiceRecords(NamedTuple):
    """One row per call that held a worker for its service time, whatever its outcome, in
    order of service end. The wait in queue is `start - arrival`, the time in system
    `end - arrival`."""

    arrival: npt.NDArray[np.float64]
    start: npt.NDArray[np.float64]
    end: npt.NDArray[np.float64]


class Endpoint:
    """A multi-worker API with outages, maintenance, a rate limit, failures and slowdowns.

    Fault injection sets `down`, `slow_factor` (or `degrade`) and `failure_probability` at
    any time. Counters: `calls` (arrivals), `served` (answered OK), `refused[status]` (answered
    anything else), so `calls == served + sum(refused.values()) + in_flight`; `busy_time`
    (worker-seconds of service).
    """

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        cfg: ApiConfig,
        rng: np.random.Generator,
        *,
        record: bool = True,
        until_s: float = float("inf"),
    ) -> None:
        """`until_s`: where recurring maintenance windows stop (the end of the workload)."""
        self.env = env
        self.name = name
        self.pool = WorkerPool(env, cfg.workers)
        self._service = sampler(cfg.service_time_s, rng)
        self._rng = rng
        self._failure_draw: Sampler | None = None
        self.maintenance = Windows(spans(cfg.maintenance, until_s))
        self._has_maintenance = bool(self.maintenance.spans)
        # Admission times of the last `limit` admitted calls: O(1) per call, O(limit) memory.
        limit = cfg.rate_limit_per_min
        self._admitted: deque[float] | None = deque(maxlen=limit) if limit else None
        self.down = False
        """Set by fault injection: an outage outside the scenario's maintenance windows."""
        self.slow_factor = 1.0
        """Multiplies service times of calls that start service from now on."""
        self._per_item_s = cfg.bulk_per_item_s
        self.failure_probability = cfg.failure_probability
        """Probability that a served call fails with SERVER_ERROR; fault injection may change
        it. Drawn from a child of `rng`, and only while > 0, so switching failures on or off
        does not shift the service times."""
        self.calls = 0
        self.served = 0
        self.refused: dict[Status, int] = dict.fromkeys(Status, 0)
        self.record = record
        self._arrival = array("d")
        self._start = array("d")
        self._end = array("d")

    # --- configuration and state ----------------------------------------------------------

    @property
    def rate_limit(self) -> int | None:
        """Calls admitted per sliding minute; None means unlimited."""
        return None if self._admitted is None else self._admitted.maxlen

    def available(self) -> bool:
        """Up: not down and not in a maintenance window."""
        return not self.down and not (
            self._has_maintenance and self.maintenance.active(self.env.now)
        )

    def degrade(self, factor: float) -> None:
        """Multiply service times of calls starting from now on by `factor` (1.0 restores)."""
        if not (factor > 0 and math.isfinite(factor)):
            raise ValueError(f"{self.name}: slow factor must be > 0 and finite, got {factor}")
        self.slow_factor = factor

    @property
    def queue_length(self) -> int:
        """Calls waiting for a worker."""
        return self.pool.queue_length

    @property
    def in_service(self) -> int:
        """Calls holding a worker."""
        return self.pool.busy

    @property
    def in_flight(self) -> int:
        """Calls admitted and not answered yet."""
        return self.calls - self.served - sum(self.refused.values())

    @property
    def busy_time(self) -> float:
        """Worker-seconds of service, up to the last start or end of a service."""
        return self.pool.busy_time

    def records(self) -> ServiceRecords:
        """Copies of the service columns, for metric functions outside the engine."""
        if not self.record:
            raise RuntimeError(f"{self.name}: created with record=False, no service records")
        return ServiceRecords(
            np.array(self._arrival, dtype=np.float64),
            np.array(self._start, dtype=np.float64),
            np.array(self._end, dtype=np.float64),
        )

    # --- requests -------------------------------------------------------------------------

    def request(self, op: Callable[[], Any], reply: Reply, items: int = 1) -> None:
        """Serve `op` and call `reply(status, value)` once, now or later (see the module doc).
        A bulk request of `items` takes `bulk_per_item_s` more per item beyond the first."""
        env = self.env
        arrival = env._now  # not the `now` property (a Python call): once per call
        self.calls += 1
        if self.down or (self._has_maintenance and self.maintenance.active(arrival)):
            self.refused[Status.UNAVAILABLE] += 1
            reply(Status.UNAVAILABLE, None)
            return
        admitted = self._admitted
        if admitted is not None:
            if len(admitted) == admitted.maxlen and arrival - admitted[0] < RATE_WINDOW_S:
                self.refused[Status.RATE_LIMITED] += 1
                reply(Status.RATE_LIMITED, admitted[0] + RATE_WINDOW_S - arrival)
                return
            admitted.append(arrival)
        pool = self.pool
        if pool.take():
            # A worker is free: service starts now, as `task` would start it (the arrival
            # checks above are its checks, at the same instant), without the closures.
            service = self._service() + self._per_item_s * (items - 1)
            at(env, service * self.slow_factor, self._finish, op, reply, pool.release, arrival,
               arrival)
            return

        def task(done: Callable[[], None]) -> None:
            if self.down or (self._has_maintenance and self.maintenance.active(env.now)):
                # Answer from the event loop: calling done() here would start the next queued
                # task inside this one, and a long queue would overflow the stack.
                at(env, 0.0, self._drop, reply, done)
                return
            service = self._service() + self._per_item_s * (items - 1)
            at(env, service * self.slow_factor, self._finish, op, reply, done, arrival, env._now)

        pool.submit(task)

    def _drop(self, reply: Reply, done: Callable[[], None]) -> None:
        done()
        self.refused[Status.UNAVAILABLE] += 1
        reply(Status.UNAVAILABLE, None)

    def _finish(self, op: Callable[[], Any], reply: Reply, done: Callable[[], None],
                arrival: float, start: float) -> None:
        done()
        if self.record:
            self._arrival.append(arrival)
            self._start.append(start)
            self._end.append(self.env.now)
        if not self.available():  # went down while serving: the work is lost
            self.refused[Status.UNAVAILABLE] += 1
            reply(Status.UNAVAILABLE, None)
            return
        p = self.failure_probability
        if p > 0 and self._uniform() < p:
            self.refused[Status.SERVER_ERROR] += 1
            reply(Status.SERVER_ERROR, None)
            return
        try:
            value = op()
        except PayloadError as exc:
            self.refused[Status.REJECTED] += 1
            reply(Status.REJECTED, exc)
            return
        self.served += 1
        reply(Status.OK, value)

    def _uniform(self) -> float:
        draw = self._failure_draw
        if draw is None:
            # Its own stream, spawned on first use: the service-time draws stay as they were.
            child = self._rng.spawn(1)[0]
            draw = self._failure_draw = Sampler(lambda n: child.random(n))
        return draw()
