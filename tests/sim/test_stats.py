"""Confidence intervals (the t quantile is ours: scipy is not a dependency), ranking claims and
replication seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim.stats import Estimate, estimate, rank, replication_seeds, t_quantile, t_two_sided

# Published two-sided 95% critical values t(0.975, df) (any statistics table).
T975 = {1: 12.7062047, 2: 4.3026527, 3: 3.1824463, 4: 2.7764451, 5: 2.5705818, 9: 2.2621572,
        10: 2.2281389, 20: 2.0859634, 29: 2.0452296, 30: 2.0422725, 60: 2.0002978,
        120: 1.9799304}


@pytest.mark.parametrize(("df", "expected"), sorted(T975.items()))
def test_t_quantile_matches_tables(df: int, expected: float) -> None:
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-7)


def test_t_quantile_other_levels_symmetry_and_normal_limit() -> None:
    assert t_quantile(0.995, 7) == pytest.approx(3.4994833, abs=5e-7)
    assert t_quantile(0.95, 12) == pytest.approx(1.7822876, abs=5e-7)
    assert t_quantile(0.025, 4) == pytest.approx(-t_quantile(0.975, 4))
    assert t_quantile(0.5, 3) == 0.0
    assert t_quantile(0.975, 100_000) == pytest.approx(1.959964, abs=1e-4)
    with pytest.raises(ValueError, match="positive integer"):
        t_two_sided(1.0, 0)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        t_quantile(1.0, 3)


def test_t_distribution_function_closed_forms() -> None:
    # df = 1 is Cauchy: P(|T| <= t) = 2 atan(t) / pi; df = 2: t / sqrt(2 + t^2).
    for t in (0.1, 1.0, 3.0, 40.0):
        assert t_two_sided(t, 1) == pytest.approx(2 * math.atan(t) / math.pi, rel=1e-12)
        assert t_two_sided(t, 2) == pytest.approx(t / math.sqrt(2 + t * t), rel=1e-12)
    assert t_two_sided(0.0, 5) == 0.0
    assert t_two_sided(math.inf, 5) == 1.0


def test_estimate_fields_and_missing_values() -> None:
    e = estimate([1.0, 2.0, 3.0, None, math.nan])
    assert (e.n, e.missing, e.mean, e.min, e.max) == (3, 2, 2.0, 1.0, 3.0)
    assert e.std == pytest.approx(1.0)
    assert e.half_width == pytest.approx(T975[2] / math.sqrt(3), rel=1e-6)
    assert (e.ci_low, e.ci_high) == pytest.approx((2 - e.half_width, 2 + e.half_width))
    one = estimate([5.0])
    assert one.mean == 5.0 and math.isnan(one.half_width) and math.isnan(one.ci_low)
    none = estimate([None, None])
    assert (none.n, none.missing) == (0, 2) and math.isnan(none.mean)


@pytest.mark.parametrize("n", [3, 5, 30])
def test_ci_covers_the_true_mean_95_percent_of_the_time(n: int) -> None:
    # 4,000 intervals: the binomial sd of the coverage is 0.0034, so +-0.015 is > 4 sd. With the
    # normal 1.96 instead of t, coverage at n = 3 would be 0.81 and this would fail.
    rng = np.random.default_rng(12345 + n)
    samples = rng.normal(10.0, 3.0, size=(4000, n))
    hits = sum(e.ci_low <= 10.0 <= e.ci_high for e in map(estimate, samples.tolist()))
    assert abs(hits / 4000 - 0.95) < 0.015


def est(mean: float, half: float, n: int = 5) -> Estimate:
    return Estimate(n, 0, mean, half, half, mean - half, mean + half, mean - half, mean + half)


def test_ranking_with_overlapping_intervals_claims_no_winner() -> None:
    r = rank({"a": est(10, 3), "b": est(12, 3), "c": est(30, 1)}, "lag_s")
    assert [e.id for e in r.entries] == ["a", "b", "c"]
    assert r.winner is None
    assert r.entries[0].overlaps == ("b",) and r.entries[2].overlaps == ()
    verdict = r.verdict({"a": "direct", "b": "hybrid"})
    assert verdict.startswith("No winner") and "b (hybrid)" in verdict


def test_ranking_with_clear_intervals_names_the_winner() -> None:
    r = rank({"a": est(10, 1), "b": est(12, 0.5), "c": est(30, 1)}, "lag_s")
    assert r.winner == "a"
    assert "clear of every other" in r.verdict()


def test_ranking_higher_is_better_and_unknowns_last() -> None:
    r = rank({"a": est(10, 1), "b": est(20, 1), "x": estimate([]), "one": estimate([15.0])},
             "slos_met", lower_is_better=False)
    assert [e.id for e in r.entries] == ["b", "one", "a", "x"]
    assert r.winner is None  # one replication has no interval: it could be anywhere
    assert rank({}, "k").winner is None and rank({"a": est(1, 1)}, "k").winner is None


def test_configurations_without_any_value_rank_last_and_do_not_block_a_winner() -> None:
    # e.g. time_to_consistency_s of a pattern that never got consistent again in any run
    r = rank({"never": estimate([None, None, None]), "a": est(10, 1), "b": est(30, 1)},
             "time_to_consistency_s")
    assert [e.id for e in r.entries] == ["a", "b", "never"]
    assert r.winner == "a" and r.entries[2].overlaps == ()
    assert "No value of time_to_consistency_s in any run of never" in r.verdict()
    gaps = rank({"a": estimate([1.0, 2.0, None]), "b": estimate([1.5, 2.5])}, "k")
    assert gaps.winner is None and "a: some runs had no value" in gaps.verdict()


def test_replication_seeds_are_deterministic_prefix_stable_and_distinct() -> None:
    five = replication_seeds(42, 5)
    assert five == replication_seeds(42, 5)
    assert replication_seeds(42, 3) == five[:3]  # more replications keep the earlier seeds
    assert len(set(replication_seeds(42, 1000))) == 1000
    assert not set(five) & set(replication_seeds(43, 5))
    assert all(isinstance(s, int) and 0 <= s < 2**32 for s in five)


def test_streams_from_replication_seeds_are_uncorrelated() -> None:
    draws = np.array([np.random.default_rng(s).random(20_000) for s in replication_seeds(1, 6)])
    corr = np.corrcoef(draws)
    off_diagonal = corr[~np.eye(6, dtype=bool)]
    assert np.abs(off_diagonal).max() < 0.03  # sd of r for independent streams: 0.007


def test_identical_values_are_ties_sharing_a_rank_not_overlaps() -> None:
    zeros = estimate([0.0, 0.0, 0.0])
    r = rank({"a": zeros, "b": estimate([0.0, 0.0, 0.0]), "c": estimate([5.0, 6.0, 7.0])}, "k")
    first, second, third = r.entries
    assert (first.rank, second.rank, third.rank) == (1, 1, 3)
    assert first.ties == ("b",) and first.overlaps == () and r.winner is None
    assert "a, b tie at 0 (the same value in every run)" in r.verdict()


def test_fewer_than_three_runs_give_no_interval_and_no_winner() -> None:
    r = rank({"a": estimate([1.0, 1.2]), "b": estimate([50.0, 51.0])}, "k")
    assert not r.entries[0].estimate.interval_known and r.winner is None
    assert "2 runs each give no confidence interval (at least 3" in r.verdict()
    three = rank({"a": estimate([1.0, 1.2, 1.1]), "b": estimate([50.0, 51.0, 50.5])}, "k")
    assert three.winner == "a"


def test_values_beyond_the_horizon_rank_last_and_all_of_them_are_certain() -> None:
    inf = float("inf")
    all_inf, some = estimate([inf, inf, inf]), estimate([1.0, inf, 2.0])
    assert all_inf.mean == inf and all_inf.ci_low == inf and all_inf.interval_known
    assert some.mean == inf and not some.interval_known and some.max == inf
    r = rank({"never": all_inf, "ok": estimate([1.0, 2.0, 1.5])}, "k")
    assert [e.id for e in r.entries] == ["ok", "never"] and r.winner == "ok"
