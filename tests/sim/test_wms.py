"""The WMS twin's movement stream: rates shaped by daily and weekly profiles."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from sim.scenario import Scenario, WarehouseConfig
from sim.systems.wms import MovementDraws, WmsState, movement_stream


def times(cfg: WarehouseConfig, hours: float, seed: int = 5) -> np.ndarray:
    env = simpy.Environment()
    wms = WmsState(50, [cfg.id], 10**9)  # never runs out: every movement is applied
    out: list[float] = []
    draws = MovementDraws(cfg, 50, 1.1, np.random.default_rng(seed))
    movement_stream(env, wms, 0, draws, lambda r, k, d: out.append(env.now), hours * 3600)
    env.run()
    return np.array(out)


def test_daily_profile_puts_the_movements_in_the_shifts() -> None:
    daily = [0.0] * 6 + [3.0] * 12 + [1.0] * 6  # nothing at night, busy by day
    t = times(WarehouseConfig(id="DC", movements_per_hour=600, daily_profile=daily), 24 * 7)
    hour = (t // 3600 % 24).astype(int)
    per_hour = np.bincount(hour, minlength=24) / 7
    mean = 600 * 24 / sum(daily)  # weight 1 is the mean rate
    assert per_hour[:6].sum() == 0
    assert per_hour[6:18].mean() == pytest.approx(3 * mean, rel=0.08)
    assert per_hour[18:].mean() == pytest.approx(mean, rel=0.12)
    # The configured rate is the mean over the day.
    assert len(t) / (24 * 7) == pytest.approx(600, rel=0.05)


def test_weekly_profile_and_peak_multiplier() -> None:
    weekly = [1.0] * 6 + [0.0]  # closed on Sunday (the run starts on a Monday)
    t = times(WarehouseConfig(id="DC", movements_per_hour=300, weekly_profile=weekly,
                              peak_multiplier=2.0), 24 * 14)
    day = (t // 86400 % 7).astype(int)
    assert np.count_nonzero(day == 6) == 0
    assert len(t) / (24 * 14) == pytest.approx(600, rel=0.05)


def test_a_flat_profile_draws_what_it_always_drew() -> None:
    # Thinning draws an extra uniform per movement only when shaped, so scenarios without a
    # profile keep their traffic (common random numbers across versions).
    flat = times(WarehouseConfig(id="DC", movements_per_hour=400), 10)
    assert np.array_equal(flat, times(WarehouseConfig(id="DC", movements_per_hour=400,
                                                      daily_profile=[2.0] * 24), 10))


@pytest.mark.parametrize("bad", [[1.0] * 23, [-1.0] + [1.0] * 23, [0.0] * 24])
def test_bad_profiles_are_refused(bad: list[float]) -> None:
    with pytest.raises(ValueError, match="profile"):
        Scenario.model_validate({"name": "x", "warehouses": [{"id": "DC",
                                                              "daily_profile": bad}]})
