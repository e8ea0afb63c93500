"""The storage port of the bus. Adapters: `MemoryStore`, `SQLiteStore`.

The store keeps the log (deduplicated by message id, forever), each consumer's inbox of
processed message ids, consumer state written by effects, subscriptions and dead letters.
`apply` is the durable inbox: the effect's writes and the inbox record commit together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

from integration_core.bus.records import DeadLetter, LogEntry
from integration_core.envelope import Envelope


class Tx(Protocol):
    """Consumer state inside an inbox transaction: a namespaced key -> JSON value map."""

    def get(self, ns: str, key: str) -> Any: ...

    def put(self, ns: str, key: str, value: Any) -> None: ...


Effect = Callable[[Tx], None]


class Store(Protocol):
    def append(self, envelope: Envelope, published_at: float) -> int | None:
        """Store a message; its log position, or None if its message id is already stored."""
        ...

    def append_many(self, envelopes: list[Envelope], published_at: float) -> list[int | None]:
        """`append` for each, in one transaction; duplicates within the list get None too."""
        ...

    def find(self, message_id: str) -> Envelope | None:
        """The stored envelope of a message id; None if unknown or no longer retained."""
        ...

    def batch(self) -> AbstractContextManager[None]:
        """Group the writes inside into one transaction (a no-op where writes are atomic)."""
        ...

    def apply(self, consumer: str, message_id: str, effect: Effect) -> bool:
        """Run `effect` and record (consumer, message_id) atomically; False if recorded before.

        If `effect` raises, none of its writes nor the record persist, and the error propagates.
        """
        ...

    def apply_many(
        self, consumer: str, items: list[tuple[str, Effect]]
    ) -> list[bool | Exception]:
        """`apply` for each (message_id, effect) in one transaction; an effect's exception is
        returned in its place (its writes and record discarded) instead of raised."""
        ...

    def processed(self, consumer: str, message_id: str) -> bool: ...

    def mark_processed(self, consumer: str, message_id: str) -> None:
        """Record (consumer, message_id) as done without an effect (a plain ack)."""
        ...

    def mark_processed_many(self, consumer: str, message_ids: list[str]) -> None:
        """`mark_processed` for each, in one transaction."""
        ...

    def get_state(self, ns: str, key: str) -> Any: ...

    def state(self, ns: str, prefix: str = "") -> dict[str, Any]:
        """Every key of `ns` (that starts with `prefix`) and its value."""
        ...

    def last_position(self) -> int: ...

    def log(self, from_position: int = 0, from_time: float | None = None) -> Iterator[LogEntry]:
        ...

    def unfinished(self, consumer: str, types: frozenset[str] | None, start: int) -> Iterator[
        LogEntry
    ]:
        """Messages from `start` on, of `types`, neither in the consumer's inbox nor dead."""
        ...

    def save_subscription(self, consumer: str, types: frozenset[str] | None, start: int) -> None:
        ...

    def subscription(self, consumer: str) -> tuple[frozenset[str] | None, int] | None: ...

    def put_dead_letter(self, dl: DeadLetter) -> None: ...

    def delete_dead_letter(self, dl_id: str) -> None: ...

    def dead_letters(self) -> list[DeadLetter]: ...

    def close(self) -> None: ...
