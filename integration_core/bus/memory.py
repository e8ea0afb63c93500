"""In-memory store: fast, for the simulator and tests. Lost with the process.

A `batch` is a real transaction: while one is open every write journals how to undo itself,
and an exception out of the outermost batch undoes them all (as SQLite rolls back), so the
bus's failure contract holds for this store too.
"""

from __future__ import annotations

import bisect
import json
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

from integration_core.bus.records import DeadLetter, LogEntry
from integration_core.bus.store import Effect
from integration_core.envelope import Envelope
from integration_core.errors import StorageError

_ATOMIC = frozenset({int, float, str, bool, type(None)})


def _copy(value: Any) -> Any:
    """A detached copy of a state value, through JSON: what the SQLite store would hand
    back (tuples read back as lists), and several times faster than `copy.deepcopy`."""
    return value if type(value) in _ATOMIC else json.loads(json.dumps(value))
_ABSENT = object()
_NO_TABLE: dict[str, Any] = {}
"""An empty namespace, read-only: what a namespace never written to holds."""


class _MemTx:
    __slots__ = ("_staged", "_state")

    def __init__(self, state: dict[str, dict[str, Any]]) -> None:
        self._state = state
        self._staged: dict[tuple[str, str], Any] = {}

    def get(self, ns: str, key: str) -> Any:
        # A copy: an effect that mutates what it read and then fails must leave no trace.
        value = self._staged.get((ns, key), _ABSENT)
        if value is _ABSENT:
            value = self._state.get(ns, _NO_TABLE).get(key)
        return value if type(value) in _ATOMIC else _copy(value)

    def put(self, ns: str, key: str, value: Any) -> None:
        # Copy so the caller cannot change committed state behind the store's back.
        self._staged[(ns, key)] = value if type(value) in _ATOMIC else _copy(value)

    def commit(self, undo: list[tuple[Any, ...]] | None) -> None:
        for (ns, key), value in self._staged.items():
            table = self._state.setdefault(ns, {})
            if undo is not None:
                undo.append((_ENTRY, table, key, table.get(key, _ABSENT)))
            table[key] = value


_NONE_DROPPED: list[tuple[Envelope, float]] = []
"""What most appends drop from the retained log (shared: never written to)."""

# Journal entries (tuples: cheaper than closures on the hot path), undone in reverse order.
_ENTRY = 0  # (_ENTRY, dict, key, old value or _ABSENT)
_MEMBER = 1  # (_MEMBER, set, item added)
_APPEND = 2  # (_APPEND, message id, entries the retention dropped)


class _Batch:
    """`MemoryStore.batch()`: a class, not a generator, because the twin opens several per
    message; one per store, reentrant (it counts how deep the batches nest)."""

    __slots__ = ("_depth", "_store")

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._depth = 0

    def __enter__(self) -> None:
        if self._depth == 0:  # the outermost batch commits or undoes
            self._store._undo = []
        self._depth += 1

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._depth -= 1
        if self._depth:
            return
        store, undo = self._store, self._store._undo
        store._undo = None
        if kind is not None and undo:
            store._rollback(undo)


class MemoryStore:
    """`retain_log_s` bounds the log kept for replay to messages published in the last so
    many seconds (like a broker's retention); the dedupe horizon stays unbounded. A simulated
    week at 10,000 messages an hour needs it: the full log would not fit in memory."""

    def __init__(self, retain_log_s: float | None = None) -> None:
        self.retain_log_s = retain_log_s
        self._ids: dict[str, int] = {}
        """Message id -> log position, for every message ever stored (the dedupe horizon)."""
        self._log: deque[tuple[Envelope, float]] = deque()
        self._first = 1
        """Position of the oldest message still in `_log`."""
        self._next = 1
        self._inbox: dict[str, set[str]] = {}
        """Consumer -> message ids processed (one set each: no tuple per record)."""
        self._state: dict[str, dict[str, Any]] = {}
        self._subs: dict[str, tuple[frozenset[str] | None, int]] = {}
        self._dead: dict[str, DeadLetter] = {}
        self._undo: list[tuple[Any, ...]] | None = None
        """Open batch: how to undo each write so far, in order."""
        self._batch = _Batch(self)

    def append(self, envelope: Envelope, published_at: float) -> int | None:
        if envelope.message_id in self._ids:
            return None
        self._ids[envelope.message_id] = self._next
        log = self._log
        log.append((envelope, published_at))
        dropped: list[tuple[Envelope, float]] = _NONE_DROPPED
        if self.retain_log_s is not None:
            horizon = published_at - self.retain_log_s
            if log[0][1] < horizon:
                dropped = []
                while log[0][1] < horizon:
                    dropped.append(log.popleft())
                self._first += len(dropped)
        self._next += 1
        if self._undo is not None:
            self._undo.append((_APPEND, envelope.message_id, dropped))
        return self._next - 1

    def _unappend(self, message_id: str, dropped: list[tuple[Envelope, float]]) -> None:
        del self._ids[message_id]
        self._log.pop()
        self._next -= 1
        self._log.extendleft(reversed(dropped))
        self._first -= len(dropped)

    def append_many(self, envelopes: list[Envelope], published_at: float) -> list[int | None]:
        with self.batch():
            return [self.append(e, published_at) for e in envelopes]

    def find(self, message_id: str) -> Envelope | None:
        pos = self._ids.get(message_id)
        if pos is None or pos < self._first:
            return None
        return self._log[pos - self._first][0]

    def batch(self) -> AbstractContextManager[None]:
        return self._batch

    def _rollback(self, undo: list[tuple[Any, ...]]) -> None:
        for entry in reversed(undo):
            if entry[0] == _ENTRY:
                _, table, key, old = entry
                if old is _ABSENT:
                    table.pop(key, None)
                else:
                    table[key] = old
            elif entry[0] == _MEMBER:
                entry[1].discard(entry[2])
            else:
                self._unappend(entry[1], entry[2])

    def _journal(self, table: dict[Any, Any], key: Any) -> None:
        if self._undo is not None:
            self._undo.append((_ENTRY, table, key, table.get(key, _ABSENT)))

    def _done(self, consumer: str) -> set[str]:
        done = self._inbox.get(consumer)
        if done is None:
            done = self._inbox[consumer] = set()
        return done

    def apply(self, consumer: str, message_id: str, effect: Effect) -> bool:
        done = self._inbox.get(consumer) or self._done(consumer)
        if message_id in done:
            return False
        tx = _MemTx(self._state)
        effect(tx)
        tx.commit(self._undo)
        if self._undo is not None:
            self._undo.append((_MEMBER, done, message_id))
        done.add(message_id)
        return True

    def apply_many(
        self, consumer: str, items: list[tuple[str, Effect]]
    ) -> list[bool | Exception]:
        results: list[bool | Exception] = []
        with self.batch():
            for mid, effect in items:
                try:
                    results.append(self.apply(consumer, mid, effect))
                except StorageError:  # the store itself: the whole batch fails
                    raise
                except Exception as exc:  # reported per message; the batch goes on
                    results.append(exc)
        return results

    def mark_processed(self, consumer: str, message_id: str) -> None:
        done = self._inbox.get(consumer) or self._done(consumer)
        if message_id not in done:
            if self._undo is not None:
                self._undo.append((_MEMBER, done, message_id))
            done.add(message_id)

    def mark_processed_many(self, consumer: str, message_ids: list[str]) -> None:
        done = self._inbox.get(consumer) or self._done(consumer)
        if self._undo is not None:
            self._undo.extend((_MEMBER, done, m) for m in message_ids if m not in done)
        done.update(message_ids)

    def processed(self, consumer: str, message_id: str) -> bool:
        return message_id in self._inbox.get(consumer, ())

    def get_state(self, ns: str, key: str) -> Any:
        return _copy(self._state.get(ns, {}).get(key))

    def state(self, ns: str, prefix: str = "") -> dict[str, Any]:
        found = self._state.get(ns, {})
        if prefix:
            found = {k: v for k, v in found.items() if k.startswith(prefix)}
        return {k: _copy(v) for k, v in found.items()}

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
        self._journal(self._subs, consumer)
        self._subs[consumer] = (types, start)

    def subscription(self, consumer: str) -> tuple[frozenset[str] | None, int] | None:
        return self._subs.get(consumer)

    def put_dead_letter(self, dl: DeadLetter) -> None:
        self._journal(self._dead, dl.id)
        self._dead[dl.id] = dl

    def delete_dead_letter(self, dl_id: str) -> None:
        self._journal(self._dead, dl_id)
        self._dead.pop(dl_id, None)

    def dead_letters(self) -> list[DeadLetter]:
        return list(self._dead.values())

    def close(self) -> None:
        pass
