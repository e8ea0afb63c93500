"""The caller's batching policy for a partner's bulk endpoint, sans-I/O.

A bulk endpoint takes many items in one call: against a partner's rate limit, batching is the
first remedy (one request a minute may carry 500 movements). `Batcher` holds deliveries the
bus handed out (marked in flight, so nothing is delivered twice meanwhile) until a batch is
full or its oldest item has waited `max_wait_s`, and while fewer than `max_calls` calls are
on the wire; the driver posts what `ready` returns as one call each, settles the lot
(`Engine.settle`) and says `done`. Bounding the calls is what makes batches grow under load:
while calls are out, what becomes due gathers into the next one (the live service's ERP
workers are its `max_calls`).

The bus hands out one delivery per ordering key at a time, so a key moves one item per call:
a key hotter than one item per call's round trip queues up whatever the batch size (and a
long `max_wait_s` lengthens that round trip).
"""

from __future__ import annotations

from dataclasses import dataclass

from integration_core.bus import Delivery


@dataclass(frozen=True, slots=True)
class Batching:
    """At most `max_size` items per call; a partial batch waits up to `max_wait_s` for more
    (0: post what is due at once, in calls of up to `max_size`); at most `max_calls` calls on
    the wire at once, and calls started at least `min_interval_s` apart (the caller's own
    pacing, under the partner's rate limit, so it is not refused)."""

    max_size: int = 1
    max_wait_s: float = 0.0
    max_calls: int = 1
    min_interval_s: float = 0.0

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {self.max_size}")
        if self.max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {self.max_wait_s}")
        if self.max_calls < 1:
            raise ValueError(f"max_calls must be at least 1, got {self.max_calls}")
        if self.min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {self.min_interval_s}")


SLACK_S = 1e-6
"""Clocks read Unix seconds, about 2e-7 s apart at today's epoch: a driver woken for a due
time may read a hair before it (its own time plus an epoch, rounded). Due that close is due,
or the driver would wake again at the same instant, forever."""


class Batcher:
    def __init__(self, batching: Batching) -> None:
        self.batching = batching
        self.held: list[Delivery] = []
        self._added: list[float] = []
        """When each held item was added (the oldest first)."""
        self.calls = 0
        """Calls on the wire (`ready` hands them out, `done` takes them back)."""
        self._started = -float("inf")
        """When the last call was handed out."""

    @property
    def room(self) -> int:
        """How many more deliveries fit in the batch being filled."""
        return max(0, self.batching.max_size - len(self.held))

    def add(self, deliveries: list[Delivery], now: float) -> None:
        self.held.extend(deliveries)
        self._added.extend([now] * len(deliveries))

    def ready(self, now: float) -> list[list[Delivery]]:
        """The batches to post now, one call each, while calls are free: full ones first,
        then the partial rest once its oldest item has waited `max_wait_s`."""
        b, out = self.batching, []
        now += SLACK_S
        while self.calls < b.max_calls and self.held and (
                len(self.held) >= b.max_size or now >= self._added[0] + b.max_wait_s) and (
                now >= self._started + b.min_interval_s):
            out.append(self.held[:b.max_size])
            del self.held[:b.max_size], self._added[:b.max_size]
            self.calls += 1
            self._started = now - SLACK_S
        return out

    def done(self) -> None:
        """A call came back (answered or failed): its slot is free."""
        self.calls = max(0, self.calls - 1)

    def next_at(self) -> float | None:
        """When the held partial batch is due, if there is one and a call is free for it
        (otherwise the next `done` is when to look again)."""
        b = self.batching
        if not self.held or self.calls >= b.max_calls:
            return None
        return max(self._added[0] + b.max_wait_s, self._started + b.min_interval_s)

    def drop(self) -> list[Delivery]:
        """Forget what is held and on the wire (a crash): the store redelivers it after the
        restart."""
        held, self.held, self._added, self.calls = self.held, [], [], 0
        self._started = -float("inf")
        return held
