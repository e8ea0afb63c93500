from __future__ import annotations

from collections.abc import Callable
from math import factorial

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.theory import erlang_c, mm1_wait, mmc_wait


@pytest.mark.parametrize(
    ("c", "a", "expected"),
    [
        # M/M/2 at rho = 0.5: P(wait) = 2 rho^2 / (1 + rho) = 1/3.
        (2, 1.0, 1 / 3),
        # Erlang C table, 10 Erlangs offered (call-centre staffing examples).
        (11, 10.0, 0.6821),
        (12, 10.0, 0.4494),
        (13, 10.0, 0.2853),
        (14, 10.0, 0.1741),
    ],
)
def test_erlang_c_textbook_values(c: int, a: float, expected: float) -> None:
    assert erlang_c(c, a) == pytest.approx(expected, abs=1e-4)


def direct_erlang_c(c: int, a: float) -> float:
    queued = a**c / factorial(c) * c / (c - a)
    return queued / (sum(a**k / factorial(k) for k in range(c)) + queued)


@given(st.integers(1, 40), st.floats(0.0, 0.999))
def test_recursion_matches_the_factorial_formula(c: int, load: float) -> None:
    a = load * c
    assert erlang_c(c, a) == pytest.approx(direct_erlang_c(c, a), rel=1e-9, abs=1e-12)


def test_erlang_c_stays_finite_for_large_pools() -> None:
    # The factorial formula overflows a float at c = 171; the recursion does not.
    p = erlang_c(500, 480.0)
    assert 0 < p < 1


def test_single_server_waits_with_probability_rho() -> None:
    assert erlang_c(1, 0.7) == pytest.approx(0.7)


def test_mm1_wait() -> None:
    # lam = 2/h, mu = 3/h: rho = 2/3, Wq = rho / (mu - lam) = 2/3 h.
    assert mm1_wait(2.0, 3.0) == pytest.approx(2 / 3)
    assert mm1_wait(0.0, 3.0) == 0.0
    assert mmc_wait(2.0, 3.0, 1) == pytest.approx(mm1_wait(2.0, 3.0))


def test_mmc_wait() -> None:
    # M/M/2, lam = 1, mu = 1: C = 1/3, Wq = C / (2 - 1) = 1/3.
    assert mmc_wait(1.0, 1.0, 2) == pytest.approx(1 / 3)
    # More workers at the same load per worker wait less.
    assert mmc_wait(2.8, 1.0, 4) < mmc_wait(0.7, 1.0, 1)


@pytest.mark.parametrize(
    "call",
    [
        lambda: mm1_wait(3.0, 3.0),
        lambda: mmc_wait(4.0, 1.0, 4),
        lambda: erlang_c(0, 0.5),
        lambda: erlang_c(2, -1.0),
        lambda: mmc_wait(1.0, 0.0, 2),
        lambda: mm1_wait(-1.0, 1.0),
    ],
)
def test_unstable_or_invalid_queues_are_refused(call: Callable[[], float]) -> None:
    with pytest.raises(ValueError):
        call()
