"""Where an experiment's runs execute: in this process, in local worker processes, or on a Dask
cluster. Every executor yields one `RunOutcome` per task, in completion order, and never lets
one failed run stop the others: an exception in the run, a dead worker process or a lost Dask
worker all become an outcome carrying the error.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import numpy as np

from sim.scenario import Scenario


@dataclass(frozen=True)
class RunTask:
    """One replication of one configuration; the scenario already carries the run's seed."""

    config_id: str
    replication: int
    seed: int
    scenario: Scenario


@dataclass
class RunOutput:
    """What a run function returns: flat KPIs, optionally the full summary and the series."""

    kpis: dict[str, float | None]
    summary: dict[str, Any] = field(default_factory=dict)
    series: dict[str, np.ndarray] | None = None
    wall_s: float = 0.0


@dataclass
class RunOutcome:
    task: RunTask
    output: RunOutput | None
    error: str | None = None
    """The traceback (or the executor's reason) when the run failed."""

    @property
    def ok(self) -> bool:
        return self.error is None


RunFn = Callable[[Scenario], RunOutput]
"""Runs one scenario. Must be picklable (a module-level function) for process and Dask
executors; tests inject fakes here."""


def execute(task: RunTask, run_fn: RunFn) -> RunOutcome:
    """Run one task, turning any exception into a failed outcome (runs in the worker)."""
    t0 = time.perf_counter()
    try:
        out = run_fn(task.scenario)
    except Exception:
        return RunOutcome(task, None, traceback.format_exc())
    if not out.wall_s:
        out.wall_s = time.perf_counter() - t0
    return RunOutcome(task, out)


class Executor(Protocol):
    workers: int
    """How many runs execute at once (for the record and the progress bar)."""

    def map(self, fn: Callable[[RunTask], RunOutcome],
            tasks: Sequence[RunTask]) -> Iterator[RunOutcome]:
        """Outcomes in completion order, one per task."""
        ...

    def close(self) -> None: ...


class SerialExecutor:
    """Runs in this process, one after another: the reference for speed-ups and debugging."""

    workers = 1

    def map(self, fn: Callable[[RunTask], RunOutcome],
            tasks: Sequence[RunTask]) -> Iterator[RunOutcome]:
        for t in tasks:
            yield fn(t)

    def close(self) -> None:
        pass


class ProcessExecutor:
    """Local worker processes (default: one per core).

    Workers are started with `spawn`, not `fork`: the parent may run threads (the progress
    bar's, a Dask client's), and forking a threaded process can deadlock the child. The cost is
    an import of the twin per worker, once (about a second). As with any `spawn` pool, a script
    that starts one needs the `if __name__ == "__main__":` guard.

    A worker process that dies (killed for memory, a crash in native code) breaks the whole
    pool, and every unfinished run gets the same error, so which run did it is unknown. The
    unfinished runs are then retried in a one-worker pool, which runs them in order: the first
    unfinished one after the next death is the culprit. It is reported failed and the rest go
    back to a full pool."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        self.close()
        self._pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def map(self, fn: Callable[[RunTask], RunOutcome],
            tasks: Sequence[RunTask]) -> Iterator[RunOutcome]:
        pending, isolate = list(tasks), False
        while pending:
            if isolate or self._pool is None:
                pool = self._new_pool(1 if isolate else self.workers)
            else:
                pool = self._pool
            futures = {pool.submit(fn, t): i for i, t in enumerate(pending)}
            broken: list[int] = []
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except BrokenProcessPool:
                    broken.append(futures[fut])
                except Exception as exc:  # e.g. the task could not be pickled
                    yield RunOutcome(pending[futures[fut]], None, f"{type(exc).__name__}: {exc}")
            unfinished = [pending[i] for i in sorted(broken)]
            if unfinished and isolate:
                yield RunOutcome(unfinished[0], None, "the worker process running this run died "
                                 "(BrokenProcessPool): killed, out of memory or a native crash")
                unfinished = unfinished[1:]
            if unfinished or isolate:
                self.close()  # a broken pool cannot be reused; a one-worker one is not wanted
            pending, isolate = unfinished, bool(unfinished) and not isolate

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None


class DaskExecutor:
    """A Dask distributed cluster, given its scheduler address (`tcp://host:8786`).

    Workers need this package installed (the run function is sent by reference). A worker that
    dies mid-run is retried by the scheduler on another one and, if it keeps dying, reported as
    a failed run (`KilledWorker`)."""

    def __init__(self, address: str) -> None:
        import distributed

        # distributed has no type hints (mypy would flag every call): handle it as Any.
        self._dist: Any = distributed
        self.address = address
        self._client: Any = self._dist.Client(address)
        self.workers = max(1, sum(self._client.nthreads().values()))

    def map(self, fn: Callable[[RunTask], RunOutcome],
            tasks: Sequence[RunTask]) -> Iterator[RunOutcome]:
        # pure=False: two runs of the same task are two runs (a replay), never a cache hit.
        futures = {self._client.submit(fn, t, pure=False): t for t in tasks}
        for fut in self._dist.as_completed(list(futures)):
            try:
                yield fut.result()
            except Exception as exc:
                yield RunOutcome(futures[fut], None, f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._client.close()


def make_executor(workers: int | None = None, dask: str | None = None) -> Executor:
    """Dask when given an address; else `workers` local processes (None: all cores), or this
    process alone when workers == 1."""
    if dask:
        return DaskExecutor(dask)
    if workers == 1:
        return SerialExecutor()
    return ProcessExecutor(workers)


def run_tasks(executor: Executor, tasks: Sequence[RunTask], run_fn: RunFn,
              on_outcome: Callable[[RunOutcome], None] | None = None) -> list[RunOutcome]:
    """All outcomes, sorted by (config, replication) whatever order they completed in."""
    outcomes = []
    for o in executor.map(partial(execute, run_fn=run_fn), tasks):
        outcomes.append(o)
        if on_outcome is not None:
            on_outcome(o)
    return sorted(outcomes, key=lambda o: (o.task.config_id, o.task.replication))
