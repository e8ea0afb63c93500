"""A pool of workers for callback-style tasks (warehouse staff, API workers).

`submit(task)` runs `task(done)` when a worker is free; the task calls `done()` when it ends,
however much later. Cheaper than a SimPy Resource request per task, same FIFO semantics.

`hold(duration)` occupies a free worker for a known time without any event: the worker is
released lazily (on the next use of the pool, or by one wake-up when tasks are waiting). On the
twin's hot path this saves an event per movement.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable

import simpy

from sim.kernel import at

Task = Callable[[Callable[[], None]], None]


class WorkerPool:
    def __init__(self, env: simpy.Environment, workers: int) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.env = env
        self.workers = workers
        self._busy = 0
        self.waiting: deque[Task] = deque()
        self._busy_time = 0.0
        self._since = 0.0
        self._releases: list[float] = []
        """End times of `hold`s not yet given back (a heap)."""
        self._wake_at: float | None = None

    @property
    def busy(self) -> int:
        self._reap()
        return self._busy

    @property
    def busy_time(self) -> float:
        self._reap()
        self._account(self.env.now)
        return self._busy_time

    def submit(self, task: Task) -> None:
        if self._releases:
            self._reap()
        if self._busy < self.workers:
            self._start(task)
        else:
            self.waiting.append(task)
            self._wake_for_waiting()

    def take(self) -> bool:
        """Occupy a free worker now, until `release()`: what `submit` does when a worker is
        free, without a task and its `done` (for a caller that serves at once). False, and
        nothing taken, when `submit` would queue."""
        if self._releases:
            self._reap()
        if self._busy < self.workers:
            self._account(self.env._now)  # `_now`: the hot path's, see `hold`
            self._busy += 1
            return True
        return False

    def release(self) -> None:
        """Give back a worker that `take` occupied (a task's `done` does this too); the next
        waiting task, if any, starts on it."""
        if self._releases:
            self._reap()
        self._account(self.env._now)
        self._busy -= 1
        if self.waiting:
            self._start(self.waiting.popleft())

    def hold(self, duration: float) -> bool:
        """Occupy a free worker for `duration` seconds from now; False (and nothing held) if
        every worker is busy, or tasks are already waiting their turn."""
        if self._releases:
            self._reap()
        if self._busy >= self.workers or self.waiting:
            return False
        now = self.env._now  # not the `now` property: this runs once per movement
        self._busy_time += self._busy * (now - self._since)  # self._account(now), inline
        self._since = now
        self._busy += 1
        heapq.heappush(self._releases, now + max(duration, 0.0))
        return True

    def _account(self, t: float) -> None:
        self._busy_time += self._busy * (t - self._since)
        self._since = t

    def _reap(self) -> None:
        """Give back every held worker whose time is up, accounting busy time exactly."""
        releases, now = self._releases, self.env._now  # `_now`: the hot path's, see `hold`
        while releases and releases[0] <= now:
            t = heapq.heappop(releases)
            self._busy_time += self._busy * (t - self._since)  # self._account(t), inline
            self._since = t
            self._busy -= 1

    def _wake_for_waiting(self) -> None:
        """Tasks wait and a held worker frees up later: be there when it does."""
        if not self._releases:
            return
        t = self._releases[0]
        if self._wake_at is None or t < self._wake_at:
            self._wake_at = t
            at(self.env, t - self.env.now, self._wake, t)

    def _wake(self, t: float) -> None:
        if self._wake_at != t:
            return
        self._wake_at = None
        self._reap()
        while self.waiting and self._busy < self.workers:
            self._start(self.waiting.popleft())
        if self.waiting:
            self._wake_for_waiting()

    def _start(self, task: Task) -> None:
        self._account(self.env._now)  # `_now`: the hot path's, see `hold`
        self._busy += 1
        finished = False

        def done() -> None:
            nonlocal finished
            if finished:
                raise RuntimeError("task finished twice")
            finished = True
            self.release()

        task(done)

    @property
    def queue_length(self) -> int:
        return len(self.waiting)
