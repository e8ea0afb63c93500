from __future__ import annotations

from integration_core.bus import MemoryStore, Store
from tests.bus.contract import StoreContract


class TestMemoryStore(StoreContract):
    def make_store(self) -> Store:
        return MemoryStore()

    def reopen(self, store: Store) -> Store:
        # The in-memory store lives as long as the process; a new Bus over the same store
        # models a restart of the bus logic alone (what the simulator's durable-bus mode does).
        return store
