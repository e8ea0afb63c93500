"""Network links: latency, loss, duplication, reordering, partitions.

`Link.send(fn, *args)` delivers `fn(*args)` at the far end after the link's latency, or never
(lost, or the link is partitioned), or twice (duplicated). Reordering adds a uniform random
extra delay so later messages can overtake earlier ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import simpy

from sim.distributions import sampler
from sim.kernel import Windows, at
from sim.scenario import LinkConfig, spans


class Link:
    def __init__(
        self, env: simpy.Environment, name: str, cfg: LinkConfig, rng: np.random.Generator,
        until_s: float = float("inf"),
    ) -> None:
        """`until_s`: where recurring partitions stop (the end of the workload)."""
        self.env = env
        self.name = name
        self.cfg = cfg
        self._latency = sampler(cfg.latency_s, rng)
        self._rng = rng
        self._uniform = _Uniform(rng)
        self.partitions = Windows(spans(cfg.partitions, until_s))
        self.partitioned = bool(self.partitions.spans)
        """Whether the scenario declares partition windows at all."""
        self.reorder_s = cfg.reorder_s
        self.loss = cfg.loss
        self.duplication = cfg.duplication
        self.down = False
        """Set by fault injection: a partition outside the scenario's declared windows."""
        self.slow_factor = 1.0
        self.sent = 0
        self.lost = 0
        self.duplicated = 0

    def up(self) -> bool:
        return not self.down and not self.partitions.active(self.env.now)

    # The common case, a clean link (up, no partitions, no loss, duplication or reordering),
    # is inlined in `send`, `send_after` and `arrival`: they run several times per movement.
    # It draws what `_delays` would: one latency.

    def send(self, fn: Callable[..., None], *args: Any) -> bool:
        """Send a message; False when it was dropped here (the sender cannot tell)."""
        if self.down or self.loss or self.duplication or self.reorder_s or self.partitioned:
            return self._send(0.0, fn, args)
        self.sent += 1
        at(self.env, self._latency() * self.slow_factor, fn, *args)
        return True

    def send_after(self, after: float, fn: Callable[..., None], *args: Any) -> bool:
        """`send`, for a message that leaves `after` seconds from now. Whether it is lost
        is decided now, from the link's state now: a shortcut that saves the event of the
        departure (a partition starting within `after` seconds is not seen)."""
        if self.down or self.loss or self.duplication or self.reorder_s or self.partitioned:
            return self._send(after, fn, args)
        self.sent += 1
        at(self.env, after + self._latency() * self.slow_factor, fn, *args)
        return True

    def _send(self, after: float, fn: Callable[..., None], args: tuple[Any, ...]) -> bool:
        delays = self._delays(after)
        for delay in delays:
            at(self.env, delay, fn, *args)
        return bool(delays)

    def arrival(self) -> float | None:
        """When a message sent now arrives (the first copy), or None if it is lost: for a
        receiver that only needs to know that, not to be woken (an acknowledgement)."""
        if self.down or self.loss or self.duplication or self.reorder_s or self.partitioned:
            delays = self._delays(0.0)
            return self.env.now + min(delays) if delays else None
        self.sent += 1
        # `_now`, not the `now` property (a Python call): once per movement.
        return self.env._now + self._latency() * self.slow_factor

    def _delays(self, after: float) -> list[float]:
        """Decide the fate of one message: no copies (lost), one, or two (duplicated)."""
        self.sent += 1
        # The common case (up, no loss, no duplication, no reordering) stays branch-light:
        # this runs several times per simulated movement.
        if self.down or (self.partitions.spans and self.partitions.active(self.env.now)) or (
            self.loss and self._uniform() < self.loss
        ):
            self.lost += 1
            return []
        reorder = self.reorder_s
        copies = 1
        if self.duplication and self._uniform() < self.duplication:
            copies = 2
            self.duplicated += 1
        delays = []
        for _ in range(copies):
            delay = after + self._latency() * self.slow_factor
            if reorder:
                delay += self._uniform() * reorder
            delays.append(delay)
        return delays


class _Uniform:
    """Uniform [0, 1) draws in blocks: one numpy call per 4096 draws."""

    __slots__ = ("_buf", "_i", "_rng")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buf = rng.random(4096)
        self._i = 0

    def __call__(self) -> float:
        if self._i == len(self._buf):
            self._buf = self._rng.random(4096)
            self._i = 0
        v = float(self._buf[self._i])
        self._i += 1
        return v
