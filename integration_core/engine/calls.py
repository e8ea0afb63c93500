"""The order desk's outbox calls waiting to be made, as a schedule: new calls at once, a failed
call again after the retry policy's backoff, until its partner answers (a refusal is an
answer). Drivers take what is due, make the calls through their partner adapter and report
back; none keeps a retry schedule of its own."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

import numpy as np

from integration_core.bus import RetryPolicy


@dataclass(frozen=True, slots=True)
class Call:
    """One attempt at an outbox call: the record the desk wrote, and which attempt this is."""

    record: dict[str, Any]
    attempt: int

    @property
    def call_id(self) -> str:
        return str(self.record["call_id"])

    @property
    def op(self) -> str:
        return str(self.record["op"])

    @property
    def body(self) -> dict[str, Any]:
        return dict(self.record["body"])


class CallSchedule:
    def __init__(self, policy: RetryPolicy, rng: np.random.Generator) -> None:
        self.policy = policy
        self.rng = rng
        self._heap: list[tuple[float, str, int]] = []  # (due_at, call_id, attempt)

    def add(self, call_ids: list[str], now: float) -> None:
        for call_id in call_ids:
            heapq.heappush(self._heap, (now, call_id, 1))

    def again(self, due: list[tuple[str, int]], at: float) -> None:
        """Put calls taken with `due` back, attempts kept (they were not made)."""
        for call_id, attempt in due:
            heapq.heappush(self._heap, (at, call_id, attempt))

    def due(self, now: float) -> list[tuple[str, int]]:
        out = []
        while self._heap and self._heap[0][0] <= now:
            _, call_id, attempt = heapq.heappop(self._heap)
            out.append((call_id, attempt))
        return out

    def retry(self, call: Call, now: float, delay: float | None = None) -> float:
        """Make `call` again later (the policy's backoff unless `delay` is given); returns
        when."""
        if delay is None:
            delay = self.policy.delay(call.attempt, self.rng)
        heapq.heappush(self._heap, (now + delay, call.call_id, call.attempt + 1))
        return now + delay

    def next_at(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)
