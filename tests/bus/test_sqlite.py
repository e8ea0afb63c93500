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


def test_a_full_database_is_an_outage_and_recovers_without_reopening(tmp_path: Path) -> None:
    """SQLite's own "database or disk is full" (`PRAGMA max_page_count` caps the file), not an
    injected error: publishes and deliveries fail while it is full, nothing acknowledged is
    lost, and once there is room the same store object carries on."""
    from integration_core.errors import StorageError
    from tests.bus.contract import counting_handler

    store = SQLiteStore(tmp_path / "full.db")
    bus = Bus(store)
    bus.subscribe("wms")
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]  # the test's own cap
    store._conn.execute(f"PRAGMA max_page_count = {pages + 30}")
    acked, refused = [], 0
    for i in range(5000):  # publish until the file is full
        try:
            bus.publish(env(i, key=f"k{i}", payload={"i": i}), float(i))
            acked.append(f"m{i}")
        except StorageError as exc:
            assert "full" in str(exc)
            refused += 1
            if refused == 5:
                break
    assert refused == 5 and len(acked) > 5
    for _ in range(3):  # the inbox and the state need room too
        with pytest.raises(StorageError, match="full"):
            bus.process({"wms": counting_handler}, 5000.0)
        assert bus.backlog("wms") == len(acked) and store.state("applied") == {}
        assert [d.envelope.message_id for d in bus.due(5000.0)][:2] == ["m0", "m1"]
        bus = Bus(store)  # a restart of the bus alone finds them unfinished too
        bus.subscribe("wms")
    assert not store._conn.in_transaction  # every failed transaction was rolled back
    store._conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
    bus.drain({"wms": counting_handler}, 6000.0)
    assert store.state("applied") == dict.fromkeys(acked, 1)
    assert [e.envelope.message_id for e in store.log()] == acked
    bus.advance_starts()
    store.close()
    again = Bus(SQLiteStore(tmp_path / "full.db"))
    again.subscribe("wms")
    assert again.backlog("wms") == 0
    again.store.close()


def test_a_file_from_before_transient_dead_letters_is_migrated(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE dead_letters (id TEXT PRIMARY KEY, consumer TEXT NOT NULL, "
                 "position INTEGER, message_id TEXT, envelope TEXT, raw TEXT, cause_type TEXT "
                 "NOT NULL, cause_message TEXT NOT NULL, attempts INTEGER NOT NULL, "
                 "first_failure_at REAL NOT NULL, last_failure_at REAL NOT NULL)")
    conn.execute("INSERT INTO dead_letters VALUES ('erp/1', 'erp', 1, 'm1', NULL, 'x', "
                 "'TransientError', 'down', 5, 0.0, 9.0)")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    (dl,) = store.dead_letters()
    assert (dl.id, dl.attempts, dl.transient) == ("erp/1", 5, False)
    store.close()
