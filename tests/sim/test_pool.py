from __future__ import annotations

from collections.abc import Callable

import pytest
import simpy

from sim.kernel import at
from sim.systems import WorkerPool


def holding(env: simpy.Environment, pool: WorkerPool, log: list[tuple[str, float, int]],
            name: str, hold_s: float) -> Callable[[Callable[[], None]], None]:
    """A task that logs its start (and how many workers are busy) and holds for hold_s."""

    def task(done: Callable[[], None]) -> None:
        log.append((name, env.now, pool.busy))
        at(env, hold_s, done)

    return task


def test_fifo_within_capacity() -> None:
    env = simpy.Environment()
    pool = WorkerPool(env, 2)
    log: list[tuple[str, float, int]] = []
    for name, hold in [("a", 3.0), ("b", 1.0), ("c", 1.0), ("d", 5.0), ("e", 1.0)]:
        pool.submit(holding(env, pool, log, name, hold))
    assert (pool.busy, pool.queue_length) == (2, 3)
    env.run()
    # b ends at 1 -> c; c ends at 2 -> d; a ends at 3 -> e. Never more than 2 busy.
    assert log == [("a", 0.0, 1), ("b", 0.0, 2), ("c", 1.0, 2), ("d", 2.0, 2), ("e", 3.0, 2)]
    assert (pool.busy, pool.queue_length) == (0, 0)


def test_busy_time_is_worker_seconds() -> None:
    env = simpy.Environment()
    pool = WorkerPool(env, 3)
    log: list[tuple[str, float, int]] = []
    at(env, 1.0, pool.submit, holding(env, pool, log, "a", 3.0))
    at(env, 2.0, pool.submit, holding(env, pool, log, "b", 1.0))
    at(env, 10.0, pool.submit, holding(env, pool, log, "c", 0.5))
    env.run(until=3.5)
    # Accounted up to now: a from 1 to 3.5 (still busy), b from 2 to 3.
    assert pool.busy_time == 3.5
    env.run()
    assert pool.busy_time == 4.5
    assert env.now == 10.5


def test_a_task_may_finish_at_once() -> None:
    env = simpy.Environment()
    pool = WorkerPool(env, 1)
    ran: list[int] = []

    def instant(i: int) -> Callable[[Callable[[], None]], None]:
        def task(done: Callable[[], None]) -> None:
            ran.append(i)
            done()

        return task

    for i in range(3):
        pool.submit(instant(i))
    assert ran == [0, 1, 2] and pool.busy == 0 and pool.busy_time == 0.0


def test_finishing_twice_is_an_error_and_changes_nothing() -> None:
    env = simpy.Environment()
    pool = WorkerPool(env, 1)
    dones: list[Callable[[], None]] = []
    pool.submit(dones.append)
    pool.submit(dones.append)
    assert (pool.busy, pool.queue_length, len(dones)) == (1, 1, 1)
    dones[0]()  # starts the second task
    assert (pool.busy, len(dones)) == (1, 2)
    with pytest.raises(RuntimeError, match="twice"):
        dones[0]()
    assert pool.busy == 1


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        WorkerPool(simpy.Environment(), 0)


def test_hold_occupies_a_worker_without_an_event_and_wakes_waiting_tasks() -> None:
    env = simpy.Environment()
    pool = WorkerPool(env, 2)
    log: list[tuple[str, float, int]] = []
    assert pool.hold(5.0) and pool.hold(2.0)
    assert not pool.hold(1.0)  # both workers held
    pool.submit(holding(env, pool, log, "a", 1.0))  # waits for the first held worker
    assert pool.queue_length == 1 and pool.busy == 2
    assert not pool.hold(1.0)  # a task is waiting: no overtaking
    env.run()
    assert log == [("a", 2.0, 2)]  # started the moment the 2-second hold ended
    assert env.now == 3.0  # one wake-up at 2.0 and a's end; the 5-second hold needs none
    assert pool.busy == 1 and pool.busy_time == 3.0 + 2.0 + 1.0  # the long hold runs to 5
    env.run(until=6.0)
    assert pool.busy == 0 and pool.busy_time == 5.0 + 2.0 + 1.0


def test_take_and_release_are_submit_and_done_without_a_task() -> None:
    env = simpy.Environment()
    pool = WorkerPool(env, 1)
    log: list[tuple[str, float, int]] = []
    assert pool.take()
    assert not pool.take()  # the only worker is taken: submit would queue
    pool.submit(holding(env, pool, log, "a", 1.0))
    assert (pool.busy, pool.queue_length) == (1, 1)
    at(env, 2.0, pool.release)  # the waiting task starts on the released worker
    env.run()
    assert log == [("a", 2.0, 1)]
    assert (pool.busy, pool.queue_length) == (0, 0)
    assert pool.busy_time == 3.0
