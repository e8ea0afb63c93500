"""Closed-form queueing results the simulator is tested against.

lam is the arrival rate, mu the service rate of one worker, c the number of workers, and
a = lam / mu the offered load in Erlangs. All waits are the mean time in queue (Wq), before
service starts; the mean time in system is Wq + 1 / mu.
"""

from __future__ import annotations


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival has to wait in an M/M/c queue with offered load `a`.

    C(c, a) = c B / (c - a (1 - B)), with B the Erlang B blocking probability from the
    stable recursion B(0) = 1, B(k) = a B(k-1) / (k + a B(k-1)) (no factorials, no overflow).
    """
    if isinstance(c, bool) or not isinstance(c, int) or c < 1:
        raise ValueError(f"c must be an int >= 1, got {c!r}")
    if not 0 <= a < c:
        raise ValueError(f"offered load a must be in [0, c={c}) for a stable queue, got {a}")
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return c * b / (c - a * (1 - b))


def mmc_wait(lam: float, mu: float, c: int) -> float:
    """Mean wait in queue of M/M/c: Wq = C(c, a) / (c mu - lam)."""
    _check_rates(lam, mu)
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mm1_wait(lam: float, mu: float) -> float:
    """Mean wait in queue of M/M/1: Wq = rho / (mu - lam), rho = lam / mu."""
    _check_rates(lam, mu)
    if lam >= mu:
        raise ValueError(f"unstable queue: lam={lam} >= mu={mu}")
    return (lam / mu) / (mu - lam)


def _check_rates(lam: float, mu: float) -> None:
    if not lam >= 0 or not mu > 0:
        raise ValueError(f"need lam >= 0 and mu > 0, got lam={lam}, mu={mu}")
