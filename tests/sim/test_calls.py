"""`sim.calls.call`: request leg, endpoint, reply leg, and the caller's timeout."""

from __future__ import annotations

from typing import Any

import simpy

from sim.calls import call
from sim.distributions import Constant
from sim.kernel import at
from sim.network import Link
from sim.rng import Streams
from sim.scenario import ApiConfig, LinkConfig
from sim.systems import Endpoint, Status

LATENCY = 0.5


class Rig:
    """A caller, two links of constant latency (unless told otherwise) and an endpoint."""

    def __init__(self, service: float = 1.0, workers: int = 1, **link: Any) -> None:
        self.env = simpy.Environment()
        streams = Streams(1)
        cfg = LinkConfig(latency_s=Constant(value=LATENCY), **link)
        self.out = Link(self.env, "out", cfg, streams.get("link/out"))
        self.back = Link(self.env, "back", cfg, streams.get("link/back"))
        api = ApiConfig(workers=workers, service_time_s=Constant(value=service),
                        rate_limit_per_min=None)
        self.endpoint = Endpoint(self.env, "erp", api, streams.get("api/erp"))
        self.applied: list[tuple[str, float]] = []
        self.heard: dict[str, list[tuple[Status, Any, float]]] = {}

    def call(self, key: str, timeout_s: float, at_s: float = 0.0) -> None:
        def op() -> str:
            self.applied.append((key, self.env.now))
            return f"ok:{key}"

        def on_result(status: Status, value: Any) -> None:
            self.heard.setdefault(key, []).append((status, value, self.env.now))

        def send() -> None:
            call(self.env, self.out, self.endpoint, self.back, op, timeout_s, on_result)

        at(self.env, at_s, send)

    def run(self) -> None:
        self.env.run()


def test_an_answer_in_time_travels_both_legs() -> None:
    rig = Rig(service=1.0)
    rig.call("a", timeout_s=5.0)
    rig.run()
    assert rig.heard == {"a": [(Status.OK, "ok:a", 2.0)]}  # 0.5 out, 1.0 served, 0.5 back
    assert rig.applied == [("a", 1.5)]


def test_a_timeout_is_ambiguous_the_op_is_applied_after_the_caller_gave_up() -> None:
    rig = Rig(service=5.0)
    rig.call("slow", timeout_s=2.0)
    rig.run()
    assert rig.heard == {"slow": [(Status.TIMEOUT, None, 2.0)]}  # the late OK is not heard
    assert rig.applied == [("slow", 5.5)]  # the system applied it anyway, later
    assert rig.endpoint.served == 1


def test_a_call_timing_out_in_the_queue_is_still_served_later() -> None:
    rig = Rig(service=3.0)
    rig.call("first", timeout_s=5.0)
    rig.call("second", timeout_s=5.0, at_s=0.5)  # queued 1.0-3.5, served 3.5-6.5
    rig.run()
    assert rig.heard == {"first": [(Status.OK, "ok:first", 4.0)],
                         "second": [(Status.TIMEOUT, None, 5.5)]}
    assert rig.applied == [("first", 3.5), ("second", 6.5)]
    assert rig.endpoint.busy_time == 6.0  # the endpoint does not know the caller left


def test_a_reply_landing_exactly_at_the_deadline_loses_to_the_timer() -> None:
    # The timer was scheduled first, so at equal times it fires first.
    rig = Rig(service=1.0)
    rig.call("tie", timeout_s=2.0)
    rig.run()
    assert rig.heard == {"tie": [(Status.TIMEOUT, None, 2.0)]}
    assert rig.applied == [("tie", 1.5)]


def test_a_refusal_travels_back_to_the_caller() -> None:
    rig = Rig()
    rig.endpoint.down = True
    rig.call("a", timeout_s=5.0)
    rig.run()
    assert rig.heard == {"a": [(Status.UNAVAILABLE, None, 1.0)]}
    assert rig.applied == []


def test_a_lost_request_times_out_and_is_never_applied() -> None:
    rig = Rig(loss=1.0)
    rig.call("a", timeout_s=3.0)
    rig.run()
    assert rig.heard == {"a": [(Status.TIMEOUT, None, 3.0)]}
    assert rig.applied == [] and rig.endpoint.calls == 0


def test_a_lost_reply_times_out_but_the_op_was_applied() -> None:
    rig = Rig()
    rig.back.down = True
    rig.call("a", timeout_s=3.0)
    rig.run()
    assert rig.heard == {"a": [(Status.TIMEOUT, None, 3.0)]}
    assert rig.applied == [("a", 1.5)]


def test_duplicates_are_applied_twice_but_the_caller_hears_once() -> None:
    rig = Rig(duplication=1.0)
    rig.call("a", timeout_s=10.0)
    rig.run()
    # Both request copies reach the endpoint (it is not idempotent; the ERP state model is
    # where idempotency keys are honoured); four replies come back, one is heard.
    assert rig.applied == [("a", 1.5), ("a", 2.5)]
    assert rig.heard == {"a": [(Status.OK, "ok:a", 2.0)]}
