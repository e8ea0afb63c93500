from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from integration_core.bus import Bus, SQLiteStore, Store, Tx
from tests.bus.contract import StoreContract
from tests.factories import env


class TestSQLiteStore(StoreContract):
    cache = False

    @pytest.fixture(autouse=True)
    def _dir(self, tmp_path: Path) -> None:
        self.path = tmp_path / "bus.db"

    def make_store(self) -> Store:
        return SQLiteStore(self.path, cache_state=self.cache)

    def reopen(self, store: Store) -> Store:
        store.close()
        return self.make_store()


class TestSQLiteStoreCached(TestSQLiteStore):
    """The same contract with the state cache on (the service's setting)."""

    cache = True


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


# -- the state cache (cache_state=True, the service's setting) ----------------------------------


def _read(store: SQLiteStore, mid: str, ns: str = "ns", key: str = "k") -> object:
    seen: list[object] = []
    store.apply("reader", mid, lambda tx: seen.append(tx.get(ns, key)))
    return seen[0]


def _put(key: str, value: int, tx: Tx) -> None:
    tx.put("ns", key, value)


def _state_selects(store: SQLiteStore) -> list[str]:
    issued: list[str] = []
    store._conn.set_trace_callback(
        lambda sql: issued.append(sql) if sql.startswith("SELECT value FROM state") else None)
    return issued


def test_the_cache_serves_committed_reads_without_a_query(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db", cache_state=True)
    store.apply("c", "m1", lambda tx: tx.put("ns", "k", 41))
    issued = _state_selects(store)
    store.apply("c", "m2", lambda tx: tx.put("ns", "k", int(tx.get("ns", "k")) + 1))
    assert _read(store, "r1") == 42
    assert issued == []
    assert _read(store, "r2", key="other") is None  # a miss is asked of the file
    assert len(issued) == 1
    store.close()
    plain = SQLiteStore(tmp_path / "c.db")  # what the file holds, read without a cache
    issued = _state_selects(plain)
    assert _read(plain, "r3") == 42 and len(issued) == 1
    plain.close()


def test_a_rolled_back_transaction_leaves_the_cache_as_it_was(tmp_path: Path) -> None:
    """Its writes and what it read of them were only pending: the next read sees the
    committed value, from memory or from the file alike."""
    store = SQLiteStore(tmp_path / "c.db", cache_state=True)
    store.apply("c", "m1", lambda tx: tx.put("ns", "k", 1))
    with pytest.raises(RuntimeError), store.batch():
        store.apply("c", "m2", lambda tx: tx.put("ns", "k", 2))
        assert _read(store, "r1") == 2  # its own write, flushed but not committed
        store.apply("c", "m3", lambda tx: tx.put("ns", "new", 7))
        raise RuntimeError("the commit never happens")
    assert _read(store, "r2") == 1
    assert _read(store, "r3", key="new") is None
    store.close()


def test_a_full_database_leaves_the_cached_sums_exact(tmp_path: Path) -> None:
    """Deliveries that add to a few shared counters fail while SQLite says the file is full
    (`PRAGMA max_page_count`); once there is room, each counter holds exactly the sum of the
    acknowledged messages, in memory and in the file."""
    from integration_core.envelope import Envelope
    from integration_core.errors import StorageError

    def add(e: Envelope, tx: Tx) -> None:
        key = f"total-{e.payload['i'] % 3}"
        tx.put("sums", key, int(tx.get("sums", key) or 0) + int(e.payload["i"]))

    store = SQLiteStore(tmp_path / "full.db", cache_state=True)
    bus = Bus(store)
    bus.subscribe("wms")
    pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
    store._conn.execute(f"PRAGMA max_page_count = {pages + 30}")
    acked: list[int] = []
    failures = 0
    for i in range(5000):
        try:
            bus.publish(env(i, key=f"k{i}", payload={"i": i}), float(i))
            acked.append(i)
            bus.process({"wms": add}, float(i))
        except StorageError:
            failures += 1
            if failures == 20:
                break
    assert failures == 20
    store._conn.execute("PRAGMA max_page_count = 1073741823")
    bus.drain({"wms": add}, 6000.0)
    expected = {f"total-{r}": sum(i for i in acked if i % 3 == r) for r in range(3)}
    assert {k: _read(store, f"r{k}", "sums", k) for k in expected} == expected
    assert store.state("sums") == expected
    store.close()


def test_the_cache_keeps_the_most_recent_values_up_to_its_bound(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from integration_core.bus import sqlite

    monkeypatch.setattr(sqlite, "CACHE_MAX", 10)
    store = SQLiteStore(tmp_path / "c.db", cache_state=True)
    for i in range(25):
        store.apply("c", f"m{i}", partial(_put, f"k{i}", i))
    assert list(store._cache) == [("ns", f"k{i}") for i in range(15, 25)]
    assert _read(store, "r", key="k3") == 3  # evicted: read from the file again
    store.close()
