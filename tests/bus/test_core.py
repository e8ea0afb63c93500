"""The bus's hooks for owning only some keys (`Bus.owns`, `queue_published`, `adopt`, `forget`,
`holds`, `lowest_queued`), on the memory store: what `Membership` builds several instances
from (tested on PostgreSQL in test_postgres_leases.py)."""

from __future__ import annotations

from integration_core.bus import Bus, MemoryStore, Tx
from integration_core.envelope import Envelope
from tests.factories import env


def _noop(e: Envelope, tx: Tx) -> None:
    tx.put("seen", e.message_id, True)


def test_a_bus_queues_only_the_keys_it_owns_and_what_it_adopts() -> None:
    store = MemoryStore()
    bus = Bus(store)
    bus.subscribe("c")
    bus.owns = lambda key: key != "theirs"
    bus.publish(env(1, key="mine"), 0.0)
    bus.publish(env(2, key="theirs"), 0.0)
    assert [d.envelope.message_id for d in bus.due(0.0)] == ["m1"]  # m2: another's key
    bus.queue_published = False
    bus.publish(env(3, key="mine"), 0.0)  # logged, not queued: the driver adopts it
    assert bus.backlog("c") == 1
    entries = [e for e in store.log(1) if e.envelope.message_id != "m1"]
    assert bus.adopt(entries, 0.0) == 1  # m3; m2 is still not this bus's
    assert [e.message_id for e in bus.in_flight("c")] == ["m1", "m3"]
    assert bus.lowest_queued("c") == {"mine": 1}


def test_forget_drops_queues_and_in_flight_deliveries_of_keys_given_up() -> None:
    bus = Bus(MemoryStore())
    bus.subscribe("c")
    for i, key in enumerate(["a", "a", "b", "b"]):
        bus.publish(env(i, key=key), 0.0)
    out = bus.due(0.0)
    assert {d.envelope.key for d in out} == {"a", "b"} and all(bus.holds(d) for d in out)
    assert bus.forget(lambda key: key == "a") == 2
    gone = next(d for d in out if d.envelope.key == "a")
    kept = next(d for d in out if d.envelope.key == "b")
    assert not bus.holds(gone) and bus.holds(kept)
    assert bus.backlog("c") == 2 and bus.lowest_queued("c") == {"b": 3}
    bus.ack(kept, 1.0)
    assert [d.envelope.message_id for d in bus.due(1.0)] == ["m3"]  # "a" never comes back
    assert bus.next_due_at() is None
    bus.drain({"c": _noop}, 2.0)
    assert bus.backlog("c") == 1  # m3 in flight from due(): not this drain's
