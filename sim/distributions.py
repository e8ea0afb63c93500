"""Configurable distributions, written in scenario files as tables with a `kind` field.

All distributions are over the non-negative reals: the twin uses them for durations, counts
and quantities, and a negative draw would be a modelling error (SimPy rejects negative delays).

    service_time = { kind = "lognormal", mean = 0.2, sigma = 0.5 }

`sampler(dist, rng)` turns one into a fast callable that draws from numpy in blocks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from functools import partial
from itertools import chain
from typing import Annotated, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

_Floats = npt.NDArray[np.float64]


class _Dist(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    def block_draw(self, rng: np.random.Generator) -> Callable[[int], _Floats]:
        """A function drawing n values from `rng` in one numpy call."""
        raise NotImplementedError


class Constant(_Dist):
    """Always the same value."""

    kind: Literal["constant"] = Field("constant", description="Always `value`.")
    value: float = Field(ge=0, description="The value every draw returns.")

    @property
    def mean(self) -> float:
        return self.value

    def block_draw(self, rng: np.random.Generator) -> Callable[[int], _Floats]:
        value = self.value

        def draw(n: int) -> _Floats:
            return np.full(n, value, dtype=np.float64)

        return draw


class Exponential(_Dist):
    """Memoryless: time between Poisson events, or service times of an M/M/c queue."""

    kind: Literal["exponential"] = Field(
        "exponential", description="Exponential with the given mean."
    )
    mean: float = Field(gt=0, description="Mean of the distribution (1 / rate).")

    def block_draw(self, rng: np.random.Generator) -> Callable[[int], _Floats]:
        mean = self.mean

        def draw(n: int) -> _Floats:
            return rng.exponential(mean, n)

        return draw


class Uniform(_Dist):
    """Every value in [low, high] equally likely."""

    kind: Literal["uniform"] = Field("uniform", description="Uniform on [low, high].")
    low: float = Field(ge=0, description="Smallest value.")
    high: float = Field(ge=0, description="Largest value; must be >= low.")

    @field_validator("high")
    @classmethod
    def _high_not_below_low(cls, high: float, info: ValidationInfo) -> float:
        low = info.data.get("low")
        if low is not None and high < low:
            raise ValueError(f"must be >= low ({low}), got {high}")
        return high

    @property
    def mean(self) -> float:
        return (self.low + self.high) / 2

    def block_draw(self, rng: np.random.Generator) -> Callable[[int], _Floats]:
        low, high = self.low, self.high

        def draw(n: int) -> _Floats:
            return rng.uniform(low, high, n)

        return draw


class Lognormal(_Dist):
    """Right-skewed, for latencies: exp(N(mu, sigma^2)), parametrised by its own mean.

    mu = ln(mean) - sigma^2 / 2, so that E[X] = exp(mu + sigma^2 / 2) = mean. The median is
    mean * exp(-sigma^2 / 2); sigma = 0 degenerates to the constant `mean`.
    """

    kind: Literal["lognormal"] = Field(
        "lognormal", description="Lognormal with the given mean and sigma."
    )
    mean: float = Field(gt=0, description="Mean of the distribution itself (not of its log).")
    sigma: float = Field(
        ge=0, description="Standard deviation of the underlying normal (log scale); 0.5 is typical."
    )

    @property
    def mu(self) -> float:
        """Mean of the underlying normal."""
        return math.log(self.mean) - self.sigma**2 / 2

    def block_draw(self, rng: np.random.Generator) -> Callable[[int], _Floats]:
        mu, sigma = self.mu, self.sigma

        def draw(n: int) -> _Floats:
            return rng.lognormal(mu, sigma, n)

        return draw


class Empirical(_Dist):
    """Draws one of the listed values, uniformly or with the given weights."""

    kind: Literal["empirical"] = Field(
        "empirical", description="One of `values`, optionally weighted."
    )
    values: tuple[float, ...] = Field(
        min_length=1, description="Values to draw from (at least one, each >= 0)."
    )
    weights: tuple[float, ...] | None = Field(
        default=None,
        description="Relative weights, one per value, each >= 0, not all 0; omit for equal.",
    )

    @field_validator("values")
    @classmethod
    def _values_non_negative(cls, values: tuple[float, ...]) -> tuple[float, ...]:
        bad = [v for v in values if v < 0]
        if bad:
            raise ValueError(f"values must be >= 0, got {bad[0]}")
        return values

    @field_validator("weights")
    @classmethod
    def _weights_match_values(
        cls, weights: tuple[float, ...] | None, info: ValidationInfo
    ) -> tuple[float, ...] | None:
        if weights is None:
            return None
        values = info.data.get("values")
        if values is not None and len(weights) != len(values):
            raise ValueError(f"needs one weight per value: {len(values)}, got {len(weights)}")
        if any(w < 0 for w in weights):
            raise ValueError("weights must be >= 0")
        if sum(weights) <= 0:
            raise ValueError("weights must not all be 0")
        return weights

    @property
    def mean(self) -> float:
        if self.weights is None:
            return math.fsum(self.values) / len(self.values)
        total = math.fsum(self.weights)
        return math.fsum(v * w for v, w in zip(self.values, self.weights, strict=True)) / total

    def block_draw(self, rng: np.random.Generator) -> Callable[[int], _Floats]:
        values = np.asarray(self.values, dtype=np.float64)
        p = None if self.weights is None else np.asarray(self.weights) / math.fsum(self.weights)

        def draw(n: int) -> _Floats:
            return rng.choice(values, size=n, p=p)

        return draw


Distribution = Annotated[
    Constant | Exponential | Uniform | Lognormal | Empirical, Field(discriminator="kind")
]


class Sampler(partial[float]):
    """Callable returning one float per call, refilled `block` draws at a time.

    A numpy call costs about a microsecond whatever its size, so per-call draws would dominate
    a simulation; a block turned into a Python list costs tens of nanoseconds per draw. A
    sampler is `next` over the blocks chained: a draw runs no Python code of its own (the twin
    draws several times per movement), only a refill does. Blocks are drawn when first needed.
    """

    __slots__ = ()

    def __new__(cls, draw: Callable[[int], _Floats], block: int = 4096) -> Self:
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        return super().__new__(cls, next, chain.from_iterable(_blocks(draw, block)))


def _blocks(draw: Callable[[int], _Floats], block: int) -> Iterator[list[float]]:
    while True:
        yield draw(block).tolist()


def sampler(dist: Distribution, rng: np.random.Generator, block: int = 4096) -> Sampler:
    """A fast sampler of `dist` drawing from `rng`.

    The rng advances a block at a time, so give each sampler its own stream (see
    `sim.rng.Streams`): sharing one makes a sampler's draws depend on another's block refills.
    A constant never touches the rng.
    """
    return Sampler(dist.block_draw(rng), block)
