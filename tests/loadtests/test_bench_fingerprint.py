"""The outputs' digest: the same run gives the same digest, any change in what the twin
computes gives another (the whole sweep over the scenarios takes minutes: not run here)."""

from __future__ import annotations

import dataclasses

import numpy as np

from loadtests.bench.fingerprint import differences, digest
from loadtests.bench.twin import scenario
from sim.twin import run


def test_a_run_has_one_digest_and_a_change_in_any_output_moves_it() -> None:
    sc = scenario(0.1, 10_000)
    a, b = run(sc), run(sc)
    assert digest(a) == digest(b)  # their wall times differ: not part of the digest
    assert digest(run(sc.model_copy(update={"seed": 2}))) != digest(a)
    one_event_more = dataclasses.replace(a, events=a.events + 1)
    assert digest(one_event_more) != digest(a)
    name = next(iter(a.latency))
    late = a.latency[name].copy()
    late[0] = np.nextafter(late[0], np.inf)  # one sample, one ulp later
    assert digest(dataclasses.replace(a, latency={**a.latency, name: late})) != digest(a)


def test_differences_name_every_scenario_that_moved_or_is_missing() -> None:
    this = {"scenarios/a.toml": "1", "scenarios/b.toml": "2", "bench": "3"}
    assert differences(this, dict(this)) == []
    assert differences(this, {**this, "scenarios/b.toml": "9"}) == ["scenarios/b.toml"]
    assert differences(this, {"bench": "3"}) == ["scenarios/a.toml", "scenarios/b.toml"]
