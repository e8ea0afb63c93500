"""The gateway's `Seen` port on the bus's `Store`: durable, in the same database as the bus.

Reads see the store plus this receipt's own writes; writes are staged and written by `write`,
inside the effect of the transaction that publishes the interchange's messages, so "seen"
and "published" commit together or not at all. Only the `Store` port is used (`get_state`
to read, an `apply` effect to write): it works on every bus store, SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from integration_core.bus import Store, Tx
from integration_core.edi.gateway import SEEN_NS


class StoreSeen:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.staged: dict[tuple[str, str], Any] = {}
        self.found: str | None = None
        """The interchange key the gateway found recorded (a duplicate), if any."""
        self.recorded: str | None = None
        """The interchange key the gateway recorded as seen (not rejected), if any."""

    def get(self, ns: str, key: str) -> Any:
        if (ns, key) in self.staged:
            return self.staged[(ns, key)]
        value = self.store.get_state(ns, key)
        if ns == SEEN_NS and value is not None:
            self.found = key
        return value

    def put(self, ns: str, key: str, value: Any) -> None:
        if ns == SEEN_NS:
            self.recorded = key
        self.staged[(ns, key)] = value

    def write(self, tx: Tx) -> None:
        for (ns, key), value in self.staged.items():
            tx.put(ns, key, value)
