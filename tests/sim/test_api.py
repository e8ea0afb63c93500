from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import pytest
import simpy

from sim.rng import Streams
from sim.systems import (
    ApiServer,
    CallTimeout,
    FailureReason,
    RateLimited,
    ServerError,
    Unavailable,
)
from sim.systems.errors import ApiError


def constant(value: float) -> Callable[[], float]:
    return lambda: value


def make(env: simpy.Environment, service: float = 1.0, workers: int = 1, **kw: Any) -> ApiServer:
    return ApiServer(env, "erp", workers, constant(service), Streams(1).get("erp"), **kw)


class Client:
    """Calls the server at given times and records what each caller saw, and when."""

    def __init__(self, env: simpy.Environment, server: ApiServer) -> None:
        self.env, self.server = env, server
        self.applied: list[tuple[str, float]] = []  # the system's state: (key, applied at)
        self.seen: dict[str, tuple[str, float]] = {}  # key -> (outcome, time the caller saw it)

    def op(self, key: str) -> Callable[[], str]:
        def apply() -> str:
            self.applied.append((key, self.env.now))
            return f"ok:{key}"

        return apply

    def at(self, t: float, key: str, op: Callable[[], Any] | None = None) -> simpy.Process:
        def caller() -> Generator[simpy.Event, Any, None]:
            yield self.env.timeout(t)
            try:
                result = yield from self.server.call(op or self.op(key))
                self.seen[key] = (str(result), self.env.now)
            except Exception as exc:
                self.seen[key] = (type(exc).__name__, self.env.now)

        return self.env.process(caller())


def failures(server: ApiServer) -> dict[str, int]:
    return {str(k): v for k, v in server.failed.items() if v}


def assert_accounted(server: ApiServer) -> None:
    assert server.calls == server.completed + sum(server.failed.values())


def test_a_call_returns_the_op_result_after_its_service_time() -> None:
    env = simpy.Environment()
    server = make(env, service=2.0)

    def caller() -> Generator[simpy.Event, Any, str]:
        return (yield from server.call(lambda: "done"))

    proc = env.process(caller())
    assert env.run(proc) == "done"
    assert env.now == 2.0
    assert (server.calls, server.completed, server.applied, server.busy_time) == (1, 1, 1, 2.0)
    assert server.rate_limit_per_min is None
    # The other usage form: a process per call.
    assert env.run(env.process(server.call(lambda: 7))) == 7
    assert_accounted(server)


def test_fifo_queue_and_records() -> None:
    env = simpy.Environment()
    server = make(env, service=1.0, workers=2)
    client = Client(env, server)
    for i in range(5):
        client.at(0.0, f"c{i}")
    env.run()
    r = server.records()
    assert r.arrival.tolist() == [0.0] * 5
    assert r.start.tolist() == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert r.end.tolist() == [1.0, 1.0, 2.0, 2.0, 3.0]
    assert [k for k, _ in client.applied] == ["c0", "c1", "c2", "c3", "c4"]
    assert server.busy_time == 5.0
    assert server.records().start.dtype == np.float64


def test_outage_refuses_calls_at_arrival_and_recovers() -> None:
    env = simpy.Environment()
    server = make(env)
    client = Client(env, server)
    server.set_down(True)
    client.at(1.0, "during")

    def recover() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(5.0)
        server.set_down(False)

    env.process(recover())
    client.at(6.0, "after")
    env.run()
    assert client.seen == {"during": ("Unavailable", 1.0), "after": ("ok:after", 7.0)}
    assert client.applied == [("after", 7.0)]
    assert failures(server) == {"unavailable": 1}
    assert_accounted(server)


def test_an_outage_drops_queued_calls_but_lets_calls_in_service_finish() -> None:
    env = simpy.Environment()
    server = make(env, service=4.0)
    client = Client(env, server)
    client.at(0.0, "in_service")
    client.at(1.0, "queued")

    def outage() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(2.0)
        server.set_down(True)

    env.process(outage())
    env.run()
    assert client.seen == {"in_service": ("ok:in_service", 4.0), "queued": ("Unavailable", 4.0)}
    assert failures(server) == {"unavailable": 1}


def test_maintenance_windows() -> None:
    env = simpy.Environment()
    # Two overlapping windows merge into [10, 25); a third at [40, 45).
    server = make(env, service=0.5, maintenance=[(40.0, 5.0), (10.0, 10.0), (15.0, 10.0)])
    assert server.maintenance_windows == [(10.0, 25.0), (40.0, 45.0)]
    client = Client(env, server)
    times = {"before": 9.0, "start": 10.0, "overlap": 22.0, "end": 25.0, "second": 44.9,
             "last": 45.0}
    for key, t in times.items():
        client.at(t, key)
    probes: list[tuple[float, bool]] = []

    def probe() -> Generator[simpy.Event, Any, None]:
        for t in (5.0, 10.0, 24.9, 25.0, 40.0, 50.0):
            yield env.timeout(t - env.now)
            probes.append((t, server.down))

    env.process(probe())
    env.run()
    outcome = {k: v[0] for k, v in client.seen.items()}
    assert outcome == {"before": "ok:before", "start": "Unavailable", "overlap": "Unavailable",
                       "end": "ok:end", "second": "Unavailable", "last": "ok:last"}
    assert probes == [(5.0, False), (10.0, True), (24.9, True), (25.0, False), (40.0, True),
                      (50.0, False)]


def test_rate_limit_is_a_sliding_minute() -> None:
    env = simpy.Environment()
    server = make(env, service=0.1, workers=10, rate_limit_per_min=3)
    client = Client(env, server)
    for key, t in [("a", 0.0), ("b", 30.0), ("c", 59.0), ("d", 59.5), ("e", 60.0), ("f", 61.0),
                   ("g", 89.9), ("h", 90.0)]:
        client.at(t, key)
    env.run()
    outcome = {k: v[0].split(":")[0] for k, v in client.seen.items()}
    # d: a, b, c admitted in (-0.5, 59.5]. e: a left the window at 60. f: b, c, e are in
    # (1, 61]. g: still b, c, e. h: b left at 90. A fixed window would have let d through.
    assert outcome == {"a": "ok", "b": "ok", "c": "ok", "d": "RateLimited", "e": "ok",
                       "f": "RateLimited", "g": "RateLimited", "h": "ok"}
    assert failures(server) == {"rate_limited": 3}


def test_rate_limited_error_says_when_to_retry() -> None:
    env = simpy.Environment()
    server = make(env, rate_limit_per_min=1)
    assert server.rate_limit_per_min == 1
    env.run(env.process(server.call(lambda: None)))
    env.run(until=20.0)
    with pytest.raises(RateLimited) as info:
        env.run(env.process(server.call(lambda: None)))
    assert info.value.retry_after_s == pytest.approx(40.0)
    assert info.value.status_hint == 429 and info.value.retryable


def test_timeout_is_ambiguous_the_op_is_applied_after_the_caller_gave_up() -> None:
    env = simpy.Environment()
    server = make(env, service=5.0, timeout_s=2.0)
    client = Client(env, server)
    client.at(0.0, "slow")
    env.run()
    assert client.seen == {"slow": ("CallTimeout", 2.0)}
    assert client.applied == [("slow", 5.0)]  # the system applied it anyway, later
    assert (server.applied, server.applied_unacknowledged, server.completed) == (1, 1, 0)
    assert failures(server) == {"timeout": 1}
    assert_accounted(server)


def test_a_call_timing_out_in_the_queue_is_still_served_later() -> None:
    env = simpy.Environment()
    server = make(env, service=3.0, timeout_s=4.0)
    client = Client(env, server)
    client.at(0.0, "first")
    client.at(0.5, "second")  # waits 2.5 s, served 3.0-6.0, deadline 4.5
    env.run()
    assert client.seen == {"first": ("ok:first", 3.0), "second": ("CallTimeout", 4.5)}
    assert client.applied == [("first", 3.0), ("second", 6.0)]
    assert server.applied_unacknowledged == 1
    # The server does not know the caller left: the worker was busy all along.
    assert server.busy_time == 6.0


def test_a_reply_by_the_deadline_is_a_success() -> None:
    env = simpy.Environment()
    server = make(env, service=2.0, timeout_s=2.0)
    client = Client(env, server)
    client.at(0.0, "on_time")
    env.run()
    assert client.seen == {"on_time": ("ok:on_time", 2.0)}
    assert server.applied_unacknowledged == 0


def test_errors_before_the_deadline_reach_the_caller() -> None:
    env = simpy.Environment()
    server = make(env, service=1.0, timeout_s=5.0)
    client = Client(env, server)

    def invalid() -> None:
        raise ValueError("unknown SKU")

    client.at(0.0, "bad", invalid)
    env.run()
    assert client.seen == {"bad": ("ValueError", 1.0)}
    assert failures(server) == {"rejected": 1}


def test_an_abandoned_call_that_fails_later_does_not_crash_the_run() -> None:
    env = simpy.Environment()
    server = make(env, service=5.0, timeout_s=1.0)
    client = Client(env, server)

    def invalid() -> None:
        raise ValueError("unknown SKU")

    client.at(0.0, "bad", invalid)
    client.at(0.0, "good")
    env.run()
    assert client.seen == {"bad": ("CallTimeout", 1.0), "good": ("CallTimeout", 1.0)}
    assert client.applied == [("good", 10.0)]
    assert server.applied_unacknowledged == 1
    assert failures(server) == {"timeout": 2}


def test_failure_probability() -> None:
    env = simpy.Environment()
    server = make(env, service=0.01, failure_probability=1.0)
    client = Client(env, server)
    client.at(0.0, "x")
    env.run()
    assert client.seen == {"x": ("ServerError", 0.01)}
    assert client.applied == []
    assert server.applied == 0 and len(server.records().end) == 1  # it was served

    env = simpy.Environment()
    server = make(env, service=0.01, workers=50, failure_probability=0.3)
    client = Client(env, server)
    for i in range(4000):
        client.at(i * 0.001, str(i))
    env.run()
    # Binomial(4000, 0.3): sd 29 calls, 0.7%; tolerance 2.5% is over 3 sd.
    assert server.failed[FailureReason.SERVER_ERROR] / 4000 == pytest.approx(0.3, abs=0.025)
    assert server.applied == len(client.applied) == server.completed
    assert_accounted(server)

    # A fault injector can switch failures on and off during a run.
    env = simpy.Environment()
    server = make(env, service=1.0)
    client = Client(env, server)
    client.at(0.0, "before")
    client.at(10.0, "during")
    client.at(20.0, "after")

    def flaky() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(5.0)
        server.failure_probability = 1.0
        yield env.timeout(10.0)
        server.failure_probability = 0.0

    env.process(flaky())
    env.run()
    assert [k for k, _ in client.applied] == ["before", "after"]
    assert client.seen["during"] == ("ServerError", 11.0)


def test_a_failure_free_server_does_not_consume_its_rng() -> None:
    env = simpy.Environment()
    rng = Streams(1).get("erp")
    before = rng.bit_generator.state
    server = ApiServer(env, "erp", 1, constant(1.0), rng)
    env.run(env.process(server.call(lambda: None)))
    assert rng.bit_generator.state == before


def test_degrade_multiplies_service_times_of_later_calls() -> None:
    env = simpy.Environment()
    server = make(env, service=2.0, workers=3)
    client = Client(env, server)
    client.at(0.0, "normal")

    def fault() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(1.0)
        server.degrade(3.0)
        yield env.timeout(10.0)
        server.degrade(1.0)

    env.process(fault())
    client.at(1.0, "slow")
    client.at(20.0, "restored")
    env.run()
    r = server.records()
    assert (r.end - r.start).tolist() == [2.0, 6.0, 2.0]
    assert server.degradation == 1.0
    with pytest.raises(ValueError, match="factor"):
        server.degrade(0.0)


def caught(call: Generator[simpy.Event, Any, Any]) -> Generator[simpy.Event, Any, str]:
    try:
        yield from call
    except simpy.Interrupt:
        return "Interrupt"
    return "ok"


def test_interrupting_an_inline_caller_withdraws_its_call() -> None:
    env = simpy.Environment()
    server = make(env, service=5.0)
    client = Client(env, server)
    in_service = env.process(caught(server.call(client.op("in_service"))))
    client.at(0.5, "next")
    queued = client.at(0.5, "queued")
    client.at(0.5, "last")

    def crash() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(1.0)
        in_service.interrupt("core crashed")
        queued.interrupt("core crashed")

    env.process(crash())
    env.run()
    # The call in service was cut short at t=1 and never applied; the queued one vanished.
    assert client.applied == [("next", 6.0), ("last", 11.0)]
    assert in_service.value == "Interrupt"
    assert failures(server) == {"interrupted": 2}
    assert client.seen["queued"][0] == "Interrupt"
    assert_accounted(server)


def test_interrupting_a_caller_with_a_timeout_leaves_the_server_side_running() -> None:
    env = simpy.Environment()
    server = make(env, service=5.0, timeout_s=10.0)
    client = Client(env, server)
    waiting = env.process(caught(server.call(client.op("x"))))

    def crash() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(1.0)
        waiting.interrupt("core crashed")

    env.process(crash())
    env.run()
    assert client.applied == [("x", 5.0)]
    assert server.applied_unacknowledged == 1
    assert failures(server) == {"interrupted": 1}


def test_queue_state_is_observable() -> None:
    env = simpy.Environment()
    server = make(env, service=10.0, workers=2)
    client = Client(env, server)
    for i in range(5):
        client.at(0.0, str(i))
    env.run(until=1.0)
    assert (server.in_service, server.queue_length) == (2, 3)


def test_errors_carry_system_time_and_status() -> None:
    err = Unavailable("erp", 12.5)
    assert isinstance(err, ApiError) and err.retryable and err.status_hint == 503
    assert str(err) == "erp: unavailable at t=12.500s"
    assert CallTimeout("wms", 1.0).status_hint == 504
    assert ServerError("carrier", 1.0).reason is FailureReason.SERVER_ERROR


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"workers": 0}, "workers"),
        ({"rate_limit_per_min": 0}, "rate_limit_per_min"),
        ({"failure_probability": 1.5}, "failure_probability"),
        ({"timeout_s": 0.0}, "timeout_s"),
        ({"maintenance": [(10.0, 0.0)]}, "maintenance"),
        ({"maintenance": [(-1.0, 5.0)]}, "maintenance"),
    ],
)
def test_bad_configuration_is_refused(kw: dict[str, Any], fragment: str) -> None:
    env = simpy.Environment()
    with pytest.raises(ValueError, match=fragment):
        make(env, **kw)


def test_systems_package_exports_a_sorted_public_api() -> None:
    import pkgutil

    import sim.systems

    exported = sim.systems.__all__
    assert exported == sorted(exported)
    public = {n for n in vars(sim.systems) if not n.startswith("_")}
    submodules = {m.name for m in pkgutil.iter_modules(sim.systems.__path__)}
    assert set(exported) == public - submodules - {"annotations"}
