"""The partner fault switch: what each mode decides, deterministically per seed."""

from __future__ import annotations

from collections import Counter

from integration_core.service.partners import Fault
from sim.live import FaultSwitch, Verdict


def decisions(switch: FaultSwitch, n: int) -> Counter[Verdict]:
    return Counter(switch.decide() for _ in range(n))


def test_up_lets_everything_through_and_down_refuses_everything() -> None:
    s = FaultSwitch("erp")
    assert decisions(s, 50) == {Verdict.OK: 50}
    s.set(Fault(mode="down"))
    assert decisions(s, 20) == {Verdict.REFUSE: 20}
    assert (s.calls, s.refused, s.lost_answers) == (70, 20, 0)


def test_slow_delays_without_failing() -> None:
    s = FaultSwitch("wms")
    assert s.delay_s() == 0.0
    s.set(Fault(mode="slow", latency_s=0.25))
    assert s.delay_s() == 0.25
    assert decisions(s, 30) == {Verdict.OK: 30}


def test_flaky_fails_its_share_half_of_it_after_the_work() -> None:
    s = FaultSwitch("erp", seed=7)
    s.set(Fault(mode="flaky", failure_rate=0.4))
    got = decisions(s, 10_000)
    failed = got[Verdict.REFUSE] + got[Verdict.LOSE_ANSWER]
    assert 3_700 < failed < 4_300  # binomial(10k, 0.4): sd about 49
    assert 0.4 < got[Verdict.LOSE_ANSWER] / failed < 0.6
    assert s.state().lost_answers == got[Verdict.LOSE_ANSWER]


def test_the_same_seed_gives_the_same_decisions() -> None:
    def run(seed: int) -> list[Verdict]:
        s = FaultSwitch("erp", seed=seed)
        s.set(Fault(mode="flaky", failure_rate=0.5))
        return [s.decide() for _ in range(200)]

    assert run(1) == run(1)
    assert run(1) != run(2)
