"""Confidence intervals over replications, and a ranking that claims no winner it cannot back.

The Student t quantile is computed here (scipy is not a dependency): the two-sided t
distribution function for an integer number of degrees of freedom has an exact finite series
(Abramowitz & Stegun 26.7.3), and the quantile is found by bisection on it to 1e-12. Degrees of
freedom in a replication study are always whole numbers (n - 1), so nothing else is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def t_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's T with `df` degrees of freedom (t >= 0), exact."""
    if df < 1 or int(df) != df:
        raise ValueError(f"df must be a positive integer, got {df!r}")
    if t <= 0:
        return 0.0
    if math.isinf(t):
        return 1.0
    theta = math.atan(t / math.sqrt(df))
    s, c2 = math.sin(theta), math.cos(theta) ** 2
    if df % 2 == 0:
        # sin(theta) * (1 + 1/2 c^2 + (1*3)/(2*4) c^4 + ... up to c^(df-2))
        term, total = 1.0, 1.0
        for k in range(1, df // 2):
            term *= c2 * (2 * k - 1) / (2 * k)
            total += term
        return min(1.0, s * total)
    # (2/pi) * (theta + sin(theta) * (cos + 2/3 cos^3 + (2*4)/(3*5) cos^5 + ... up to cos^(df-2)))
    if df == 1:
        return 2 * theta / math.pi
    c = math.cos(theta)
    term = total = c
    for k in range(1, (df - 1) // 2):
        term *= c2 * (2 * k) / (2 * k + 1)
        total += term
    return min(1.0, 2 / math.pi * (theta + s * total))


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with `df` (integer) degrees of freedom."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p!r}")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1 - p, df)
    target = 2 * p - 1  # P(|T| <= q) for the upper quantile q
    lo, hi = 0.0, 1.0
    while t_two_sided(hi, df) < target:
        lo, hi = hi, hi * 2
    for _ in range(200):
        mid = (lo + hi) / 2
        if t_two_sided(mid, df) < target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return (lo + hi) / 2


MIN_INTERVAL_N = 3
"""Fewest values whose confidence interval is printed and may back a winner."""


@dataclass(frozen=True)
class Estimate:
    """Mean of replications with a Student-t confidence interval and the spread.

    `n` counts the values used; `missing` the runs whose KPI was undefined (None/NaN: a flow
    with no samples, consistency never reached) and so left out. With n < 2 the interval is
    unknown (NaN)."""

    n: int
    missing: int
    mean: float
    std: float
    half_width: float
    ci_low: float
    ci_high: float
    min: float
    max: float
    level: float = 0.95

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def overlaps(self, other: Estimate) -> bool:
        """Whether the two intervals share a point. Without any value (n = 0) there is nothing
        to overlap; with one value the interval is unknown, so it may overlap anything."""
        if self.n == 0 or other.n == 0:
            return False
        if any(math.isnan(v) for v in (self.ci_low, self.ci_high, other.ci_low, other.ci_high)):
            return True
        return self.ci_low <= other.ci_high and other.ci_low <= self.ci_high

    def identical(self, other: Estimate) -> bool:
        """Whether both are one value repeated, the same value: a tie, not an overlap."""
        return (self.n > 0 and other.n > 0 and self.min == self.max == other.min == other.max)

    @property
    def interval_known(self) -> bool:
        """Enough values for an interval worth printing (fewer than 3 give a t interval so wide
        it says nothing, and one read as evidence would mislead)."""
        return self.n >= MIN_INTERVAL_N and not math.isnan(self.half_width)


def estimate(values: Iterable[float | None], level: float = 0.95) -> Estimate:
    """Mean, sample standard deviation, t interval at `level`, min and max of `values`."""
    raw = [math.nan if v is None else float(v) for v in values]
    x = np.array([v for v in raw if not math.isnan(v)], dtype=float)
    n, missing = len(x), len(raw) - len(x)
    nan = math.nan
    if n == 0:
        return Estimate(0, missing, nan, nan, nan, nan, nan, nan, nan, level)
    if np.isinf(x).any():
        # Values beyond the run's horizon (a percentile on work that never finished): all of
        # them so, and the mean is "> horizon" for sure; only some, and no interval is known.
        if np.isinf(x).all():
            inf = math.inf
            return Estimate(n, missing, inf, 0.0, 0.0, inf, inf, inf, inf, level)
        return Estimate(n, missing, math.inf, nan, nan, nan, nan, float(x.min()), math.inf,
                        level)
    mean = float(x.mean())
    if n == 1:
        return Estimate(1, missing, mean, nan, nan, nan, nan, mean, mean, level)
    std = float(x.std(ddof=1))
    half = t_quantile(0.5 + level / 2, n - 1) * std / math.sqrt(n)
    return Estimate(n, missing, mean, std, half, mean - half, mean + half,
                    float(x.min()), float(x.max()), level)


@dataclass(frozen=True)
class Ranked:
    """One entry of a ranking: `overlaps` lists the ids whose interval shares a point, `ties`
    those with the identical value in every run (they share the rank)."""

    rank: int
    id: str
    estimate: Estimate
    overlaps: tuple[str, ...]
    ties: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ranking:
    kpi: str
    lower_is_better: bool
    entries: tuple[Ranked, ...]

    @property
    def winner(self) -> str | None:
        """The first entry, if its interval is clear of every other one; else no winner.
        Entries without any value (the KPI undefined in all their runs) rank last and cannot
        tie; the first must have a real interval (n >= MIN_INTERVAL_N) and no tie."""
        if len(self.entries) < 2:
            return None
        first = self.entries[0]
        if not first.estimate.interval_known or first.overlaps or first.ties:
            return None
        return first.id

    def verdict(self, names: dict[str, str] | None = None) -> str:
        """One sentence on what the ranking can claim."""
        def name(i: str) -> str:
            return f"{i} ({names[i]})" if names and i in names else i

        if not self.entries:
            return "Nothing to rank."
        better = "lowest" if self.lower_is_better else "highest"
        first = self.entries[0]
        if len(self.entries) == 1:
            return f"Only one configuration: {name(first.id)}."
        empty = [e.id for e in self.entries if e.estimate.n == 0]
        gaps = [e.id for e in self.entries if e.estimate.missing and e.estimate.n]
        notes = ""
        if empty:
            notes += (f" No value of {self.kpi} in any run of {', '.join(map(name, empty))} "
                      "(ranked last).")
        if gaps:
            notes += (f" {', '.join(map(name, gaps))}: some runs had no value; means are over "
                      "the runs that had one.")
        if self.winner is not None:
            return (f"{name(first.id)} has the {better} {self.kpi} and its 95% confidence "
                    "interval is clear of every other configuration's." + notes)
        if first.estimate.n == 0:
            return f"No winner: no configuration has a value of {self.kpi}."
        if first.ties:
            tied = ", ".join(name(i) for i in (first.id, *first.ties))
            return (f"No winner on {self.kpi}: {tied} tie at {fmt(first.estimate.mean)} "
                    "(the same value in every run)." + notes)
        if not first.estimate.interval_known:
            runs = "one run" if first.estimate.n == 1 else f"{first.estimate.n} runs"
            return (f"No winner on {self.kpi}: {name(first.id)} has the {better} value, but "
                    f"{runs} each give no confidence interval (at least {MIN_INTERVAL_N} "
                    "replications are needed)." + notes)
        tied = ", ".join(name(i) for i in first.overlaps)
        return (f"No winner on {self.kpi}: {name(first.id)} has the {better} mean, but its 95% "
                f"confidence interval overlaps {tied}." + notes)


def rank(estimates: dict[str, Estimate], kpi: str, lower_is_better: bool = True) -> Ranking:
    """Order configurations by their mean of `kpi`; NaN means (no data) go last.

    Non-overlapping 95% intervals imply a real difference; overlapping ones do not prove
    there is none, so this is conservative: more replications narrow the intervals."""
    def key(item: tuple[str, Estimate]) -> tuple[bool, float, str]:
        m = item[1].mean
        return (math.isnan(m), m if lower_is_better else -m, item[0])

    order = sorted(estimates.items(), key=key)
    entries: list[Ranked] = []
    for i, (cid, est) in enumerate(order):
        ties = tuple(o for o, e in order if o != cid and est.identical(e))
        overlaps = tuple(o for o, e in order
                         if o != cid and o not in ties and est.overlaps(e))
        earlier = next((r.rank for r in entries if r.id in ties), None)
        entries.append(Ranked(earlier or i + 1, cid, est, overlaps, ties))
    return Ranking(kpi, lower_is_better, tuple(entries))


def fmt(v: float | None) -> str:
    """A KPI value for people: thousands separated, 3 significant digits below 100."""
    if v is None or math.isnan(v):
        return "-"
    if math.isinf(v):
        return "> horizon"  # a percentile on work that never finished
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"


def replication_seeds(seed: int, n: int) -> list[int]:
    """`n` independent run seeds from one `SeedSequence(seed)`.

    Child i is `SeedSequence(seed, spawn_key=(i,))` whatever `n` is, so adding replications
    keeps the seeds of the existing ones."""
    children = np.random.SeedSequence(seed).spawn(n)
    return [int(c.generate_state(1, dtype=np.uint32)[0]) for c in children]


def as_floats(values: Sequence[Any]) -> list[float]:
    """None -> NaN, everything else float: KPI columns as numbers."""
    return [math.nan if v is None else float(v) for v in values]
