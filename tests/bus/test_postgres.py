from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from integration_core.bus import Bus, Effect, PostgresStore, RetryPolicy, Store, Tx
from integration_core.envelope import Envelope
from integration_core.errors import StorageError
from loadtests.pg import PgServer
from tests.bus.contract import StoreContract, counting, counting_handler
from tests.factories import env


class TestPostgresStore(StoreContract):
    cache = False

    @pytest.fixture(autouse=True)
    def _server(self, pg_server: PgServer, pg_schema: str) -> Iterator[None]:
        self.dsn, self.schema = pg_server.dsn, pg_schema
        self.opened: list[PostgresStore] = []
        yield
        for s in self.opened:  # the contract leaves the last reopened store to us
            s.close()

    def make_store(self) -> Store:
        store = PostgresStore(self.dsn, self.schema, cache_state=self.cache)
        self.opened.append(store)
        return store

    def reopen(self, store: Store) -> Store:
        store.close()
        return self.make_store()


class TestPostgresStoreCached(TestPostgresStore):
    """The same contract with the state cache on (one writer per schema)."""

    cache = True


# -- PostgreSQL's own failure modes -------------------------------------------------------------


def _admin(server: PgServer) -> psycopg.Connection[tuple[Any, ...]]:
    return psycopg.connect(server.dsn, autocommit=True)


def _wait_until_blocked(server: PgServer, pid: int) -> None:
    """Until backend `pid` waits on a lock (the other transaction holds it)."""
    with _admin(server) as admin:
        for _ in range(200):
            row = admin.execute(
                "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
            ).fetchone()
            if row and row[0] == "Lock":
                return
            time.sleep(0.02)
    raise AssertionError(f"backend {pid} never waited on a lock")


def test_a_server_crash_keeps_everything_acknowledged_and_the_store_reconnects(
    pg_server: PgServer, pg_schema: str
) -> None:
    """`pg_ctl stop -m immediate` is a crash (no checkpoint: recovery replays the WAL). What
    was acknowledged before it is there after; the same store object fails while the
    server is away and carries on once it is back, without being reopened."""
    store = PostgresStore(pg_server.dsn, pg_schema)
    bus = Bus(store, RetryPolicy(jitter=0.0))
    bus.subscribe("erp")
    bus.publish_many([env(i, key=f"k{i % 3}") for i in range(10)], 0.0)
    bus.process({"erp": counting_handler}, 1.0)  # heads of the 3 keys applied
    bus.ack_many(bus.due(2.0), 2.0)  # 3 more acked without effect
    pg_server.stop("immediate")
    with pytest.raises(StorageError):
        bus.publish(env(10), 3.0)
    with pytest.raises(StorageError):
        bus.process({"erp": counting_handler}, 3.0)
    pg_server.start()
    assert not bus.publish(env(10, key="k1"), 4.0).duplicate  # reconnected by itself
    bus.drain({"erp": counting_handler}, 5.0)
    applied = store.state("applied")
    assert applied == {f"m{i}": 1 for i in (0, 1, 2, 6, 7, 8, 9, 10)}
    store.close()
    again = PostgresStore(pg_server.dsn, pg_schema)
    assert [e.envelope.message_id for e in again.log()] == [f"m{i}" for i in range(11)]
    assert all(again.processed("erp", f"m{i}") for i in range(11))
    assert again.state("applied") == applied
    again.close()


def test_a_connection_killed_mid_transaction_applies_nothing(
    pg_server: PgServer, pg_schema: str
) -> None:
    store = PostgresStore(pg_server.dsn, pg_schema)
    bus = Bus(store, RetryPolicy(jitter=0.0))
    bus.subscribe("erp")
    bus.publish_many([env(i, key=f"k{i}") for i in range(3)], 0.0)
    assert store._conn is not None
    backend = store._conn.info.backend_pid
    seen: list[str] = []

    def killed_midway(e: Envelope, tx: Tx) -> None:
        seen.append(e.message_id)
        if len(seen) == 2:  # m0 staged, m1's read goes to a connection that is gone
            with _admin(pg_server) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
        counting(tx, e)

    with pytest.raises(StorageError):
        bus.process({"erp": killed_midway}, 1.0)
    assert seen == ["m0", "m1"] and bus.backlog("erp") == 3
    other = PostgresStore(pg_server.dsn, pg_schema)
    assert other.state("applied") == {}
    assert not any(other.processed("erp", f"m{i}") for i in range(3))
    other.close()
    bus.drain({"erp": counting_handler}, 2.0)  # the same store, on a new connection
    assert store.state("applied") == {"m0": 1, "m1": 1, "m2": 1}
    store.close()


@pytest.mark.parametrize("first_commits", [True, False])
def test_concurrent_appends_of_one_id_store_it_once(
    pg_server: PgServer, pg_schema: str, first_commits: bool
) -> None:
    """Two connections append m1 at once: the second waits for the first's transaction. If
    it commits, the second hears "duplicate"; if it rolls back, the second stores it."""
    a = PostgresStore(pg_server.dsn, pg_schema)
    b = PostgresStore(pg_server.dsn, pg_schema)
    got: dict[str, int | None] = {}
    with contextlib.suppress(RuntimeError), a.batch():
        got["a"] = a.append(env(1), 0.0)
        assert b._conn is not None
        thread = threading.Thread(target=lambda: got.update(b=b.append(env(1), 0.0)))
        thread.start()
        _wait_until_blocked(pg_server, b._conn.info.backend_pid)
        if not first_commits:
            raise RuntimeError("the first writer's transaction fails")
    thread.join(10)
    assert got["a"] == 1
    assert got["b"] == (None if first_commits else 1)
    assert [e.envelope.message_id for e in b.log()] == ["m1"]
    a.close()
    b.close()


def test_concurrent_applies_of_one_message_run_the_effect_once(
    pg_server: PgServer, pg_schema: str
) -> None:
    a = PostgresStore(pg_server.dsn, pg_schema)
    b = PostgresStore(pg_server.dsn, pg_schema)
    e = env(1)
    got: dict[str, bool] = {}
    with a.batch():
        got["a"] = a.apply("erp", "m1", lambda tx: counting(tx, e))
        assert b._conn is not None
        thread = threading.Thread(
            target=lambda: got.update(b=b.apply("erp", "m1", lambda tx: counting(tx, e)))
        )
        thread.start()
        _wait_until_blocked(pg_server, b._conn.info.backend_pid)
    thread.join(10)
    assert got == {"a": True, "b": False} and b.state("applied") == {"m1": 1}
    a.close()
    b.close()


def test_a_stale_cached_read_fails_the_batch_instead_of_losing_an_update(
    pg_server: PgServer, pg_schema: str
) -> None:
    """The cache assumes one writer; when another connection writes anyway, the version
    check of the state write catches it: the batch fails (an outage, redelivered) and the
    retry reads the new value."""
    cached = PostgresStore(pg_server.dsn, pg_schema, cache_state=True)
    with pytest.raises(StorageError, match="held by another store"):
        PostgresStore(pg_server.dsn, pg_schema, cache_state=True)
    other = PostgresStore(pg_server.dsn, pg_schema)

    def add(n: int) -> Effect:
        return lambda tx: tx.put("stock", "A", (tx.get("stock", "A") or 0) + n)

    assert cached.apply("wms", "m1", add(1))  # A = 1, cached
    assert other.apply("wms", "m2", add(10))  # A = 11 behind the cache's back
    with pytest.raises(StorageError, match="changed by another connection"):
        cached.apply("wms", "m3", add(100))
    assert not cached.processed("wms", "m3")
    assert cached.apply("wms", "m3", add(100))  # the retry reads 11
    assert other.get_state("stock", "A") == 111
    cached.close()
    other.close()


def _round_trips(store: PostgresStore, run: Callable[[], object]) -> list[str]:
    """The server's answers to what `run` sent, one line per round trip: the commands each
    answer completed (libpq's trace of the connection's protocol messages)."""
    psycopg_pq = psycopg.pq
    assert store._conn is not None
    pgconn = store._conn.pgconn
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(psycopg_pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            run()
        finally:
            pgconn.untrace()
        trace.seek(0)
        lines = trace.read().splitlines()
    trips, done = [], []
    for line in lines:
        if not line.startswith("B\t"):  # what we sent (a long message may span lines)
            continue
        _, _, kind, *rest = line.split("\t")
        if kind == "CommandComplete":
            done.append(rest[0].strip().strip('"').split()[0])
        elif kind == "ReadyForQuery":
            trips.append(" ".join(done))
            done = []
    return trips


def test_a_batch_begins_with_its_first_statement_and_an_ack_is_one_round_trip(
    pg_server: PgServer, pg_schema: str
) -> None:
    """Each round trip is a wake-up of the server and of the caller (the service's event loop
    waits for each): BEGIN travels with the first statement, an ack's inbox records with the
    COMMIT, and a batch that wrote nothing sends nothing."""
    store = PostgresStore(pg_server.dsn, pg_schema)
    bus = Bus(store, RetryPolicy(jitter=0.0))
    bus.subscribe("erp")
    assert _round_trips(store, lambda: bus.publish_many([env(i, key=f"k{i}")
                                                         for i in range(5)], 0.0)) == [
        "BEGIN INSERT", "COMMIT"]
    due = bus.due(1.0)
    assert len(due) == 5
    assert _round_trips(store, lambda: bus.ack_many(due, 1.0)) == ["BEGIN INSERT COMMIT"]
    assert all(store.processed("erp", f"m{i}") for i in range(5))

    def nothing() -> None:
        with store.batch():
            pass

    assert _round_trips(store, nothing) == []
    store.close()


def test_a_write_held_for_the_commit_that_fails_fails_its_batch(
    pg_server: PgServer, pg_schema: str
) -> None:
    """The inbox records of acks wait for the COMMIT: when the connection dies before it, the
    batch raises StorageError and nothing of it is written."""
    store = PostgresStore(pg_server.dsn, pg_schema)
    store.append_many([env(1), env(2)], 0.0)
    assert store._conn is not None
    backend = store._conn.info.backend_pid
    with pytest.raises(StorageError), store.batch():
        store.mark_processed_many("erp", ["m1", "m2"])
        with _admin(pg_server) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    assert not store.processed("erp", "m1")  # on a new connection
    store.mark_processed_many("erp", ["m1"])  # outside a batch: written at once
    other = PostgresStore(pg_server.dsn, pg_schema)
    assert other.processed("erp", "m1") and not other.processed("erp", "m2")
    other.close()
    store.close()


def test_an_unreachable_server_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="postgres"):
        PostgresStore("host=127.0.0.1 port=1 user=postgres dbname=postgres")
