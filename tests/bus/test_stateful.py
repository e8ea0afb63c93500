"""Stateful property test of the bus over SQLite: duplicates, failing handlers, poison
messages and crashes (with and without a batch open) at random points.

Invariants: each consumer applies each message at most once and in per-key publish order; at
the end, after a clean drain, every acknowledged message is applied or dead-lettered for every
consumer (checker: lost = duplicated = unexpected = 0).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from integration_core.bus import Bus, Handler, RetryPolicy, SQLiteStore, Tx
from integration_core.checker import check
from integration_core.envelope import Envelope
from integration_core.errors import PayloadError, TransientError
from tests.factories import env

CONSUMERS = ("erp", "audit")
KEYS = ("A@L1", "A@L2", "B@L1")


class Crash(BaseException):
    """Kills the 'process' in the middle of a batch: not an Exception, so the bus cannot
    catch it and the open transaction is abandoned."""


class BusMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="bus-stateful-"))
        self.path = self.dir / "bus.db"
        self.policy = RetryPolicy(max_attempts=4, initial_delay=1, max_delay=4, jitter=0.5)
        self.now = 0.0
        self.seq = 0
        self.attempted: list[str] = []
        self.acknowledged: set[str] = set()
        self.poison: set[str] = set()
        self.keys: dict[str, str] = {}
        self.ever_dead: dict[str, set[str]] = {c: set() for c in CONSUMERS}
        """Dead-lettered at some point: a later replay applies them after newer messages of
        their key, which per-key ordering does not forbid (they left the stream)."""
        self._open()

    def _open(self) -> None:
        self.store = SQLiteStore(self.path)
        self.bus = Bus(self.store, self.policy, np.random.default_rng(self.seq))
        for c in CONSUMERS:
            self.bus.subscribe(c, from_beginning=True)

    def _handler(
        self, consumer: str, rnd: random.Random, fail: float, crash: float
    ) -> Handler:
        def apply(e: Envelope, tx: Tx) -> None:
            order = tx.get(f"order:{consumer}", e.key) or []
            tx.put(f"order:{consumer}", e.key, [*order, e.payload["seq"]])
            count = tx.get(f"applied:{consumer}", e.message_id) or 0
            tx.put(f"applied:{consumer}", e.message_id, count + 1)
            if e.payload.get("poison"):
                raise PayloadError("payload.poison", "cannot be processed")
            if rnd.random() < fail:
                raise TransientError("partner down")
            if rnd.random() < crash:
                raise Crash

        return apply

    # -- rules --------------------------------------------------------------------------------

    @rule(key=st.sampled_from(KEYS), poison=st.sampled_from([False] * 5 + [True]))
    def publish_new(self, key: str, poison: bool) -> None:
        self.seq += 1
        mid = f"m{self.seq}"
        e = env(self.seq, key=key, payload={"seq": self.seq, "poison": poison})
        self.attempted.append(mid)
        self.keys[mid] = key
        if poison:
            self.poison.add(mid)
        assert not self.bus.publish(e, self.now).duplicate
        self.acknowledged.add(mid)

    @precondition(lambda self: self.seq > 0)
    @rule(data=st.data())
    def publish_duplicate(self, data: st.DataObject) -> None:
        n = data.draw(st.integers(1, self.seq))
        e = env(n, key=self.keys[f"m{n}"], payload={"seq": n, "poison": f"m{n}" in self.poison})
        assert self.bus.publish(e, self.now).duplicate

    @rule(seed=st.integers(0, 2**32), fail=st.sampled_from([0.0, 0.3, 0.9]),
          crash=st.sampled_from([0.0, 0.0, 0.2]))
    def process(self, seed: int, fail: float, crash: float) -> None:
        rnd = random.Random(seed)
        handlers = {c: self._handler(c, rnd, fail, crash) for c in CONSUMERS}
        try:
            self.bus.process(handlers, self.now)
        except Crash:
            self.store.close()  # the batch never committed
            self._open()

    @precondition(lambda self: self.seq > 0)
    @rule(consumer=st.sampled_from(CONSUMERS), data=st.data())
    def replay(self, consumer: str, data: st.DataObject) -> None:
        """Redelivers already-applied messages: only the inbox keeps this idempotent."""
        self.bus.replay(consumer, self.now, from_position=data.draw(st.integers(1, self.seq)))

    @rule(dt=st.sampled_from([0.5, 1.0, 5.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def crash_between_batches(self) -> None:
        self.store.close()
        self._open()

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def applied_at_most_once_in_key_order(self) -> None:
        for c in CONSUMERS:
            self.ever_dead[c] |= {d.message_id or "" for d in self.bus.dead_letters(c)}
            assert all(n == 1 for n in self.store.state(f"applied:{c}").values())
            for key, seqs in self.store.state(f"order:{c}").items():
                first_pass = [n for n in seqs if f"m{n}" not in self.ever_dead[c]]
                assert first_pass == sorted(first_pass), (c, key, seqs)

    def teardown(self) -> None:
        try:
            handlers = {c: self._handler(c, random.Random(0), 0.0, 0.0) for c in CONSUMERS}
            self.bus.drain(handlers, self.now)
            # Transient failures may have outlasted the retry policy: once the partner is well
            # again an operator requeues those; only the poison stays dead.
            for d in self.bus.dead_letters():
                if d.message_id not in self.poison:
                    self.bus.requeue(d.id, self.now)
            self.bus.drain(handlers, self.now)
            dead = {c: {d.message_id for d in self.bus.dead_letters(c)} for c in CONSUMERS}
            for c in CONSUMERS:
                applied = self.store.state(f"applied:{c}")
                assert set(applied).isdisjoint(dead[c])
                assert dead[c] == self.poison, (c, dead[c], self.poison)
                # A dead-lettered message is accounted for; the checker sees the rest.
                result = check(
                    self.attempted,
                    self.acknowledged - dead[c],
                    [m for m, n in applied.items() for _ in range(n) if m not in dead[c]],
                )
                assert result.ok, result.summary()
                assert self.bus.backlog(c) == 0
        finally:
            self.store.close()
            shutil.rmtree(self.dir, ignore_errors=True)


BusMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None
)
TestBusStateful = BusMachine.TestCase
