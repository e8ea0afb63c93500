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


def test_retention_bounds_the_log_but_not_the_dedupe_horizon() -> None:
    from integration_core.bus import Bus
    from tests.factories import env

    store = MemoryStore(retain_log_s=10.0)
    bus = Bus(store)
    for i in range(5):
        bus.publish(env(i), float(i * 5))  # published at 0, 5, 10, 15, 20
    assert [e.position for e in store.log()] == [3, 4, 5]  # older than 20 - 10 dropped
    assert [e.position for e in store.log(from_position=4)] == [4, 5]
    assert [e.position for e in store.log(from_time=12.0)] == [4, 5]
    assert bus.publish(env(0), 30.0).duplicate
    assert store.last_position() == 5


def test_a_transaction_that_cannot_begin_leaves_the_bus_usable() -> None:
    """A store whose BEGIN fails (SQLite's "database is locked", a lost PostgreSQL connection):
    the bus must not keep a transaction that will never commit, or every later publish would
    wait in it for good."""
    from contextlib import contextmanager
    from typing import Any

    import pytest

    from integration_core.bus import Bus
    from integration_core.errors import StorageError
    from tests.factories import env

    class BeginFails(MemoryStore):
        fail = True

        @contextmanager
        def batch(self) -> Any:
            if self.fail:
                raise StorageError("injected: cannot begin")
            with super().batch():
                yield

    store = BeginFails()
    bus = Bus(store)
    bus.subscribe("wms")
    with pytest.raises(StorageError), bus.transaction(0.0):
        pass
    store.fail = False
    bus.publish(env(1), 0.0)
    assert bus.backlog("wms") == 1  # delivered to the consumer now, not in a tx never committed
