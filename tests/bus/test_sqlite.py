from __future__ import annotations

from pathlib import Path

import pytest

from integration_core.bus import Bus, SQLiteStore, Store
from tests.bus.contract import StoreContract
from tests.factories import env


class TestSQLiteStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _dir(self, tmp_path: Path) -> None:
        self.path = tmp_path / "bus.db"

    def make_store(self) -> Store:
        return SQLiteStore(self.path)

    def reopen(self, store: Store) -> Store:
        store.close()
        return SQLiteStore(self.path)


def test_uncommitted_batch_is_lost_on_crash(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "b.db")
    bus = Bus(store)
    bus.publish(env(1), 0.0)
    with pytest.raises(RuntimeError), store.batch():
        bus.publish(env(2), 0.0)
        raise RuntimeError("process dies mid-batch")
    store.close()
    reopened = SQLiteStore(tmp_path / "b.db")
    assert [e.envelope.message_id for e in reopened.log()] == ["m1"]
    reopened.close()


def test_rejects_unknown_synchronous_level(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SQLiteStore(tmp_path / "c.db", synchronous="SOMETIMES")
