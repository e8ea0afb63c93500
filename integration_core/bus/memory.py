"""In-memory store: fast, for the simulator and tests. Lost with the process."""

from __future__ import annotations

import bisect
import copy
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from integration_core.bus.records import DeadLetter, LogEntry
from integration_core.bus.store import Effect
from integration_core.envelope import Envelope

_ATOMIC = frozenset({int, float, str, bool, type(None)})


class _MemTx:
    __slots__ = ("_staged", "_state")

    def __init__(self, state: dict[str, dict[str, Any]]) -> None:
        self._state = state
        self._staged: dict[tuple[str, str], Any] = {}

    def get(self, ns: str, key: str) -> Any:
        # A copy: an effect that mutates what it read and then fails must leave no trace.
        if (ns, key) in self._staged:
            value = self._staged[(ns, key)]
        else:
            value = self._state.get(ns, {}).get(key)
        return value if type(value) in _ATOMIC else copy.deepcopy(value)

    def put(self, ns: str, key: str, value: Any) -> None:
        # Copy so the caller cannot change committed state behind the store's back.
        self._staged[(ns, key)] = value if type(value) in _ATOMIC else copy.deepcopy(value)

    def commit(self) -> None:
        for (ns, key), value in self._staged.items():
            self._state.setdefault(ns, {})[key] = value


class MemoryStore:
    """`retain_log_s` bounds the log kept for replay to messages published in the last so
    many seconds (like a broker's retention); the dedupe horizon stays unbounded. A simulated
    week at 10,000 messages an hour needs it: the full log would not fit in memory."""

    def __init__(self, retain_log_s: float | None = None) -> None:
        self.retain_log_s = retain_log_s
        self._ids: set[str] = set()
        self._log: deque[tuple[Envelope, float]] = deque()
        self._first = 1
        """Position of the oldest message still in `_log`."""
        self._next = 1
        self._inbox: dict[str, set[str]] = {}
        """Consumer -> message ids processed (one set each: no tuple per record)."""
        self._state: dict[str, dict[str, Any]] = {}
        self._subs: dict[str, tuple[frozenset[str] | None, int]] = {}
        self._dead: dict[str, DeadLetter] = {}

    def append(self, envelope: Envelope, published_at: float) -> int | None:
        if envelope.message_id in self._ids:
            return None
        self._ids.add(envelope.message_id)
        self._log.append((envelope, published_at))
        if self.retain_log_s is not None:
            horizon = published_at - self.retain_log_s
            while self._log[0][1] < horizon:
                self._log.popleft()
                self._first += 1
        self._next += 1
        return self._next - 1

    def append_many(self, envelopes: list[Envelope], published_at: float) -> list[int | None]:
        return [self.append(e, published_at) for e in envelopes]

    def batch(self) -> AbstractContextManager[None]:
        return nullcontext()

    def _done(self, consumer: str) -> set[str]:
        done = self._inbox.get(consumer)
        if done is None:
            done = self._inbox[consumer] = set()
        return done

    def apply(self, consumer: str, message_id: str, effect: Effect) -> bool:
        done = self._done(consumer)
        if message_id in done:
            return False
        tx = _MemTx(self._state)
        effect(tx)
        tx.commit()
        done.add(message_id)
        return True

    def apply_many(
        self, consumer: str, items: list[tuple[str, Effect]]
    ) -> list[bool | Exception]:
        results: list[bool | Exception] = []
        for mid, effect in items:
            try:
                results.append(self.apply(consumer, mid, effect))
            except Exception as exc:  # reported per message; the batch goes on
                results.append(exc)
        return results

    def mark_processed(self, consumer: str, message_id: str) -> None:
        self._done(consumer).add(message_id)

    def mark_processed_many(self, consumer: str, message_ids: list[str]) -> None:
        self._done(consumer).update(message_ids)

    def processed(self, consumer: str, message_id: str) -> bool:
        return message_id in self._inbox.get(consumer, ())

    def get_state(self, ns: str, key: str) -> Any:
        return copy.deepcopy(self._state.get(ns, {}).get(key))

    def state(self, ns: str, prefix: str = "") -> dict[str, Any]:
        found = self._state.get(ns, {})
        if prefix:
            found = {k: v for k, v in found.items() if k.startswith(prefix)}
        return copy.deepcopy(found)

    def last_position(self) -> int:
        return self._next - 1

    def log(self, from_position: int = 0, from_time: float | None = None) -> Iterator[LogEntry]:
        start = max(from_position - self._first, 0)
        if from_time is not None:
            # Publish times never decrease, so the first entry at or after from_time bisects.
            start = max(start, bisect.bisect_left(self._log, from_time, key=lambda e: e[1]))
        for i in range(start, len(self._log)):
            envelope, published_at = self._log[i]
            yield LogEntry(self._first + i, published_at, envelope)

    def unfinished(
        self, consumer: str, types: frozenset[str] | None, start: int
    ) -> Iterator[LogEntry]:
        dead = {dl.position for dl in self._dead.values() if dl.consumer == consumer}
        done = self._inbox.get(consumer, set())
        for entry in self.log(start):
            env = entry.envelope
            if types is not None and env.type not in types:
                continue
            if env.message_id in done or entry.position in dead:
                continue
            yield entry

    def save_subscription(self, consumer: str, types: frozenset[str] | None, start: int) -> None:
        self._subs[consumer] = (types, start)

    def subscription(self, consumer: str) -> tuple[frozenset[str] | None, int] | None:
        return self._subs.get(consumer)

    def put_dead_letter(self, dl: DeadLetter) -> None:
        self._dead[dl.id] = dl

    def delete_dead_letter(self, dl_id: str) -> None:
        self._dead.pop(dl_id, None)

    def dead_letters(self) -> list[DeadLetter]:
        return list(self._dead.values())

    def close(self) -> None:
        pass
