"""A pool of workers for callback-style tasks (warehouse staff, API workers).

`submit(task)` runs `task(done)` when a worker is free; the task calls `done()` when it ends,
however much later. Cheaper than a SimPy Resource request per task, same FIFO semantics.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import simpy

Task = Callable[[Callable[[], None]], None]


class WorkerPool:
    def __init__(self, env: simpy.Environment, workers: int) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.env = env
        self.workers = workers
        self.busy = 0
        self.waiting: deque[Task] = deque()
        self.busy_time = 0.0
        self._since = 0.0

    def submit(self, task: Task) -> None:
        if self.busy < self.workers:
            self._start(task)
        else:
            self.waiting.append(task)

    def _account(self) -> None:
        now = self.env.now
        self.busy_time += self.busy * (now - self._since)
        self._since = now

    def _start(self, task: Task) -> None:
        self._account()
        self.busy += 1
        finished = False

        def done() -> None:
            nonlocal finished
            if finished:
                raise RuntimeError("task finished twice")
            finished = True
            self._account()
            self.busy -= 1
            if self.waiting:
                self._start(self.waiting.popleft())

        task(done)

    @property
    def queue_length(self) -> int:
        return len(self.waiting)
