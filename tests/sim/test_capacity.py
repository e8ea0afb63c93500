"""Capacity search: bisection on a fake whose answer is known, its bounds and guards, and one
small real search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim import results
from sim.capacity import Capacity, capacity_search, passes
from sim.executors import SerialExecutor
from sim.stats import estimate
from tests.sim.fakes import lag_run

BASE = """
name = "{name}"
seed = 3
duration_h = 1
drain_h = 1
sample_interval_s = 120
[catalog]
skus = 50
[[warehouses]]
id = "WH1"
movements_per_hour = 300
[shop]
orders_per_hour = 0
"""


def base(tmp_path: Path, name: str = "fake", extra: str = "") -> Path:
    p = tmp_path / f"{name}.toml"
    p.write_text(BASE.format(name=name) + extra)
    return p


def search(tmp_path: Path, slo: float, **kw: Any) -> list[Capacity]:
    args: dict[str, Any] = {"lo": 500, "hi": 8000, "replications": 3, "steps": 12,
                               "guards": {}, "executor": SerialExecutor(), "run_fn": lag_run}
    args.update(kw)
    return capacity_search([base(tmp_path)], slo, **args)


def test_bisection_finds_the_known_capacity(tmp_path: Path) -> None:
    # lag = rate / 100 + noise (sd 0.5): the mean crosses 30 s at 3,000 movements per hour.
    (c,) = search(tmp_path, 30.0, criterion="mean")
    assert c.capacity is not None and c.missed_at is not None
    assert 2950 <= c.capacity < c.missed_at <= 3050
    assert c.missed_at - c.capacity <= 2  # twelve halvings of 7,500 reach the resolution (1)
    assert len(c.probes) <= 2 + 12
    assert all(p.passed == (p.estimate.mean <= 30) for p in c.probes)
    # The upper CI bound is the stricter test: never a higher capacity than the mean's.
    (upper,) = search(tmp_path, 30.0)
    assert upper.capacity is not None and upper.capacity <= c.capacity


def test_range_edges_and_step_bound(tmp_path: Path) -> None:
    (low,) = search(tmp_path, 1.0)
    assert (low.capacity, low.missed_at) == (None, 500) and "already at 500" in low.verdict
    (high,) = search(tmp_path, 1000.0)
    assert (high.capacity, high.missed_at) == (8000, None)
    (short,) = search(tmp_path, 30.0, steps=2)
    assert len(short.probes) == 4 and [p.value for p in short.probes] == [500, 8000, 4250, 2375]
    assert (short.capacity, short.missed_at) == (2375, 4250)


def test_a_guard_caps_capacity_where_work_is_given_up(tmp_path: Path) -> None:
    # The fake gives updates up above 6,000/h while its lag would pass a 100 s SLO up to 10,000.
    (guarded,) = search(tmp_path, 100.0, guards={"updates_given_up": 0}, hi=9000)
    assert guarded.capacity is not None and 5990 <= guarded.capacity <= 6000
    assert not [p for p in guarded.probes if p.value > 6000 and p.passed]
    (free,) = search(tmp_path, 100.0, hi=9000)
    assert free.capacity == 9000


def test_pass_rules() -> None:
    e = estimate([10.0, 11.0, 12.0])
    assert passes(e, 12.0, "mean") and not passes(e, 12.0, "upper")
    assert not passes(e, 100.0, "upper", failed_runs=1)
    assert not passes(estimate([10.0, None]), 100.0, "mean")  # a run without samples
    assert passes(estimate([10.0]), 10.0, "upper")  # one replication: its value decides
    with pytest.raises(ValueError, match="lo < hi"):
        capacity_search([], 1.0, lo=5, hi=5)


def test_a_small_real_search(tmp_path: Path) -> None:
    # An ERP that takes 20 calls a minute saturates near 1,200 movements per hour under the
    # event-driven pattern: the lag then grows through the hour.
    f = base(tmp_path, "ed", '[patterns]\ninventory = "event_driven"\n'
                            "[erp.api]\nrate_limit_per_min = 20\n")
    out = tmp_path / "cap"
    (c,) = capacity_search([f], 60.0, lo=300, hi=3000, replications=2, steps=2,
                           executor=SerialExecutor(), out=out)
    assert c.capacity is not None and c.missed_at is not None
    assert 300 <= c.capacity < c.missed_at <= 3000
    # Default criterion: the interval's upper bound decides (wide with two replications).
    for p in c.probes:
        assert p.passed == (p.estimate.ci_high <= 60), p
    assert max(p.estimate.mean for p in c.probes) > 60  # it does saturate in range
    tables = results.load(out)
    assert set(tables) == {"runs", "probes", "capacity"}
    assert len(tables["runs"]) == 2 * len(c.probes) and tables["runs"]["ok"].all()
    assert tables["capacity"]["capacity"].tolist() == [c.capacity]
    assert "# Capacity" in (out / "report.md").read_text()
