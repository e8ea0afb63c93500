from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pydantic
import pytest
import simpy

from integration_core.errors import PayloadError
from sim.distributions import Constant, Exponential
from sim.kernel import at
from sim.rng import Streams
from sim.scenario import ApiConfig, Window
from sim.systems import Endpoint, Status


def api(service: float = 1.0, workers: int = 1, **kw: Any) -> ApiConfig:
    return ApiConfig(workers=workers, service_time_s=Constant(value=service),
                     rate_limit_per_min=kw.pop("rate_limit_per_min", None), **kw)


def make(env: simpy.Environment, service: float = 1.0, workers: int = 1, *,
         record: bool = True, **kw: Any) -> Endpoint:
    return Endpoint(env, "erp", api(service, workers, **kw), Streams(1).get("api/erp"),
                    record=record)


class Client:
    """Sends requests at given times; records what the system applied and what each caller
    heard, and when."""

    def __init__(self, env: simpy.Environment, endpoint: Endpoint) -> None:
        self.env, self.endpoint = env, endpoint
        self.applied: list[tuple[str, float]] = []  # the system's state: (key, applied at)
        self.heard: dict[str, tuple[Status, Any, float]] = {}

    def op(self, key: str) -> Callable[[], str]:
        def apply() -> str:
            self.applied.append((key, self.env.now))
            return f"ok:{key}"

        return apply

    def at(self, t: float, key: str, op: Callable[[], Any] | None = None) -> None:
        at(self.env, t - self.env.now, self._send, key, op or self.op(key))

    def _send(self, key: str, op: Callable[[], Any]) -> None:
        def reply(status: Status, value: Any) -> None:
            assert key not in self.heard, f"{key} answered twice"
            self.heard[key] = (status, value, self.env.now)

        self.endpoint.request(op, reply)

    def outcomes(self) -> dict[str, tuple[str, float]]:
        return {k: (str(s), t) for k, (s, _, t) in self.heard.items()}


def refused(endpoint: Endpoint) -> dict[str, int]:
    return {str(k): v for k, v in endpoint.refused.items() if v}


def assert_accounted(endpoint: Endpoint) -> None:
    assert endpoint.in_flight == 0
    assert endpoint.calls == endpoint.served + sum(endpoint.refused.values())


def test_a_request_is_answered_with_the_op_result_after_its_service_time() -> None:
    env = simpy.Environment()
    endpoint = make(env, service=2.0)
    client = Client(env, endpoint)
    client.at(0.0, "a")
    env.run()
    assert client.heard == {"a": (Status.OK, "ok:a", 2.0)}
    assert client.applied == [("a", 2.0)]
    assert (endpoint.calls, endpoint.served, endpoint.busy_time) == (1, 1, 2.0)
    assert endpoint.rate_limit is None and endpoint.available()
    assert_accounted(endpoint)


def test_fifo_queue_and_records() -> None:
    env = simpy.Environment()
    endpoint = make(env, service=1.0, workers=2)
    client = Client(env, endpoint)
    for i in range(5):
        client.at(0.0, f"c{i}")
    env.run()
    r = endpoint.records()
    assert r.arrival.tolist() == [0.0] * 5
    assert r.start.tolist() == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert r.end.tolist() == [1.0, 1.0, 2.0, 2.0, 3.0]
    assert r.start.dtype == r.end.dtype == r.arrival.dtype == np.float64
    assert [k for k, _ in client.applied] == ["c0", "c1", "c2", "c3", "c4"]
    assert endpoint.busy_time == 5.0
    # records() returns copies: the caller cannot corrupt the columns.
    r.end[:] = -1.0
    assert endpoint.records().end.tolist() == [1.0, 1.0, 2.0, 2.0, 3.0]


def test_queue_state_is_observable() -> None:
    env = simpy.Environment()
    endpoint = make(env, service=10.0, workers=2)
    client = Client(env, endpoint)
    for i in range(5):
        client.at(0.0, str(i))
    env.run(until=1.0)
    assert (endpoint.in_service, endpoint.queue_length, endpoint.in_flight) == (2, 3, 5)


def test_outage_refuses_requests_at_arrival_and_recovers() -> None:
    env = simpy.Environment()
    endpoint = make(env)
    client = Client(env, endpoint)
    endpoint.down = True
    client.at(1.0, "during")
    at(env, 5.0, setattr, endpoint, "down", False)
    client.at(6.0, "after")
    env.run()
    assert client.outcomes() == {"during": ("unavailable", 1.0), "after": ("ok", 7.0)}
    assert client.applied == [("after", 7.0)]
    assert refused(endpoint) == {"unavailable": 1}
    assert_accounted(endpoint)


def test_going_down_loses_the_work_in_service_and_drops_the_queue() -> None:
    env = simpy.Environment()
    endpoint = make(env, service=4.0)
    client = Client(env, endpoint)
    client.at(0.0, "in_service")
    client.at(1.0, "queued")
    at(env, 2.0, setattr, endpoint, "down", True)
    at(env, 10.0, setattr, endpoint, "down", False)
    client.at(10.5, "after")
    env.run()
    # in_service ends at 4 while down: the work is lost. queued gets its turn at 4 and is
    # refused at once, without holding the worker for a service time.
    assert client.outcomes() == {"in_service": ("unavailable", 4.0), "queued": ("unavailable", 4.0),
                                 "after": ("ok", 14.5)}
    assert client.applied == [("after", 14.5)]
    r = endpoint.records()
    assert list(zip(r.start.tolist(), r.end.tolist(), strict=True)) == [(0.0, 4.0), (10.5, 14.5)]
    assert endpoint.busy_time == 8.0
    assert refused(endpoint) == {"unavailable": 2}
    assert_accounted(endpoint)


def test_only_the_state_at_the_end_of_service_counts() -> None:
    env = simpy.Environment()
    endpoint = make(env, service=4.0)
    client = Client(env, endpoint)
    client.at(0.0, "a")
    at(env, 1.0, setattr, endpoint, "down", True)
    at(env, 3.0, setattr, endpoint, "down", False)  # back up before the service ends
    env.run()
    assert client.outcomes() == {"a": ("ok", 4.0)}


def test_a_long_queue_dropped_by_an_outage_is_answered_without_recursion() -> None:
    env = simpy.Environment()
    endpoint = make(env, service=10.0)
    client = Client(env, endpoint)
    n = 5_000  # far beyond the recursion limit if each drop started the next one inline
    for i in range(n):
        client.at(0.0, str(i))
    at(env, 1.0, setattr, endpoint, "down", True)
    env.run()
    assert {(s, t) for s, t in client.outcomes().values()} == {("unavailable", 10.0)}
    assert len(client.heard) == n and client.applied == []
    assert len(endpoint.records().end) == 1  # only the call in service held a worker
    assert_accounted(endpoint)


def test_maintenance_windows() -> None:
    env = simpy.Environment()
    windows = [Window(start_h=4.0, duration_h=0.5), Window(start_h=1.0, duration_h=1.0),
               Window(start_h=1.5, duration_h=1.0)]  # [3600, 9000) once merged, [14400, 16200)
    endpoint = make(env, service=0.5, maintenance=windows)
    client = Client(env, endpoint)
    times = {"before": 3599.0, "straddling": 3599.8, "start": 3600.0, "overlap": 8000.0,
             "end": 9000.0, "second": 16199.9, "last": 16200.0}
    for key, t in times.items():
        client.at(t, key)
    probes: list[tuple[float, bool]] = []
    for t in (1800.0, 3600.0, 8999.9, 9000.0, 14400.0, 18000.0):
        at(env, t, lambda: probes.append((env.now, endpoint.available())))
    env.run()
    outcome = {k: v[0] for k, v in client.outcomes().items()}
    assert outcome == {"before": "ok", "straddling": "unavailable", "start": "unavailable",
                       "overlap": "unavailable", "end": "ok", "second": "unavailable",
                       "last": "ok"}
    assert client.heard["straddling"][2] == pytest.approx(3600.3)  # lost at the end of service
    assert probes == [(1800.0, True), (3600.0, False), (8999.9, False), (9000.0, True),
                      (14400.0, False), (18000.0, True)]
    assert not endpoint.down  # maintenance is not an outage flag


def test_rate_limit_is_a_sliding_minute_and_says_when_to_retry() -> None:
    env = simpy.Environment()
    endpoint = make(env, service=0.1, workers=10, rate_limit_per_min=3)
    assert endpoint.rate_limit == 3
    client = Client(env, endpoint)
    for key, t in [("a", 0.0), ("b", 30.0), ("c", 59.0), ("d", 59.5), ("e", 60.0), ("f", 61.0),
                   ("g", 89.9), ("h", 90.0)]:
        client.at(t, key)
    env.run()
    outcome = {k: v[0] for k, v in client.outcomes().items()}
    # d: a, b, c admitted in (-0.5, 59.5]. e: a left the window at 60. f: b, c, e are in
    # (1, 61]. g: still b, c, e. h: b left at 90 (refused f and g did not count). A fixed
    # per-minute window would have let d through.
    assert outcome == {"a": "ok", "b": "ok", "c": "ok", "d": "rate_limited", "e": "ok",
                       "f": "rate_limited", "g": "rate_limited", "h": "ok"}
    retry_after = {k: v for k, (s, v, _) in client.heard.items() if s is Status.RATE_LIMITED}
    # Seconds until the oldest admitted call leaves the window: a at 60, b at 90.
    assert retry_after == pytest.approx({"d": 0.5, "f": 29.0, "g": 0.1})
    assert refused(endpoint) == {"rate_limited": 3}
    assert_accounted(endpoint)


def test_the_sliding_window_never_admits_more_than_the_limit_in_any_minute() -> None:
    env = simpy.Environment()
    endpoint = make(env, service=0.01, workers=100, rate_limit_per_min=50)
    client = Client(env, endpoint)
    arrivals = np.cumsum(Streams(3).get("gaps").exponential(0.5, 2_000))  # 2 per second
    for i, t in enumerate(arrivals):
        client.at(float(t), str(i))
    env.run()
    admitted = np.sort(endpoint.records().arrival)
    # For every admitted call, the admitted calls in the minute ending at it: never over 50.
    in_window = np.arange(len(admitted)) - np.searchsorted(admitted, admitted - 60.0, "right") + 1
    assert in_window.max() == 50
    assert endpoint.refused[Status.RATE_LIMITED] > 0
    assert_accounted(endpoint)


def test_degrade_multiplies_service_times_of_later_calls() -> None:
    env = simpy.Environment()
    endpoint = make(env, service=2.0, workers=3)
    client = Client(env, endpoint)
    client.at(0.0, "normal")
    at(env, 1.0, endpoint.degrade, 3.0)
    client.at(1.0, "slow")
    at(env, 11.0, endpoint.degrade, 1.0)
    client.at(20.0, "restored")
    at(env, 30.0, setattr, endpoint, "slow_factor", 2.0)  # what fault injection does
    client.at(30.0, "slow_again")
    env.run()
    r = endpoint.records()
    assert (r.end - r.start).tolist() == [2.0, 6.0, 2.0, 4.0]
    assert endpoint.slow_factor == 2.0
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="slow factor"):
            endpoint.degrade(bad)


def test_failure_probability() -> None:
    env = simpy.Environment()
    endpoint = make(env, service=0.01, failure_probability=1.0)
    client = Client(env, endpoint)
    client.at(0.0, "x")
    env.run()
    assert client.outcomes() == {"x": ("server_error", 0.01)}
    assert client.applied == [] and endpoint.served == 0
    assert len(endpoint.records().end) == 1  # it was served, then failed

    env = simpy.Environment()
    endpoint = make(env, service=0.01, workers=50, failure_probability=0.3)
    client = Client(env, endpoint)
    for i in range(4000):
        client.at(i * 0.001, str(i))
    env.run()
    # Binomial(4000, 0.3): sd 29 calls, 0.7%; tolerance 2.5% is over 3 sd.
    assert endpoint.refused[Status.SERVER_ERROR] / 4000 == pytest.approx(0.3, abs=0.025)
    assert endpoint.served == len(client.applied)
    assert_accounted(endpoint)

    # Fault injection can switch failures on and off during a run.
    env = simpy.Environment()
    endpoint = make(env, service=1.0)
    client = Client(env, endpoint)
    client.at(0.0, "before")
    client.at(10.0, "during")
    client.at(20.0, "after")
    at(env, 5.0, setattr, endpoint, "failure_probability", 1.0)
    at(env, 15.0, setattr, endpoint, "failure_probability", 0.0)
    env.run()
    assert [k for k, _ in client.applied] == ["before", "after"]
    assert client.outcomes()["during"] == ("server_error", 11.0)


def rng_state(rng: np.random.Generator) -> tuple[object, int]:
    """The generator's state and how many children its seed sequence has spawned."""
    seq = rng.bit_generator.seed_seq
    assert isinstance(seq, np.random.SeedSequence)
    return rng.bit_generator.state, seq.n_children_spawned


def test_failures_leave_the_rng_alone_when_off_and_the_service_times_as_they_were() -> None:
    env = simpy.Environment()
    rng = Streams(1).get("api/erp")
    before = rng_state(rng)
    endpoint = Endpoint(env, "erp", api(1.0), rng)
    Client(env, endpoint).at(0.0, "x")
    env.run()
    assert rng_state(rng) == before

    durations = []
    for p in (0.0, 0.5):
        env = simpy.Environment()
        cfg = ApiConfig(workers=4, service_time_s=Exponential(mean=1.0), failure_probability=p)
        endpoint = Endpoint(env, "erp", cfg, Streams(1).get("api/erp"))
        client = Client(env, endpoint)
        for i in range(5_000):  # more than one block of service draws (4096)
            client.at(i * 0.5, str(i))
        env.run()
        r = endpoint.records()
        durations.append(r.end - r.start)
        assert (endpoint.refused[Status.SERVER_ERROR] > 0) == (p > 0)
    np.testing.assert_array_equal(durations[0], durations[1])


def test_a_bad_payload_is_rejected_and_a_bug_propagates() -> None:
    env = simpy.Environment()
    endpoint = make(env)
    client = Client(env, endpoint)
    error = PayloadError("sku", "unknown SKU 'X'", "X")

    def invalid() -> None:
        raise error

    client.at(0.0, "bad", invalid)
    client.at(0.0, "good")
    env.run()
    assert client.heard["bad"] == (Status.REJECTED, error, 1.0)
    assert client.outcomes()["good"] == ("ok", 2.0)
    assert refused(endpoint) == {"rejected": 1}
    assert endpoint.served == 1 and len(endpoint.records().end) == 2
    assert_accounted(endpoint)

    def bug() -> None:
        raise KeyError("not a payload problem")

    client.at(5.0, "bug", bug)
    with pytest.raises(KeyError):
        env.run()


def test_records_can_be_switched_off() -> None:
    env = simpy.Environment()
    endpoint = make(env, record=False)
    client = Client(env, endpoint)
    client.at(0.0, "a")
    env.run()
    assert client.outcomes() == {"a": ("ok", 1.0)}
    assert endpoint.busy_time == 1.0
    with pytest.raises(RuntimeError, match="record=False"):
        endpoint.records()


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_api_config_checks_failure_probability(p: float) -> None:
    with pytest.raises(pydantic.ValidationError, match="failure_probability"):
        ApiConfig(failure_probability=p)


def test_systems_package_exports_a_sorted_public_api() -> None:
    import pkgutil

    import sim.systems

    exported = sim.systems.__all__
    assert exported == sorted(exported)
    public = {n for n in vars(sim.systems) if not n.startswith("_")}
    submodules = {m.name for m in pkgutil.iter_modules(sim.systems.__path__)}
    assert set(exported) == public - submodules - {"annotations"}


def test_recurring_maintenance_answers_503_every_night_until_the_end() -> None:
    env = simpy.Environment()
    nightly = Window(start_h=2, duration_h=2, every_h=24)
    ep = Endpoint(env, "erp", api(maintenance=[nightly]), Streams(1).get("api/erp"),
                  until_s=3 * 86400)
    c = Client(env, ep)
    for day in range(4):
        c.at(day * 86400 + 2.5 * 3600, f"night{day}")
        c.at(day * 86400 + 5 * 3600, f"day{day}")
    env.run()
    status = {k: s for k, (s, _) in c.outcomes().items()}
    assert [status[f"night{d}"] for d in range(3)] == [str(Status.UNAVAILABLE)] * 3
    assert status["night3"] == str(Status.OK)  # the windows stop where the workload does
    assert all(status[f"day{d}"] == str(Status.OK) for d in range(4))
