"""A synchronous-style call across links, with a timeout, in callback form.

request leg over `out`, the endpoint serves it, reply leg over `back`; the caller hears exactly
once: the endpoint's status, or TIMEOUT if nothing came back in time (lost request, lost reply,
slow server). A TIMEOUT can hide a request the endpoint applied: the ambiguous outcome.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import simpy

from sim.kernel import at
from sim.network import Link
from sim.scenario import DirectConfig
from sim.systems.endpoint import Endpoint, Status

OnResult = Callable[[Status, Any], None]


class _Pending:
    __slots__ = ("answered", "on_result")

    def __init__(self, on_result: OnResult) -> None:
        self.answered = False
        self.on_result = on_result

    def hear(self, status: Status, value: Any) -> None:
        if not self.answered:
            self.answered = True
            self.on_result(status, value)


class _Deadlines:
    """The callers' timeouts without a timer event per call. Calls with the same timeout
    expire in the order they were made, so one FIFO per timeout value holds them in deadline
    order, and one scheduled check at a time per FIFO is enough: it drops the answered calls
    at the front, times out those whose deadline has come, and sleeps until the deadline of the
    first call still waiting. Timeouts still fire exactly at their deadline; most calls are
    answered long before it and cost no event at all."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.queues: dict[float, deque[tuple[float, _Pending]]] = {}
        self.armed: set[float] = set()

    def add(self, timeout_s: float, pending: _Pending) -> None:
        q = self.queues.get(timeout_s)
        if q is None:
            q = self.queues[timeout_s] = deque()
        q.append((self.env._now + timeout_s, pending))  # not the `now` property: per call
        if timeout_s not in self.armed:
            self.armed.add(timeout_s)
            at(self.env, timeout_s, self._check, timeout_s)

    def _check(self, timeout_s: float) -> None:
        q, now = self.queues[timeout_s], self.env.now
        while q:
            deadline, pending = q[0]
            if pending.answered:
                q.popleft()
            elif deadline <= now:
                q.popleft()
                pending.hear(Status.TIMEOUT, None)
            else:
                at(self.env, deadline - now, self._check, timeout_s)
                return
        self.armed.discard(timeout_s)


_DEADLINES_ATTR = "_sim_call_deadlines"
"""Each environment's `_Deadlines`, kept on the environment itself (dies with it): a
weak-keyed dictionary would build a weak reference on every call."""


def call(
    env: simpy.Environment,
    out: Link,
    endpoint: Endpoint,
    back: Link,
    op: Callable[[], Any],
    timeout_s: float,
    on_result: OnResult,
    items: int = 1,
) -> None:
    pending = _Pending(on_result)
    hear = pending.hear

    def reply(status: Status, value: Any) -> None:
        back.send(hear, status, value)

    out.send(endpoint.request, op, reply, items)  # the request arrives at the endpoint
    deadlines = env.__dict__.get(_DEADLINES_ATTR)
    if deadlines is None:
        deadlines = _Deadlines(env)
        setattr(env, _DEADLINES_ATTR, deadlines)
    deadlines.add(timeout_s, pending)


def direct_call(
    env: simpy.Environment,
    link: Link,
    endpoint: Endpoint,
    op: Callable[[], Any],
    cfg: DirectConfig,
    on_final: OnResult,
    count: Callable[[], None] | None = None,
    attempt: int = 0,
) -> None:
    """The `direct` pattern's caller: call over `link` (both ways), retry `cfg.retries` times
    after `cfg.backoff_s` unless the answer was a refusal, then report the final status once.
    `count` is told of every attempt (API call accounting)."""
    if count is not None:
        count()

    def result(status: Status, value: Any) -> None:
        if status is not Status.OK and status is not Status.REJECTED and attempt < cfg.retries:
            at(env, cfg.backoff_s, direct_call, env, link, endpoint, op, cfg, on_final, count,
               attempt + 1)
        else:
            on_final(status, value)

    call(env, link, endpoint, link, op, cfg.timeout_s, result)
