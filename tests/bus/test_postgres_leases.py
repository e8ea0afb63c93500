"""Several instances sharing one schema (`PostgresStore(instance=...)` and `Membership`): the
partitions split between them, a dead instance's taken over within the lease's bound, a
fenced (stale token) transaction refused with nothing written, per-key order and
exactly-once effects across a takeover. Against the session's throwaway PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from integration_core.bus import Bus, PostgresStore, Tx
from integration_core.bus.membership import Membership
from integration_core.bus.partitions import partition_of
from integration_core.bus.postgres import Fenced
from integration_core.envelope import Envelope
from integration_core.errors import StorageError
from loadtests.pg import PgServer
from tests.factories import env

TTL = 1.0  # seconds: short, so expiry is quick to wait for
N = 16  # partitions: enough to split, few to scan


class Instance:
    """A bus instance as the service runs one: its store, bus and membership."""

    def __init__(self, dsn: str, schema: str, name: str, applied: list[str]) -> None:
        self.name = name
        self.store = PostgresStore(dsn, schema, instance=name, lease_ttl_s=TTL, partitions=N)
        self.bus = Bus(self.store)
        self.bus.subscribe("c", from_beginning=True)
        self.member = Membership(self.bus, self.store)
        self.applied = applied

    def handler(self, e: Envelope, tx: Tx) -> None:
        # The key's history (per-key order) and how often the effect ran (exactly once).
        seen = tx.get("seen", e.key) or []
        tx.put("seen", e.key, [*seen, e.payload["seq"]])
        tx.put("n", e.message_id, (tx.get("n", e.message_id) or 0) + 1)

    def step(self, now: float) -> int:
        self.member.tail(now)
        return len(self.bus.process({"c": self.handler}, now, limit=50))

    @property
    def parts(self) -> set[int]:
        return {p for p in self.store.owned if p >= 0}


@pytest.fixture
def make(pg_server: PgServer, pg_schema: str) -> Iterator[Any]:
    opened: list[Instance] = []

    def new(name: str) -> Instance:
        inst = Instance(pg_server.dsn, pg_schema, name, [])
        opened.append(inst)
        return inst

    yield new
    for inst in opened:
        inst.store.close()


def beat_until(instances: list[Instance], done: Any, timeout_s: float) -> float:
    """Heartbeat every third of the TTL until `done()`; returns the seconds it took."""
    t0 = time.monotonic()
    while not done():
        if time.monotonic() - t0 > timeout_s:
            raise AssertionError(f"not done within {timeout_s} s: "
                                 f"{[(i.name, sorted(i.parts)) for i in instances]}")
        for inst in instances:
            inst.member.heartbeat(0.0)  # the bus clock of these tests starts at 0
        time.sleep(TTL / 3)
    return time.monotonic() - t0


def msg(i: int, key: str) -> Envelope:
    return env(f"{i:04d}", key=key, payload={"seq": i})


def test_partitions_split_between_two_instances_and_a_third_rebalances(make: Any) -> None:
    a = make("a")
    a.member.heartbeat(0.0)
    assert a.parts == set(range(N)) and -1 in a.store.owned  # alone: everything
    b = make("b")
    beat_until([a, b], lambda: len(a.parts) == len(b.parts) == N // 2, 10 * TTL)
    assert a.parts.isdisjoint(b.parts) and a.parts | b.parts == set(range(N))
    assert (-1 in a.store.owned) != (-1 in b.store.owned)  # the singletons' lease: one
    c = make("c")
    beat_until([a, b, c], lambda: sorted(len(i.parts) for i in (a, b, c)) == [5, 5, 6],
               10 * TTL)
    assert a.parts | b.parts | c.parts == set(range(N))
    # A clean stop hands over at once, not after the lease.
    c.store.leave()
    beat_until([a, b], lambda: len(a.parts) + len(b.parts) == N, 2 * TTL)


def test_a_dead_instance_is_taken_over_within_the_bound(make: Any) -> None:
    a, b = make("a"), make("b")
    beat_until([a, b], lambda: len(a.parts) == len(b.parts) == N // 2, 10 * TTL)
    before = b.member.takeovers
    a.store.close()  # killed: no more heartbeats, its leases run out
    took = beat_until([b], lambda: len(b.parts) == N, 5 * TTL)
    # The bound: the lease's time to live plus one heartbeat interval (and slack for a
    # loaded machine).
    assert took <= TTL + TTL / 3 + 1.5, took
    assert b.member.takeovers - before == N // 2


def test_a_fenced_transaction_is_refused_and_writes_nothing(make: Any, pg_server: PgServer,
                                                            pg_schema: str) -> None:
    a, b = make("a"), make("b")
    beat_until([a, b], lambda: len(a.parts) == len(b.parts) == N // 2, 10 * TTL)
    key = next(k for k in (f"k{i}" for i in range(100))
               if partition_of(k, N) in a.parts)
    a.bus.publish(msg(1, key), 0.0)
    a.member.tail(0.0)
    due = a.bus.due(0.0)  # a takes the delivery ... and is paused past its lease
    assert [d.envelope.message_id for d in due] == ["m0001"]
    beat_until([b], lambda: len(b.parts) == N, 5 * TTL)
    with pytest.raises(Fenced):
        a.bus.run(due, {"c": a.handler}, 1.0)
    with psycopg.connect(pg_server.dsn) as conn:  # nothing of it in the database
        assert conn.execute(f'SELECT count(*) FROM "{pg_schema}".inbox').fetchone() == (0,)
        assert conn.execute(f'SELECT count(*) FROM "{pg_schema}".state').fetchone() == (0,)
    assert a.store.fenced == 1
    change = a.member.heartbeat(1.0)  # a re-reads its leases: lost, and its queue dropped
    assert change.lost >= {partition_of(key, N)} and a.bus.backlog("c") == 0
    # The new owner applies it, once.
    b.member.tail(1.0)
    assert b.step(1.0) == 1 and b.store.get_state("seen", key) == [1]


def test_per_key_order_and_exactly_once_across_a_takeover(make: Any) -> None:
    a, b = make("a"), make("b")
    beat_until([a, b], lambda: len(a.parts) == len(b.parts) == N // 2, 10 * TTL)
    keys = [f"sku-{i}|loc" for i in range(24)]
    published: dict[str, list[int]] = {k: [] for k in keys}
    seq = 0

    def publish(inst: Instance, n: int) -> None:
        nonlocal seq
        for _ in range(n):
            seq += 1
            key = keys[seq % len(keys)]
            published[key].append(seq)
            inst.bus.publish(msg(seq, key), float(seq))

    for _ in range(4):  # both publish and deliver, each its own partitions
        publish(a, 40)
        publish(b, 40)
        a.step(0.0)
        b.step(0.0)
    publish(a, 30)
    a.member.tail(0.0)
    stuck = a.bus.due(0.0, limit=10)  # a is paused holding deliveries, past its lease
    assert stuck
    beat_until([b], lambda: len(b.parts) == N, 5 * TTL)
    with pytest.raises(StorageError):
        a.bus.run(stuck, {"c": a.handler}, 2.0)
    publish(b, 40)
    while b.step(3.0) or b.member.tail(3.0):
        pass
    a.member.heartbeat(3.0)  # back: it learns what it lost, then rejoins
    beat_until([a, b], lambda: len(a.parts) == len(b.parts) == N // 2, 10 * TTL)
    publish(a, 40)
    publish(b, 40)
    for _ in range(50):
        if not (a.step(4.0) + b.step(4.0)):
            break
    assert a.bus.backlog("c") == b.bus.backlog("c") == 0
    for key in keys:
        assert b.store.get_state("seen", key) == published[key], key  # in order, no gap
    counts = b.store.state("n")
    assert len(counts) == seq and set(counts.values()) == {1}  # each effect once
    assert b.member.takeovers >= N // 2 and b.member.recovered > 0


def test_a_log_written_by_one_instance_is_partitioned_and_recovered_when_shared(
        make: Any, pg_server: PgServer, pg_schema: str) -> None:
    single = PostgresStore(pg_server.dsn, pg_schema)  # before partitions: no column values
    bus = Bus(single)
    bus.subscribe("c", from_beginning=True)
    keys = [f"key-{i}" for i in range(40)]
    bus.publish_many([msg(i, k) for i, k in enumerate(keys)], 0.0)
    single.close()
    a = make("a")  # the first shared open fills the column with the database's MD5
    with psycopg.connect(pg_server.dsn) as conn:
        rows = conn.execute(f'SELECT envelope::json->>\'key\', partition FROM "{pg_schema}"'
                            ".messages").fetchall()
    assert {k: p for k, p in rows} == {k: partition_of(k, N) for k in keys}  # = Python's
    a.member.heartbeat(0.0)  # owns everything: recovers what was published before
    assert a.bus.backlog("c") == len(keys)
    while a.step(0.0):
        pass
    assert a.store.state("n") == {f"m{i:04d}": 1 for i in range(len(keys))}


def test_a_takeover_recovers_from_the_partition_starts_saved_and_misses_nothing(
        make: Any) -> None:
    a, b = make("a"), make("b")
    beat_until([a, b], lambda: len(a.parts) == len(b.parts) == N // 2, 10 * TTL)
    keys = [k for k in (f"key-{i}" for i in range(200)) if partition_of(k, N) in a.parts][:20]
    a.bus.publish_many([msg(i, keys[i % len(keys)]) for i in range(100)], 0.0)
    a.member.tail(0.0)
    a.bus.process({"c": a.handler}, 0.0, limit=15)  # the heads of 15 keys: 85 left queued
    a.member.advance()
    starts = a.store.partition_starts("c")
    assert set(starts) == a.parts and max(starts.values()) > 1
    lowest = a.bus.lowest_queued("c")
    for key, position in lowest.items():  # never past what is still to do
        assert starts[partition_of(key, N)] <= position
    assert b.member.tail(0.0) == 0  # b read past them: none of its partitions
    a.store.close()  # killed with 85 queued
    beat_until([b], lambda: len(b.parts) == N, 5 * TTL)
    assert b.member.recovered == 85  # from the partitions' starts, up to b's tail
    while b.step(1.0):
        pass
    assert b.store.state("n") == {f"m{i:04d}": 1 for i in range(100)}
