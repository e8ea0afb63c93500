"""Retry policy: exponential backoff with seeded jitter, and errors that are never retried."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import ValidationError

from integration_core.errors import InteropError


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.2
    """Each delay is scaled by a uniform factor in [1 - jitter, 1 + jitter]."""
    never_retry: tuple[type[BaseException], ...] = (ValidationError,)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("delays must be >= 0 and multiplier >= 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")

    def retryable(self, error: BaseException) -> bool:
        if isinstance(error, self.never_retry):
            return False
        if isinstance(error, InteropError):
            return error.retryable
        # Payload errors from the envelope registry subclass ValueError; treat plain
        # ValueError/TypeError as bad input: retrying the same bytes cannot help.
        return not isinstance(error, ValueError | TypeError)

    def delay(self, attempt: int, rng: np.random.Generator) -> float:
        """Delay before attempt `attempt + 1`, after `attempt` failures (attempt >= 1)."""
        base = min(self.max_delay, self.initial_delay * self.multiplier ** (attempt - 1))
        if self.jitter:
            base *= 1 + self.jitter * (2 * float(rng.random()) - 1)
        return min(self.max_delay, base)
