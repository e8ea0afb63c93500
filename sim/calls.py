"""A synchronous-style call across links, with a timeout, in callback form.

request leg over `out`, the endpoint serves it, reply leg over `back`; the caller hears exactly
once: the endpoint's status, or TIMEOUT if nothing came back in time (lost request, lost reply,
slow server). A TIMEOUT can hide a request the endpoint applied: the ambiguous outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy

from sim.kernel import at
from sim.network import Link
from sim.systems.endpoint import Endpoint, Status

OnResult = Callable[[Status, Any], None]


def call(
    env: simpy.Environment,
    out: Link,
    endpoint: Endpoint,
    back: Link,
    op: Callable[[], Any],
    timeout_s: float,
    on_result: OnResult,
) -> None:
    answered = False

    def hear(status: Status, value: Any) -> None:
        nonlocal answered
        if not answered:
            answered = True
            on_result(status, value)

    def arrive() -> None:
        def reply(status: Status, value: Any) -> None:
            back.send(hear, status, value)

        endpoint.request(op, reply)

    out.send(arrive)
    at(env, timeout_s, hear, Status.TIMEOUT, None)
