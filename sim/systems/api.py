"""A partner system's API server in SimPy: workers, service times, outages, limits, timeouts.

The ERP, WMS and carrier twins embed one `ApiServer` each and pass it their state changes as
plain callables (`op`), so the state models stay free of SimPy.

A call, in order:

1. arrival: refused with `Unavailable` if the server is down (`set_down` or a maintenance
   window), then with `RateLimited` if it is over its per-minute limit;
2. queue: waits FIFO for one of `workers` workers;
3. its turn: refused with `Unavailable` if the server went down meanwhile (queued requests
   are dropped by an outage); calls already in service finish;
4. service: holds the worker for `service_time() * degradation` seconds;
5. reply: with probability `failure_probability` a `ServerError` (op not applied), otherwise
   `op()` runs at that instant and its result (or exception) is the reply.

Timeouts. With `timeout_s` set, the server side runs as its own SimPy process and the caller
races it against a timer covering steps 2-5. If the timer wins the caller gets `CallTimeout`,
but the server does not know: the call stays queued or in service and `op()` is still applied
later. That ambiguous outcome (caller saw a failure, system applied the change) is what makes
retried calls into real duplicates; `applied_unacknowledged` counts them. Without a timeout the
call runs inline in the caller's process (no extra process, cheaper); interrupting such a caller
withdraws its call (queued: dropped; in service: cut short, op not applied).

Rate limit: a sliding window over the last 60 s of admitted calls. A call is refused if
`rate_limit_per_min` calls were admitted in (t - 60, t]; refused calls do not count. Unlike a
fixed per-minute window it never lets 2x the limit through across a minute boundary.
"""

from __future__ import annotations

from array import array
from collections import deque
from collections.abc import Callable, Generator, Iterable
from typing import Any, NamedTuple, TypeVar, cast

import numpy as np
import numpy.typing as npt
import simpy

from sim.distributions import Sampler
from sim.systems.errors import (
    ApiError,
    CallTimeout,
    FailureReason,
    RateLimited,
    ServerError,
    Unavailable,
)

T = TypeVar("T")

RATE_WINDOW_S = 60.0


class ServiceRecords(NamedTuple):
    """One row per served call (every call that held a worker for its service time, whatever
    its outcome), in order of service end. Waiting time in queue is `start - arrival`."""

    arrival: npt.NDArray[np.float64]
    start: npt.NDArray[np.float64]
    end: npt.NDArray[np.float64]


class ApiServer:
    """A multi-worker API server with outages, maintenance, rate limit, failures and timeouts.

    Counters: `calls` (arrivals); `completed` (caller got a result) and `failed[reason]` (caller
    got an error), so `calls == completed + sum(failed.values())` once no call is in flight;
    server side, `applied` (op ran and returned, answered or not), `applied_unacknowledged`
    (applied after the caller had gone), `busy_time` (worker-seconds of service).
    """

    def __init__(
        self,
        env: simpy.Environment,
        name: str,
        workers: int,
        service_time: Callable[[], float],
        rng: np.random.Generator,
        *,
        rate_limit_per_min: int | None = None,
        failure_probability: float = 0.0,
        maintenance: Iterable[tuple[float, float]] = (),
        timeout_s: float | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"{name}: workers must be >= 1, got {workers}")
        if rate_limit_per_min is not None and rate_limit_per_min < 1:
            raise ValueError(f"{name}: rate_limit_per_min must be >= 1, got {rate_limit_per_min}")
        if not 0.0 <= failure_probability <= 1.0:
            raise ValueError(f"{name}: failure_probability must be in [0, 1]")
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"{name}: timeout_s must be > 0, got {timeout_s}")
        self.env = env
        self.name = name
        self.workers = workers
        self.failure_probability = failure_probability  # may be changed by a fault injector
        self.timeout_s = timeout_s
        self._pool = simpy.Resource(env, capacity=workers)
        self._service_time = service_time
        self._factor = 1.0
        self._down = False
        self._windows = _merge_windows(name, maintenance)
        self._next_window = 0
        # Admission times of the last `limit` admitted calls: O(1) per call, O(limit) memory.
        self._admitted: deque[float] | None = (
            deque(maxlen=rate_limit_per_min) if rate_limit_per_min else None
        )
        # Drawn only while failures are on, so a failure-free server leaves `rng` untouched.
        self._uniform = Sampler(rng.random)

        self.calls = 0
        self.completed = 0
        self.failed: dict[FailureReason, int] = dict.fromkeys(FailureReason, 0)
        self.applied = 0
        self.applied_unacknowledged = 0
        self.busy_time = 0.0
        # Flat columns rather than an object per call (DESIGN principle 5).
        self._arrival = array("d")
        self._start = array("d")
        self._end = array("d")

    @property
    def rate_limit_per_min(self) -> int | None:
        return None if self._admitted is None else self._admitted.maxlen

    # --- faults -------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        """True during an outage (`set_down(True)`) or a maintenance window."""
        return self._down or self._in_maintenance(self.env.now)

    def set_down(self, down: bool) -> None:
        """Start or end an outage; a fault injector drives this."""
        self._down = down

    @property
    def degradation(self) -> float:
        return self._factor

    def degrade(self, factor: float) -> None:
        """Multiply service times from now on by `factor` (1.0 restores normal speed).

        Applies to calls that start service afterwards, not to those already in service.
        """
        if not 0 < factor < float("inf"):
            raise ValueError(f"{self.name}: degradation factor must be > 0, got {factor}")
        self._factor = factor

    @property
    def maintenance_windows(self) -> list[tuple[float, float]]:
        """Maintenance as sorted, merged (start_s, end_s) intervals, end excluded."""
        return list(self._windows)

    def _in_maintenance(self, now: float) -> bool:
        # Simulated time never goes back, so windows that have ended are skipped for good.
        windows, i = self._windows, self._next_window
        while i < len(windows) and now >= windows[i][1]:
            i += 1
        self._next_window = i
        return i < len(windows) and now >= windows[i][0]

    # --- state ---------------------------------------------------------------------------

    @property
    def queue_length(self) -> int:
        """Calls waiting for a worker."""
        return len(self._pool.queue)

    @property
    def in_service(self) -> int:
        """Calls holding a worker."""
        return int(self._pool.count)

    def records(self) -> ServiceRecords:
        """Copies of the per-call columns, for metric functions outside the engine."""
        return ServiceRecords(
            np.array(self._arrival, dtype=np.float64),
            np.array(self._start, dtype=np.float64),
            np.array(self._end, dtype=np.float64),
        )

    # --- calls ---------------------------------------------------------------------------

    def call(self, op: Callable[[], T]) -> Generator[simpy.Event, Any, T]:
        """Call the API: `result = yield from server.call(op)` inside a SimPy process, or
        `yield env.process(server.call(op))`. Raises an `ApiError` subclass, or what `op`
        raised."""
        arrival = self.env.now
        self.calls += 1
        if self._down or (self._windows and self._in_maintenance(arrival)):
            self.failed[FailureReason.UNAVAILABLE] += 1
            raise Unavailable(self.name, arrival)
        admitted = self._admitted
        if admitted is not None:
            if len(admitted) == admitted.maxlen and arrival - admitted[0] < RATE_WINDOW_S:
                self.failed[FailureReason.RATE_LIMITED] += 1
                raise RateLimited(self.name, arrival, admitted[0] + RATE_WINDOW_S - arrival)
            admitted.append(arrival)

        if self.timeout_s is None:
            try:
                result = yield from self._serve(op, arrival)
            except Exception as exc:
                self._count_failure(exc)
                raise
            self.completed += 1
            return result
        return (yield from self._call_with_timeout(op, arrival, self.timeout_s))

    def _call_with_timeout(
        self, op: Callable[[], T], arrival: float, timeout_s: float
    ) -> Generator[simpy.Event, Any, T]:
        env = self.env
        server_side = env.process(self._serve(op, arrival))
        either = server_side | env.timeout(timeout_s)
        try:
            yield either
        except simpy.Interrupt:
            either.defused = True  # nobody waits on it any more
            self._abandon(server_side)
            self.failed[FailureReason.INTERRUPTED] += 1
            raise
        except Exception as exc:  # the server side failed before the deadline
            self._count_failure(exc)
            raise
        if server_side.triggered:  # answered by the deadline, possibly at the same instant
            if server_side.ok:
                self.completed += 1
                return cast(T, server_side.value)
            error = cast(BaseException, server_side.value)
            server_side.defused = True
            self._count_failure(error)
            raise error
        self._abandon(server_side)
        self.failed[FailureReason.TIMEOUT] += 1
        raise CallTimeout(self.name, env.now, f"no reply within {timeout_s}s")

    def _serve(self, op: Callable[[], T], arrival: float) -> Generator[simpy.Event, Any, T]:
        env = self.env
        with self._pool.request() as turn:
            yield turn
            start = env.now
            if self._down or (self._windows and self._in_maintenance(start)):
                raise Unavailable(self.name, start, "went down while the call was queued")
            duration = self._service_time() * self._factor
            yield env.timeout(duration)
            self.busy_time += duration
            self._arrival.append(arrival)
            self._start.append(start)
            self._end.append(env.now)
            p = self.failure_probability
            if p > 0 and self._uniform() < p:
                raise ServerError(self.name, env.now)
            result = op()
            self.applied += 1
            return result

    def _abandon(self, server_side: simpy.Process) -> None:
        # The caller is gone; the server side runs on. Count it if it applies the op, and
        # defuse its failure so an unanswered error does not crash the environment.
        if server_side.callbacks is None:  # already processed
            self._orphan_done(server_side)
        else:
            server_side.callbacks.append(self._orphan_done)

    def _orphan_done(self, server_side: simpy.Event) -> None:
        if server_side.ok:
            self.applied_unacknowledged += 1
        else:
            server_side.defused = True

    def _count_failure(self, exc: BaseException) -> None:
        if isinstance(exc, ApiError):
            self.failed[exc.reason] += 1
        elif isinstance(exc, simpy.Interrupt):
            self.failed[FailureReason.INTERRUPTED] += 1
        else:
            self.failed[FailureReason.REJECTED] += 1


def _merge_windows(name: str, windows: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, duration in sorted(windows):
        if start < 0 or not duration > 0:
            raise ValueError(
                f"{name}: maintenance window needs start >= 0 and duration > 0, "
                f"got ({start}, {duration})"
            )
        end = start + duration
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
