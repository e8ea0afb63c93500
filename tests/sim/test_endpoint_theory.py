"""The endpoint configured as a plain queue reproduces queueing theory.

Poisson arrivals (exponential gaps from the "arrivals" stream, scheduled with `at`, as the twin
does), exponential service (the endpoint's own stream, "service"), c workers, no faults, no rate
limit. Each run serves N = 60,000 customers from an empty system; the first 5% are dropped as
warm-up. For M/M/1 at rho = 0.7 and M/M/3 at rho = 0.7, on seeds 0-4:

- mean wait in queue Wq: the mean over the 5 seeds is within 5% of theory, and every seed
  within 15%. Over 20 seeds the per-seed relative error has sd 3.3% (M/M/1) and 4.4% (M/M/3),
  so these bounds sit at about 2.5-3.4 standard errors: a wrong model fails them, noise should
  not;
- probability of waiting: within 0.02 (absolute) of Erlang C, mean over seeds;
- utilisation (busy time / (c x span)): within 2% of rho in every run;
- Little's law on the records: the time-average number in system L over a window, rebuilt from
  the records by clipping each stay to the window (not derived from W), matches
  lambda_observed x W within 0.2% in every run (measured: under 0.01%).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import simpy

from sim.distributions import Exponential, sampler
from sim.kernel import at
from sim.rng import Streams
from sim.scenario import ApiConfig
from sim.systems import Endpoint, ServiceRecords, Status
from sim.theory import erlang_c, mm1_wait, mmc_wait

SEEDS = range(5)
N = 60_000
WARMUP = N // 20
MM1 = (0.7, 1.0, 1)  # lam, mu, c
MM3 = (2.1, 1.0, 3)


class Run:
    def __init__(self, records: ServiceRecords, busy_time: float, workers: int) -> None:
        order = np.argsort(records.arrival, kind="stable")  # records come in order of end
        self.arrival = records.arrival[order]
        self.start = records.start[order]
        self.end = records.end[order]
        self.busy_time = busy_time
        self.workers = workers

    @property
    def waits(self) -> npt.NDArray[np.float64]:
        return (self.start - self.arrival)[WARMUP:]


def nothing() -> None:
    return None


def queue(env: simpy.Environment, streams: Streams, mu: float, c: int) -> Endpoint:
    cfg = ApiConfig(workers=c, service_time_s=Exponential(mean=1 / mu), rate_limit_per_min=None)
    return Endpoint(env, "queue", cfg, streams.get("service"))


def poisson_arrivals(
    env: simpy.Environment, endpoint: Endpoint, lam: float, n: int, streams: Streams
) -> Counter[Status]:
    """Schedule n Poisson arrivals; the returned counter fills with the replies."""
    gap = sampler(Exponential(mean=1 / lam), streams.get("arrivals"))
    replies: Counter[Status] = Counter()
    left = n

    def reply(status: Status, _value: object) -> None:
        replies[status] += 1

    def arrive() -> None:
        nonlocal left
        endpoint.request(nothing, reply)
        left -= 1
        if left:
            at(env, gap(), arrive)

    at(env, gap(), arrive)
    return replies


@cache
def simulate(seed: int, lam: float, mu: float, c: int) -> Run:
    env = simpy.Environment()
    streams = Streams(seed)
    endpoint = queue(env, streams, mu, c)
    replies = poisson_arrivals(env, endpoint, lam, N, streams)
    env.run()
    assert replies == {Status.OK: N}
    assert endpoint.served == endpoint.calls == N and endpoint.in_flight == 0
    return Run(endpoint.records(), endpoint.busy_time, c)


def relative_errors(config: tuple[float, float, int], theory: float) -> npt.NDArray[np.float64]:
    lam, mu, c = config
    return np.array([simulate(s, lam, mu, c).waits.mean() / theory - 1 for s in SEEDS])


def test_mm1_mean_wait_in_queue() -> None:
    lam, mu, _ = MM1
    err = relative_errors(MM1, mm1_wait(lam, mu))
    assert abs(err.mean()) < 0.05, err
    assert np.abs(err).max() < 0.15, err


def test_mmc_mean_wait_in_queue_matches_erlang_c() -> None:
    lam, mu, c = MM3
    err = relative_errors(MM3, mmc_wait(lam, mu, c))
    assert abs(err.mean()) < 0.05, err
    assert np.abs(err).max() < 0.15, err


@pytest.mark.parametrize("config", [MM1, MM3], ids=["M/M/1", "M/M/3"])
def test_probability_of_waiting_and_utilisation(config: tuple[float, float, int]) -> None:
    lam, mu, c = config
    runs = [simulate(s, lam, mu, c) for s in SEEDS]
    p_wait = np.mean([(r.waits > 0).mean() for r in runs])
    assert p_wait == pytest.approx(erlang_c(c, lam / mu), abs=0.02)
    for r in runs:
        utilisation = r.busy_time / (r.workers * (r.end.max() - r.arrival[0]))
        assert utilisation == pytest.approx(lam / (c * mu), rel=0.02)


def littles_law(run: Run) -> tuple[float, float]:
    """L from the records, and lambda x W, over a window that excludes warm-up and drain."""
    t0, t1 = run.arrival[WARMUP], run.arrival[-WARMUP]
    # Integral of N(t) over [t0, t1] = the total time each customer spent in it, clipped.
    inside = np.clip(np.minimum(run.end, t1) - np.maximum(run.arrival, t0), 0.0, None)
    time_average_l = inside.sum() / (t1 - t0)
    arrived = (run.arrival >= t0) & (run.arrival < t1)
    lam_observed = arrived.sum() / (t1 - t0)
    w = (run.end - run.arrival)[arrived].mean()
    return float(time_average_l), float(lam_observed * w)


@pytest.mark.parametrize("config", [MM1, MM3], ids=["M/M/1", "M/M/3"])
def test_littles_law_holds_on_the_records(config: tuple[float, float, int]) -> None:
    lam, mu, c = config
    for seed in SEEDS:
        l_records, lam_w = littles_law(simulate(seed, lam, mu, c))
        assert l_records == pytest.approx(lam_w, rel=0.002), seed


def test_records_agree_with_the_live_queue() -> None:
    """The number in system sampled during the run equals the one rebuilt from the records."""
    env = simpy.Environment()
    streams = Streams(11)
    lam, mu, c = MM3
    endpoint = queue(env, streams, mu, c)
    n = 5_000
    replies = poisson_arrivals(env, endpoint, lam, n, streams)
    samples: list[tuple[float, int]] = []

    def monitor() -> Generator[simpy.Event, Any, None]:
        while endpoint.calls < n:
            yield env.timeout(0.37)
            samples.append((env.now, endpoint.queue_length + endpoint.in_service))

    env.process(monitor())
    env.run()  # drains: every call ends up in the records
    assert replies == {Status.OK: n}
    r = endpoint.records()
    times = np.array([t for t, _ in samples])
    live = np.array([k for _, k in samples])
    rebuilt = np.searchsorted(np.sort(r.arrival), times, "right") - np.searchsorted(
        np.sort(r.end), times, "right"
    )
    assert len(samples) > 5_000 and live.max() > c  # the queue did form
    assert np.array_equal(live, rebuilt)
    assert endpoint.in_flight == 0
