from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_core.bus import SQLiteStore, Store, Tx
from integration_core.bus.wal import Checkpointer
from tests.bus.contract import StoreContract

PAGE = 4096


def fill(store: SQLiteStore, commits: int, rows: int = 20, tag: str = "") -> None:
    """Commits of `rows` state rows of about a page each."""
    blob = "x" * PAGE
    for c in range(commits):
        def write(tx: Tx, c: int = c) -> None:
            for r in range(rows):
                tx.put("blobs", f"{tag}{c}-{r}", blob)
        store.apply("filler", f"{tag}m{c}", write)


def wal_bytes(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size if wal.exists() else 0


class TestStoreUnderCheckpointer(StoreContract):
    """The whole store contract with automatic checkpoints off and a checkpointer asking for a
    RESTART every few milliseconds, the harshest schedule it has."""

    @pytest.fixture(autouse=True)
    def _dir(self, tmp_path: Path) -> Iterator[None]:
        self.path = tmp_path / "bus.db"
        self.checkpointers: list[Checkpointer] = []
        yield
        for c in self.checkpointers:
            c.close()

    def _open(self) -> Store:
        store = SQLiteStore(self.path, autocheckpoint=False)
        c = Checkpointer(self.path, interval_s=0.002, restart_frames=0)
        c.start()
        self.checkpointers.append(c)
        return store

    def make_store(self) -> Store:
        return self._open()

    def reopen(self, store: Store) -> Store:
        store.close()
        return self._open()


def test_without_autocheckpoint_the_log_grows_until_a_checkpoint_lets_it_rewind(
        tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    store = SQLiteStore(path, autocheckpoint=False)
    fill(store, 100)  # about 2,000 pages: SQLite alone would have checkpointed at 1,000
    assert wal_bytes(path) > 1500 * PAGE
    c = Checkpointer(path)
    c.run_once()
    assert c.stats.log_frames > 1500 and c.stats.restarts == 0
    fill(store, 1, tag="after")  # this commit finds the log copied: it starts over
    c.run_once()
    assert c.stats.log_frames < 100
    assert len(store.state("blobs")) == 101 * 20
    c.close()
    store.close()


def test_sqlite_default_checkpoints_inside_commits(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    store = SQLiteStore(path)  # autocheckpoint on: the comparison for the test above
    fill(store, 100)
    c = Checkpointer(path)
    c.run_once()
    assert c.stats.log_frames < 1100
    c.close()
    store.close()


def test_a_log_over_the_limit_is_restarted(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    store = SQLiteStore(path, autocheckpoint=False)
    fill(store, 10)
    c = Checkpointer(path, restart_frames=50)
    c.run_once()
    assert c.stats.restarts == 1
    fill(store, 1, tag="after")
    c.run_once()
    assert c.stats.restarts == 1 and c.stats.log_frames < 50
    c.close()
    store.close()


def test_writes_that_read_first_are_not_refused_while_a_restart_holds_the_log(
        tmp_path: Path) -> None:
    # A deferred transaction that has read cannot wait for the write lock: without BEGIN
    # IMMEDIATE this fails with "database is locked" within a few batches.
    path = tmp_path / "c.db"
    store = SQLiteStore(path, autocheckpoint=False)
    c = Checkpointer(path, interval_s=0.0005, restart_frames=0)
    c.start()

    def bump(tx: Tx) -> None:
        tx.put("n", "count", (tx.get("n", "count") or 0) + 1)

    deadline = time.monotonic() + 1.0
    n = 0
    while time.monotonic() < deadline:
        results = store.apply_many("c", [(f"m{n}-{i}", bump) for i in range(50)])
        assert results == [True] * 50
        n += 1
        time.sleep(0.001)  # a writer that never pauses would starve the RESTART
    c.close()
    assert c.stats.restarts > 10 and c.stats.failures == 0
    assert store.get_state("n", "count") == 50 * n
    store.close()


def test_the_thread_checkpoints_while_a_writer_commits(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    store = SQLiteStore(path, autocheckpoint=False)
    c = Checkpointer(path, interval_s=0.01, restart_frames=500)
    c.start()
    for batch in range(300):  # a commit every few milliseconds, as the service makes them
        fill(store, 1, tag=f"{batch}-")
        time.sleep(0.002)
    c.close()
    assert c.stats.checkpoints > 10 and c.stats.failures == 0
    # Bounded: the commits wrote over 12,000 pages (rows of a page spill into a second one);
    # the log file, which a rewind reuses rather than shrinks, never held 2,000.
    assert wal_bytes(path) < 2000 * PAGE
    assert len(store.state("blobs")) == 300 * 20
    store.close()


def test_a_failing_checkpoint_is_counted_and_retried(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"not a database" * 1000)
    c = Checkpointer(path, interval_s=0.005)
    c.start()
    deadline = time.monotonic() + 5.0
    while c.stats.failures < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    c.close()
    assert c.stats.failures >= 2 and c.stats.checkpoints == 0
    assert not any(t.name == "wal-junk.db" for t in threading.enumerate())


def test_interval_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Checkpointer(tmp_path / "x.db", interval_s=0)


def test_start_twice_is_an_error(tmp_path: Path) -> None:
    c = Checkpointer(tmp_path / "x.db")
    c.start()
    with pytest.raises(RuntimeError, match="already started"):
        c.start()
    c.close()
