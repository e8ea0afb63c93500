"""The contract every bus store must meet. Subclass `StoreContract` per adapter.

`make_store` opens a store; `reopen` simulates a crash and restart: the old store object is
abandoned (uncommitted writes lost) and a new one is opened on the same durable state.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from integration_core.bus import INGRESS, Bus, Outcome, RetryPolicy, Store, Tx
from integration_core.envelope import Envelope, open_payload
from integration_core.errors import NotFound, PayloadError, StorageError, TransientError
from integration_core.models import Movement
from tests.bus.faulty import FailingStore
from tests.factories import env

FAST = RetryPolicy(max_attempts=3, initial_delay=1.0, multiplier=2.0, max_delay=10.0, jitter=0.0)


def counting(tx: Tx, e: Envelope) -> None:
    tx.put("applied", e.message_id, (tx.get("applied", e.message_id) or 0) + 1)


def counting_handler(e: Envelope, tx: Tx) -> None:
    counting(tx, e)


class StoreContract:
    def make_store(self) -> Store:
        raise NotImplementedError

    def reopen(self, store: Store) -> Store:
        raise NotImplementedError

    @pytest.fixture
    def store(self) -> Any:
        s = self.make_store()
        yield s
        s.close()

    def bus(self, store: Store, policy: RetryPolicy = FAST) -> Bus:
        return Bus(store, policy, np.random.default_rng(7))

    # -- publish ------------------------------------------------------------------------------

    def test_duplicate_publish_is_stored_once_and_reported(self, store: Store) -> None:
        bus = self.bus(store)
        first = bus.publish(env(1), 0.0)
        second = bus.publish(env(1, payload={"different": True}), 1.0)
        same = bus.publish(env(1), 2.0)
        assert not first.duplicate and first.position == 1
        assert second.duplicate and second.position is None and second.conflict
        assert same.duplicate and not same.conflict  # the same content again: a plain retry
        assert store.find("m1") == env(1) and store.find("m404") is None
        assert [e.envelope.message_id for e in store.log()] == ["m1"]
        assert bus.counters.published == 1 and bus.counters.duplicate_publishes == 2
        assert bus.counters.conflicting_publishes == 1

    def test_dedupe_horizon_survives_restart(self, store: Store) -> None:
        self.bus(store).publish(env(1), 0.0)
        store = self.reopen(store)
        assert self.bus(store).publish(env(1), 10_000_000.0).duplicate
        store.close()

    def test_publish_many_acknowledges_each(self, store: Store) -> None:
        results = self.bus(store).publish_many([env(1), env(2), env(1)], 0.0)
        assert [r.duplicate for r in results] == [False, False, True]

    # -- subscriptions and ordering -----------------------------------------------------------

    def test_filter_by_message_type(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp", ["inventory.movement"])
        bus.subscribe("audit")
        bus.publish(env(1, key="a", type="inventory.movement"), 0.0)
        bus.publish(env(2, key="b", type="order.placed"), 0.0)
        got = [(d.consumer, d.envelope.message_id) for d in bus.due(0.0)]
        assert sorted(got) == [("audit", "m1"), ("audit", "m2"), ("erp", "m1")]

    def test_new_consumer_starts_at_end_unless_from_beginning(self, store: Store) -> None:
        bus = self.bus(store)
        bus.publish(env(1), 0.0)
        bus.subscribe("late")
        bus.subscribe("history", from_beginning=True)
        assert [d.consumer for d in bus.due(0.0)] == ["history"]

    def test_failing_message_holds_back_only_its_own_key(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        for i, key in enumerate(["a", "a", "b", "b"]):
            bus.publish(env(i, key=key), 0.0)
        order: list[str] = []

        def handler(e: Envelope, tx: Tx) -> None:
            if e.message_id == "m0" and "m0-failed" not in order:
                order.append("m0-failed")
                raise TransientError("ERP busy")
            order.append(e.message_id)

        bus.process({"erp": handler}, 0.0)
        # m0 failed; m1 (same key) waits, m2 and m3 (key b) go through.
        assert order == ["m0-failed", "m2"]
        bus.process({"erp": handler}, 0.0)
        assert order == ["m0-failed", "m2", "m3"]
        assert bus.next_due_at() == pytest.approx(1.0)
        bus.drain({"erp": handler}, 0.0)
        assert order == ["m0-failed", "m2", "m3", "m0", "m1"]

    def test_in_flight_message_blocks_its_key_until_acked(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1), 0.0)
        bus.publish(env(2), 0.0)
        (d1,) = bus.due(0.0)
        assert bus.due(100.0) == []
        bus.ack(d1, 1.0)
        assert [d.envelope.message_id for d in bus.due(1.0)] == ["m2"]
        with pytest.raises(ValueError, match="not in flight"):
            bus.ack(d1, 2.0)

    # -- retry and dead letters ---------------------------------------------------------------

    def test_retries_with_backoff_then_dead_letters_with_cause(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1), 0.0)
        attempts: list[float] = []

        def down(e: Envelope, tx: Tx) -> None:
            attempts.append(now)
            raise TransientError("ERP unavailable")

        now = 0.0
        while (nxt := bus.next_due_at()) is not None:
            now = nxt
            bus.process({"erp": down}, now)
        assert attempts == [0.0, 1.0, 3.0]  # delays 1 then 2 (no jitter), 3 attempts
        (dl,) = bus.dead_letters()
        assert (dl.consumer, dl.message_id, dl.attempts) == ("erp", "m1", 3)
        assert dl.cause_type == "TransientError" and "unavailable" in dl.cause_message
        assert dl.transient  # the cause as data: a redrive may succeed as it is
        assert (dl.first_failure_at, dl.last_failure_at) == (0.0, 3.0)
        assert dl.envelope == env(1)
        assert bus.counters.retries == 2 and bus.counters.dead_lettered == 1
        assert bus.backlog("erp") == 0

    def test_non_retryable_error_dead_letters_at_once(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1), 0.0)

        def reject(e: Envelope, tx: Tx) -> None:
            raise PayloadError("sku", "unknown SKU 'X'")

        assert bus.process({"erp": reject}, 0.0) == [Outcome.DEAD]
        assert bus.dead_letters()[0].attempts == 1
        assert not bus.dead_letters()[0].transient  # refused: fix the cause first

    def test_malformed_payload_is_dead_lettered_and_the_key_moves_on(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bad = env(1, key="A@L1", type="inventory.movement", payload={"movement_id": "x"},
                  schema_version=2)
        good = env(2, key="A@L1", type="inventory.movement", schema_version=2, payload={
            "movement_id": "mv2", "kind": "receipt", "sku": "A", "location": "L1",
            "quantity": "3", "occurred_at": "2026-01-05T08:00:00Z",
        })
        bus.publish(bad, 0.0)
        bus.publish(good, 0.0)
        seen: list[int] = []

        def apply(e: Envelope, tx: Tx) -> None:
            m = open_payload(e)
            assert isinstance(m, Movement)
            seen.append(m.delta)

        bus.drain({"erp": apply}, 0.0)
        assert seen == [3]
        (dl,) = bus.dead_letters()
        assert dl.cause_type == "ValidationError" and "kind" in dl.cause_message
        assert dl.envelope == bad

    def test_malformed_envelope_goes_to_ingress_dead_letters_and_can_be_fixed(
        self, store: Store
    ) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        raw = '{"message_id": "m9", "type": "test.event"}'
        result = bus.publish_raw(raw, 5.0)
        assert result.position is None
        (dl,) = bus.dead_letters()
        assert dl.consumer == INGRESS and dl.raw == raw and dl.message_id == "m9"
        assert dl.cause_type == "ValidationError" and "source" in dl.cause_message
        assert bus.publish_raw(b"\xff not json", 6.0).position is None
        with pytest.raises(ValueError, match="corrected envelope"):
            bus.requeue(dl.id, 7.0)
        bus.requeue(dl.id, 7.0, fixed=env(9))
        assert [d.envelope.message_id for d in bus.due(7.0)] == ["m9"]
        assert len(bus.dead_letters()) == 1  # the undecodable bytes remain

    def test_requeue_after_fix_applies_the_message(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1), 0.0)
        known: set[str] = set()

        def apply(e: Envelope, tx: Tx) -> None:
            if "m1" not in known:
                raise PayloadError("sku", "unknown SKU")
            counting(tx, e)

        bus.drain({"erp": apply}, 0.0)
        (dl,) = bus.dead_letters()
        known.add("m1")  # the item master was fixed
        bus.requeue(dl.id, 10.0)
        bus.drain({"erp": apply}, 10.0)
        assert bus.dead_letters() == [] and store.state("applied") == {"m1": 1}
        with pytest.raises(NotFound):
            bus.requeue(dl.id, 11.0)

    def test_a_replayed_dead_letter_that_succeeds_is_no_longer_dead(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1), 0.0)
        broken = True

        def apply(e: Envelope, tx: Tx) -> None:
            if broken:
                raise TransientError("ERP down")
            counting(tx, e)

        bus.drain({"erp": apply}, 0.0)
        assert [d.message_id for d in bus.dead_letters()] == ["m1"]
        broken = False
        bus.replay("erp", 100.0)
        bus.drain({"erp": apply}, 100.0)
        assert bus.dead_letters() == [] and store.state("applied") == {"m1": 1}

    def test_an_effect_that_mutates_what_it_read_and_fails_leaves_no_trace(
        self, store: Store
    ) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1, key="a"), 0.0)
        bus.publish(env(2, key="a"), 0.0)

        def first(e: Envelope, tx: Tx) -> None:
            tx.put("rows", "a", {"lines": [1]})

        bus.process({"erp": first}, 0.0)

        def mutate_then_fail(e: Envelope, tx: Tx) -> None:
            rows = tx.get("rows", "a")
            rows["lines"].append(99)
            raise TransientError("after mutating")

        bus.process({"erp": mutate_then_fail}, 0.0)
        assert store.state("rows") == {"a": {"lines": [1]}}

    def test_state_values_keep_their_type(self, store: Store) -> None:
        values: dict[str, Any] = {
            "zero": 0, "neg": -7, "big": 10**15, "true": True, "half": 1.5, "digits": "42",
            "minus": "-3", "none": None, "doc": {"a": [1, "2"], "b": -1},
        }

        def write(tx: Tx) -> None:
            for k, v in values.items():
                tx.put("v", k, v)

        assert store.apply("c", "m1", write)
        store = self.reopen(store)
        got = store.state("v")
        assert got == values and {k: type(v) for k, v in got.items()} == {
            k: type(v) for k, v in values.items()}
        assert [store.get_state("v", k) for k in values] == list(values.values())
        store.close()

    def test_state_by_key_prefix(self, store: Store) -> None:
        def write(tx: Tx) -> None:
            for key, v in (("SKU-1\tA", 1), ("SKU-1\tB", 2), ("SKU-10\tA", 3), ("SKU-2", 4),
                           ("SKU-1", 5)):
                tx.put("rows", key, v)
            tx.put("other", "SKU-1\tA", 9)

        store.apply("c", "m1", write)
        assert store.state("rows", "SKU-1\t") == {"SKU-1\tA": 1, "SKU-1\tB": 2}
        assert store.state("rows", "SKU-1") == {"SKU-1\tA": 1, "SKU-1\tB": 2,
                                                "SKU-10\tA": 3, "SKU-1": 5}
        assert store.state("rows", "SKU-3") == {}
        assert len(store.state("rows")) == 5 and store.state("other") == {"SKU-1\tA": 9}

    def test_a_store_failure_mid_batch_leaves_no_delivery_stuck(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1, key="a"), 0.0)

        def crash(e: Envelope, tx: Tx) -> None:
            raise SystemExit("the process is going down")  # not an Exception: propagates

        with pytest.raises(SystemExit):
            bus.process({"erp": crash}, 0.0)
        assert not store.processed("erp", "m1")
        assert [d.envelope.message_id for d in bus.due(0.0)] == ["m1"]

    def test_jitter_is_deterministic_by_seed(self, store: Store) -> None:
        policy = RetryPolicy(jitter=0.5)
        a = [policy.delay(n, np.random.default_rng(3)) for n in range(1, 6)]
        b = [policy.delay(n, np.random.default_rng(3)) for n in range(1, 6)]
        assert a == b and all(0.5 <= x / min(300, 2 ** (n)) <= 1.5 for n, x in enumerate(a))

    # -- durable inbox ------------------------------------------------------------------------

    def test_effect_and_inbox_record_commit_together(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1), 0.0)

        def half_done(e: Envelope, tx: Tx) -> None:
            counting(tx, e)
            raise TransientError("crashed after writing")

        bus.process({"erp": half_done}, 0.0)
        assert store.state("applied") == {} and not store.processed("erp", "m1")

    def test_crash_between_effect_and_ack_does_not_apply_twice(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1), 0.0)
        bus.publish(env(2), 0.0)
        (d1,) = bus.due(0.0)
        # The effect commits, then the process dies before the ack reaches the bus.
        store.apply("erp", "m1", lambda tx: counting(tx, d1.envelope))
        store = self.reopen(store)
        bus = self.bus(store)
        bus.subscribe("erp")
        assert [e.message_id for e in bus.in_flight("erp")] == ["m2"]
        bus.drain({"erp": lambda e, tx: counting(tx, e)}, 1.0)
        assert store.state("applied") == {"m1": 1, "m2": 1}
        assert bus.counters.redelivered == 1, bus.counters  # m2 may have been seen pre-crash
        store.close()

    def test_redelivery_of_an_applied_message_is_skipped(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1), 0.0)
        (d1,) = bus.due(0.0)
        # The effect commits but the ack is lost (driver timed out): the bus retries.
        store.apply("erp", "m1", lambda tx: counting(tx, d1.envelope))
        assert bus.nack(d1, TransientError("ack timed out"), 0.0) == Outcome.RETRY
        assert bus.drain({"erp": lambda e, tx: counting(tx, e)}, 0.0) == 1.0
        assert store.state("applied") == {"m1": 1}
        assert bus.counters.duplicates_skipped == 1 and bus.counters.redelivered == 1

    def test_a_plain_ack_is_not_redelivered_after_restart(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1, key="a"), 0.0)
        bus.publish(env(2, key="b"), 0.0)
        first, _ = bus.due(0.0)
        bus.ack(first, 1.0)  # the effect happened elsewhere (a remote call)
        store = self.reopen(store)
        bus = self.bus(store)
        bus.subscribe("erp")
        assert [e.message_id for e in bus.in_flight("erp")] == [
            m for m in ("m1", "m2") if m != first.envelope.message_id]
        store.close()

    def test_acks_in_one_write_are_not_redelivered_after_restart(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.subscribe("wms")
        for i in range(1, 5):
            bus.publish(env(i, key=f"k{i}"), 0.0)
        due = bus.due(0.0)
        acked = [d for d in due if d.envelope.message_id in ("m1", "m3")]
        bus.ack_many(acked, 1.0)
        assert bus.counters.acked == 4 and bus.backlog("erp") == bus.backlog("wms") == 2
        store = self.reopen(store)
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.subscribe("wms")
        for consumer in ("erp", "wms"):
            assert [e.message_id for e in bus.in_flight(consumer)] == ["m2", "m4"]
        store.close()

    def test_dead_letters_and_pending_survive_restart(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.publish(env(1, key="a"), 0.0)
        bus.publish(env(2, key="b"), 0.0)

        def reject_m1(e: Envelope, tx: Tx) -> None:
            if e.message_id == "m1":
                raise PayloadError("x", "bad")

        bus.process({"erp": reject_m1}, 0.0, limit=1)
        store = self.reopen(store)
        bus = self.bus(store)
        bus.subscribe("erp")
        assert [d.message_id for d in bus.dead_letters()] == ["m1"]
        assert [d.envelope.message_id for d in bus.due(0.0)] == ["m2"]
        store.close()

    def test_advanced_starts_skip_finished_history_and_keep_what_is_left(
            self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.subscribe("wms")
        for i in range(1, 7):  # positions 1 to 6
            bus.publish(env(i, key="a" if i % 2 else "b"), 0.0)

        def reject_m2(e: Envelope, tx: Tx) -> None:
            if e.message_id == "m2":
                raise PayloadError("x", "bad")
            counting(tx, e)

        for _ in range(4):  # a key's messages go one at a time: m2 dead, the rest applied
            bus.process({"erp": reject_m2}, 0.0)
        assert bus.backlog("erp") == 0
        bus.publish(env(7, key="b"), 1.0)
        bus.requeue("erp/2", 1.0)  # m2 queued again, behind the newer m7 of its key
        heads = bus.due(1.0, consumers=["wms"])  # wms: m1 and m2 in flight, not acked yet
        assert [d.envelope.message_id for d in heads] == ["m1", "m2"]
        starts = bus.advance_starts()
        # erp still needs the requeued m2 (position 2); wms needs m1 onwards.
        assert starts == {"erp": 2, "wms": 1}
        assert store.subscription("erp") == (None, 2)
        bus.ack_many(heads, 2.0)
        bus.drain({"erp": reject_m2, "wms": lambda e, tx: counting(tx, e)}, 2.0)
        assert bus.advance_starts() == {"erp": 8, "wms": 8}  # m2 dead again: finished too
        bus.publish(env(8, key="a"), 3.0)
        store = self.reopen(store)
        bus = self.bus(store)
        bus.subscribe("erp")
        bus.subscribe("wms")
        # After the restart each consumer gets exactly what it had not finished.
        assert [d.envelope.message_id for d in bus.due(4.0, consumers=["erp"])] == ["m8"]
        assert [d.envelope.message_id for d in bus.due(4.0, consumers=["wms"])] == ["m8"]
        assert [d.message_id for d in bus.dead_letters()] == ["m2"]
        store.close()

    def test_advanced_start_with_nothing_queued_is_the_end_of_the_log(
            self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        for i in range(3):
            bus.publish(env(i), 0.0)
        bus.drain({"erp": lambda e, tx: counting(tx, e)}, 0.0)
        assert bus.advance_starts() == {"erp": 4}
        store = self.reopen(store)
        bus = self.bus(store)
        bus.subscribe("erp")
        assert bus.backlog("erp") == 0 and bus.replay("erp", 1.0) == 3  # replay reaches back
        store.close()

    # -- replay -------------------------------------------------------------------------------

    def test_replay_is_idempotent_through_the_inbox(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        for i in range(4):
            bus.publish(env(i), float(i))
        handlers = {"erp": lambda e, tx: counting(tx, e)}
        bus.drain(handlers, 4.0)
        assert bus.replay("erp", 5.0, from_position=2) == 3
        bus.drain(handlers, 5.0)
        assert store.state("applied") == {f"m{i}": 1 for i in range(4)}
        assert bus.counters.replayed == 3 and bus.counters.duplicates_skipped == 3

    def test_replay_from_time_to_a_fresh_consumer(self, store: Store) -> None:
        bus = self.bus(store)
        for i in range(4):
            bus.publish(env(i), float(i))
        bus.subscribe("rebuilt")
        assert bus.replay("rebuilt", 9.0, from_time=2.0) == 2
        got = [d.envelope.message_id for d in bus.due(9.0)]
        assert got == ["m2"] and all(d.replay for d in bus.due(9.0)) is True

    # -- storage failures ---------------------------------------------------------------------

    @pytest.mark.parametrize("seed", range(6))
    def test_random_store_failures_lose_nothing_and_apply_once(self, store: Store,
                                                               seed: int) -> None:
        """Writes and commits fail at random (a disk that fills and frees) while messages are
        published, processed through the inbox, posted to a remote consumer and acked or
        nacked, dead-lettered and requeued, starts saved and the bus restarted. Once the store
        writes again and everything drained: every acknowledged publish was applied exactly
        once by the local consumer and recorded done for the remote one, in per-key order,
        and a restarted bus finds nothing unfinished."""
        rng = np.random.default_rng(seed)
        faulty = FailingStore(store, np.random.default_rng(seed + 100), p=0.25)
        policy = RetryPolicy(max_attempts=4, initial_delay=0.5, multiplier=2.0, max_delay=4.0,
                             jitter=0.0)
        poisoned: set[str] = set()
        fixed = False

        def local(e: Envelope, tx: Tx) -> None:
            if e.message_id in poisoned and not fixed:
                raise PayloadError("payload", "refused until the item master is fixed")
            counting(tx, e)
            seen = tx.get("order", e.key) or []
            tx.put("order", e.key, [*seen, e.payload["i"]])

        def start() -> Bus:
            bus = Bus(faulty, policy, np.random.default_rng(seed))
            while True:  # a restart retries until the store lets it subscribe
                try:
                    if "local" not in bus.consumers:
                        bus.subscribe("local", from_beginning=True)
                    if "remote" not in bus.consumers:
                        bus.subscribe("remote", from_beginning=True)
                    return bus
                except StorageError:
                    continue

        bus = start()
        acked: list[str] = []
        remote_got: set[str] = set()
        n, now = 0, 0.0
        for _ in range(150):
            now += 0.25
            for _ in range(int(rng.integers(0, 4))):  # a client retries until acknowledged
                key = f"k{int(rng.integers(0, 5))}"
                e = env(n, key=key, payload={"i": n})
                if rng.random() < 0.05:
                    poisoned.add(e.message_id)
                while True:
                    try:
                        bus.publish(e, now)
                        break
                    except StorageError:
                        continue
                acked.append(e.message_id)
                n += 1
            step = rng.random()
            try:
                if step < 0.45:
                    bus.process({"local": local}, now)
                elif step < 0.85:
                    due = bus.due(now, consumers=["remote"])
                    remote_got.update(d.envelope.message_id for d in due)
                    settle = rng.random()
                    if settle < 0.3:
                        with bus.transaction(now, due):  # all due again if it fails
                            for d in due:
                                bus.nack(d, TransientError("remote busy"), now)
                    elif settle < 0.6:
                        for d in due:  # one at a time, as the twin acks
                            with contextlib.suppress(StorageError):  # then it is due again
                                bus.ack(d, now)
                    else:
                        bus.ack_many(due, now)
                elif step < 0.92:
                    bus.advance_starts()
                elif step < 0.96:
                    for dl in bus.dead_letters():
                        bus.requeue(dl.id, now)
                else:
                    store = self.reopen(store)
                    faulty.inner = store
                    bus = start()
            except StorageError:
                pass
        assert faulty.failures > 20  # the run did hit the store hard

        faulty.armed, fixed = False, True
        for dl in bus.dead_letters():
            bus.requeue(dl.id, now)
        for _ in range(10_000):
            bus.process({"local": local}, now)
            due = bus.due(now, consumers=["remote"])
            remote_got.update(d.envelope.message_id for d in due)
            bus.ack_many(due, now)
            nxt = bus.next_due_at()
            if nxt is None:
                break
            now = max(now, nxt)
        assert bus.dead_letters() == [] and bus.backlog("local") == bus.backlog("remote") == 0
        assert [e.envelope.message_id for e in store.log()] == acked  # stored = acknowledged
        applied = store.state("applied")
        assert {m: applied.get(m) for m in acked} == dict.fromkeys(acked, 1)
        assert all(store.processed("remote", m) for m in acked) and remote_got == set(acked)
        sent: dict[str, list[int]] = {}
        for entry in store.log():
            sent.setdefault(entry.envelope.key, []).append(entry.envelope.payload["i"])
        order = store.state("order")
        for key, seq in sent.items():
            if not any(f"m{i}" in poisoned for i in seq):  # requeued ones come later
                assert order[key] == seq, key
        bus.advance_starts()
        store = self.reopen(store)
        again = Bus(store, policy)
        again.subscribe("local")
        again.subscribe("remote")
        assert again.backlog("local") == again.backlog("remote") == 0

    def test_a_failed_commit_leaves_deliveries_due_and_nothing_settled(self, store: Store
                                                                       ) -> None:
        faulty = FailingStore(store, np.random.default_rng(0), p=1.0)
        faulty.armed = False
        bus = self.bus(faulty)
        bus.subscribe("erp")
        bus.subscribe("audit")
        bus.publish(env(1, key="a"), 0.0)
        bus.publish(env(2, key="a"), 0.0)
        faulty.armed = True
        with pytest.raises(StorageError, match="disk is full"):
            bus.process({"erp": counting_handler}, 0.0)
        (d,) = bus.due(0.0, consumers=["audit"])
        with pytest.raises(StorageError):
            bus.ack(d, 0.0)
        with pytest.raises(StorageError):
            bus.nack(bus.due(0.0, consumers=["audit"])[0], PayloadError("x", "bad"), 0.0)
        assert bus.dead_letters() == [] and bus.counters.acked == 0
        assert bus.backlog("erp") == bus.backlog("audit") == 2
        faulty.armed = False
        assert bus.process({"erp": counting_handler}, 1.0) == [Outcome.APPLIED]
        assert store.state("applied") == {"m1": 1} and store.processed("erp", "m1")
        bus.advance_starts()
        assert store.subscription("erp") == (None, 2)
        assert store.subscription("audit") == (None, 1)  # m1 still unfinished there

    def test_publishes_inside_a_failed_transaction_are_not_routed(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        with pytest.raises(StorageError), bus.transaction(0.0):
            assert not bus.publish(env(1), 0.0).duplicate
            bus.publish_many([env(2), env(3)], 0.0)
            raise StorageError("the commit failed")
        assert bus.backlog("erp") == 0 and list(store.log()) == []
        assert not bus.publish(env(1), 1.0).duplicate and bus.backlog("erp") == 1

    # -- observation --------------------------------------------------------------------------

    def test_lag_is_age_of_oldest_unacked(self, store: Store) -> None:
        bus = self.bus(store)
        bus.subscribe("erp")
        assert bus.lag("erp", 50.0) == 0.0
        bus.publish(env(1, key="a"), 10.0)
        bus.publish(env(2, key="b"), 20.0)
        assert bus.lag("erp", 50.0) == 40.0 and bus.backlog("erp") == 2
        bus.process({"erp": lambda e, tx: None}, 50.0, limit=1)
        assert bus.lag("erp", 50.0) == 30.0
        assert [e.message_id for e in bus.in_flight("erp")] == ["m2"]


def test_validation_error_is_not_retried_by_default() -> None:
    with pytest.raises(ValidationError) as info:
        Envelope.model_validate({})
    assert not RetryPolicy().retryable(info.value)
    assert RetryPolicy().retryable(TransientError("x"))
    assert RetryPolicy().retryable(RuntimeError("x"))

