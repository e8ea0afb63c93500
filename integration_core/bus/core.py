"""The idempotent event bus, sans-I/O: the caller supplies `now` and drives delivery.

A driver (SimPy process, asyncio task, test) loops: `publish` what producers send, `process`
(or `due` + `handle`/`ack`/`nack`) what is due, then sleeps until `next_due_at()`.

Per-key ordering: each consumer keeps one FIFO per ordering key and only the head of a key is
ever delivered; while it is in flight or waiting for a retry, later messages of that key wait,
other keys do not. A message that was dead-lettered has left its key's stream: when it is
requeued or replayed it is delivered after whatever came later.

Storage failures are outages, never losses: the bus changes its memory (a delivery settled,
a message routed, a retry scheduled) only after the store committed what that change stands
for. When a commit fails, the deliveries it would have settled are due again and the error
propagates; the next transaction that commits carries on. `transaction()` groups several
operations into one store transaction with the same rule.
"""

from __future__ import annotations

import heapq
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from pydantic import ValidationError

from integration_core.bus.policy import RetryPolicy
from integration_core.bus.records import (
    Counters,
    DeadLetter,
    Delivery,
    LogEntry,
    Outcome,
    PublishResult,
)
from integration_core.bus.store import Store, Tx
from integration_core.envelope import Envelope
from integration_core.errors import NotFound, StorageError

Handler = Callable[[Envelope, Tx], None]
INGRESS = "ingress"


@dataclass(slots=True)
class _Item:
    """A queued message of a consumer (never changed once made: the consumers of one message
    share it)."""

    position: int
    replay: bool = False
    recovered: bool = False


_delivery = partial(tuple.__new__, Delivery)
"""`Delivery(*fields)` without the Python-level `__new__` a NamedTuple has (twice a message)."""


class _Tx:
    """An open bus transaction: what to do in memory once the store commits, and the
    deliveries it settles (due again if it does not)."""

    __slots__ = ("after", "settling")

    def __init__(self, settling: list[Delivery]) -> None:
        self.after: list[Callable[[], object]] = []
        self.settling = settling


class _Transaction:
    """`Bus.transaction`: a class, not a generator, because the twin opens several per
    message."""

    __slots__ = ("_batch", "_bus", "_now", "_settling", "_tx")

    def __init__(self, bus: Bus, now: float, settling: Iterable[Delivery]) -> None:
        self._bus = bus
        self._now = now
        self._settling = settling
        self._tx: _Tx | None = None
        self._batch: AbstractContextManager[None] | None = None

    def __enter__(self) -> None:
        bus = self._bus
        if bus._tx is not None:  # nested: the outermost transaction decides
            bus._tx.settling.extend(self._settling)
            return
        batch = bus.store.batch()
        batch.__enter__()  # a store that cannot begin raises here, before the bus holds a tx
        self._batch = batch
        self._tx = bus._tx = _Tx(list(self._settling))

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        tx, batch, bus = self._tx, self._batch, self._bus
        if tx is None or batch is None:
            return
        try:
            batch.__exit__(kind, exc, tb)  # commits, or rolls back when `kind` is set
        except BaseException:
            bus._tx = None
            for d in tx.settling:
                bus._unmark(d, self._now)
            raise
        bus._tx = None
        if kind is not None:
            for d in tx.settling:
                bus._unmark(d, self._now)
            return
        for then in tx.after:
            then()


@dataclass
class _Subscription:
    name: str
    types: frozenset[str] | None
    queues: dict[str, deque[_Item]] = field(default_factory=dict)
    ready: list[tuple[float, int, str]] = field(default_factory=list)
    """Heap of (due_at, tie-break, key): keys whose head may be delivered from due_at on."""
    inflight: dict[str, Delivery] = field(default_factory=dict)
    attempts: dict[int, tuple[int, float]] = field(default_factory=dict)
    """position -> (failures so far, time of the first failure)."""
    backlog: int = 0
    dead: set[int] = field(default_factory=set)
    """Positions dead-lettered for this consumer (so a later success can clear them)."""

    def wants(self, msg_type: str) -> bool:
        return self.types is None or msg_type in self.types


class Bus:
    def __init__(
        self,
        store: Store,
        policy: RetryPolicy | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or RetryPolicy()
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.counters = Counters()
        self._subs: dict[str, _Subscription] = {}
        self._routes: dict[str, list[_Subscription]] = {}
        self._entries: dict[int, LogEntry] = {}
        self._refs: dict[int, int] = {}
        self._seq = 0
        self._ingress_seq = 0
        self._tx: _Tx | None = None
        self.owns: Callable[[str], bool] | None = None
        """The ordering keys this bus delivers (None: every key). Set when several buses
        share one store and each owns some keys: a message of another key is never queued
        here, whichever way it comes (published, recovered, requeued, replayed)."""
        self.queue_published = True
        """False: what this bus publishes is not queued at once; its driver queues it from
        the log (`adopt`), like what the other buses sharing the store publish."""

    # -- transactions ------------------------------------------------------------------------

    def transaction(self, now: float, settling: Iterable[Delivery] = ()
                    ) -> AbstractContextManager[None]:
        """One store transaction for every bus operation inside. Their effects on the bus's
        memory happen when it commits; if it does not, the deliveries they settled (and
        `settling`, the ones the caller means to settle inside) are due again at `now`,
        nothing else changed, and the error propagates."""
        return _Transaction(self, now, settling)

    def _commit(self, now: float, settling: list[Delivery], write: Callable[[], object] | None,
                then: Callable[[], object]) -> None:
        """Run `write` in a store transaction (the open one, if any), then `then` once it
        committed; `settling` are due again if it does not."""
        tx = self._tx
        if tx is not None:
            tx.settling.extend(settling)
            tx.after.append(then)
            if write is not None:
                write()
            return
        if write is not None:
            try:
                with self.store.batch():
                    write()
            except BaseException:
                for d in settling:
                    self._unmark(d, now)
                raise
        then()

    # -- subscriptions -----------------------------------------------------------------------

    def subscribe(
        self, consumer: str, types: Iterable[str] | None = None, *, from_beginning: bool = False
    ) -> None:
        """Register a consumer. A consumer known to the store resumes where it was: every
        message it had not processed (nor dead-lettered) is queued again, as after a crash."""
        if consumer in self._subs or consumer == INGRESS:
            raise ValueError(f"consumer {consumer!r} is already subscribed or reserved")
        wanted = None if types is None else frozenset(types)
        known = self.store.subscription(consumer)
        if known is None:
            start = 1 if from_beginning else self.store.last_position() + 1
        else:
            start = known[1]
        self.store.save_subscription(consumer, wanted, start)
        sub = _Subscription(consumer, wanted)
        sub.dead = {d.position for d in self.store.dead_letters()
                    if d.consumer == consumer and d.position is not None}
        self._subs[consumer] = sub
        self._routes.clear()
        for entry in self.store.unfinished(consumer, wanted, start):
            self._enqueue([sub], entry, entry.published_at, _Item(entry.position, recovered=True))

    def advance_starts(self) -> dict[str, int]:
        """Record, per consumer, the first log position it may still need: everything before
        it is acknowledged or dead-lettered. A restart then scans the log from there, not from
        the beginning (the log is kept whole: `replay` still reaches back). A consumer that
        later subscribes to more types gets the new types' messages from its start on."""
        nothing_queued = self.store.last_position() + 1
        starts = {}
        with self.store.batch():
            for sub in self._subs.values():
                # Every item, not the heads only: a requeued or replayed message may sit
                # behind newer ones of its key.
                starts[sub.name] = min(
                    (item.position for q in sub.queues.values() for item in q),
                    default=nothing_queued)
                self.store.save_subscription(sub.name, sub.types, starts[sub.name])
        return starts

    @property
    def consumers(self) -> list[str]:
        return sorted(self._subs)

    def _route(self, msg_type: str) -> list[_Subscription]:
        subs = self._routes.get(msg_type)
        if subs is None:
            subs = self._routes[msg_type] = [s for s in self._subs.values() if s.wants(msg_type)]
        return subs

    def _enqueue(self, subs: list[_Subscription], entry: LogEntry, now: float, item: _Item
                 ) -> int:
        """Queue `item` to each of `subs` (one message, shared); returns how many were queued
        (none for a key another bus owns)."""
        key = entry.envelope.key
        if not subs or (self.owns is not None and not self.owns(key)):
            return 0
        pos = entry.position
        if pos not in self._entries:
            self._entries[pos] = entry
        self._refs[pos] = self._refs.get(pos, 0) + len(subs)
        for sub in subs:
            q = sub.queues.get(key)
            if q is None:
                q = sub.queues[key] = deque()
            q.append(item)
            sub.backlog += 1
            if len(q) == 1 and key not in sub.inflight:
                self._push(sub, now, key)
        return len(subs)

    def _push(self, sub: _Subscription, due_at: float, key: str) -> None:
        self._seq += 1
        heapq.heappush(sub.ready, (due_at, self._seq, key))

    def _release(self, pos: int) -> None:
        left = self._refs[pos] - 1
        if left:
            self._refs[pos] = left
        else:
            del self._refs[pos]
            del self._entries[pos]

    def adopt(self, entries: Iterable[LogEntry], now: float, consumer: str | None = None,
              recovered: bool = False) -> int:
        """Queue messages read from the log (another bus published them, or this one with
        `queue_published` off): to every consumer that wants them, or to `consumer` only;
        `recovered`: they may have been delivered before (a takeover), so they count as
        redeliveries. Returns how many deliveries were queued."""
        n = 0
        for entry in entries:
            if consumer is not None:
                subs = [self._subs[consumer]]
            else:
                routed = self._routes.get(entry.envelope.type)
                subs = routed if routed is not None else self._route(entry.envelope.type)
            n += self._enqueue(subs, entry, now, _Item(entry.position, recovered=recovered))
        return n

    def forget(self, keys: Callable[[str], bool]) -> int:
        """Drop every queued message of the ordering keys `keys` selects, in flight or not
        (another bus owns them now): nothing of them is delivered here any more, and a
        delivery of them still out is no longer `holds`. Returns how many were dropped."""
        n = 0
        for sub in self._subs.values():
            gone = [k for k in sub.queues if keys(k)]
            if not gone:
                continue
            for key in gone:
                for item in sub.queues.pop(key):
                    sub.attempts.pop(item.position, None)
                    self._release(item.position)
                    n += 1
                    sub.backlog -= 1
                sub.inflight.pop(key, None)
            dropped = set(gone)
            sub.ready = [r for r in sub.ready if r[2] not in dropped]
            heapq.heapify(sub.ready)
        return n

    def lowest_queued(self, consumer: str) -> dict[str, int]:
        """Per ordering key queued for the consumer, its lowest position (in flight
        included): where a restart of that key's delivery would have to start."""
        return {key: min(item.position for item in q)
                for key, q in self._subs[consumer].queues.items()}

    def holds(self, delivery: Delivery) -> bool:
        """Whether `delivery` is still in flight here (not settled, not `forget`-ten)."""
        sub = self._subs.get(delivery.consumer)
        return sub is not None and sub.inflight.get(delivery.envelope.key) is delivery

    # -- publishing --------------------------------------------------------------------------

    def publish(self, envelope: Envelope, now: float) -> PublishResult:
        """Store and route a message; a message id seen before is reported as a duplicate."""
        pos = self.store.append(envelope, now)
        if self._tx is None:
            return self._accept(envelope, pos, now)
        self._tx.after.append(partial(self._accept, envelope, pos, now))
        return PublishResult(envelope.message_id, pos, pos is None,
                             pos is None and self._conflicts(envelope))

    def _accept(self, envelope: Envelope, pos: int | None, now: float) -> PublishResult:
        if pos is None:
            self.counters.duplicate_publishes += 1
            if self._conflicts(envelope):
                self.counters.conflicting_publishes += 1
                return PublishResult(envelope.message_id, None, True, True)
            return PublishResult(envelope.message_id, None, True)
        self.counters.published += 1
        if not self.queue_published:
            return PublishResult(envelope.message_id, pos, False)
        subs = self._routes.get(envelope.type)
        self._enqueue(subs if subs is not None else self._route(envelope.type),
                      LogEntry(pos, now, envelope), now, _Item(pos))
        return PublishResult(envelope.message_id, pos, False)

    def _conflicts(self, envelope: Envelope) -> bool:
        """A duplicate id whose stored content differs (looked up for duplicates only)."""
        stored = self.store.find(envelope.message_id)
        return stored is not None and (stored.type, stored.key, stored.payload) != (
            envelope.type, envelope.key, envelope.payload)

    def publish_many(self, envelopes: Iterable[Envelope], now: float) -> list[PublishResult]:
        """Publish in one store transaction: all are acknowledged together or none."""
        batch = list(envelopes)
        with self.store.batch():
            positions = self.store.append_many(batch, now)
        if self._tx is not None:
            self._tx.after.extend(partial(self._accept, env, pos, now)
                                  for env, pos in zip(batch, positions, strict=True))
            return [PublishResult(env.message_id, pos, pos is None,
                                  pos is None and self._conflicts(env))
                    for env, pos in zip(batch, positions, strict=True)]
        return [self._accept(env, pos, now) for env, pos in zip(batch, positions, strict=True)]

    def publish_raw(self, raw: str | bytes | Mapping[str, Any], now: float) -> PublishResult:
        """Publish untrusted input. An envelope that does not validate is dead-lettered under
        the consumer "ingress" with the original text and the validation error; it never
        raises, so a malformed message cannot stop the bus."""
        try:
            if isinstance(raw, Mapping):
                env = Envelope.model_validate(raw)
            else:
                env = Envelope.model_validate_json(raw)
        except ValidationError as exc:
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else (
                raw if isinstance(raw, str) else json.dumps(raw, default=str)
            )
            self._ingress_seq += 1
            dl = DeadLetter(
                id=f"{INGRESS}/{now:.6f}/{self._ingress_seq}", consumer=INGRESS, position=None,
                message_id=_guess_id(raw), envelope=None, raw=text,
                cause_type=type(exc).__name__, cause_message=str(exc), attempts=1,
                first_failure_at=now, last_failure_at=now,
            )
            self.store.put_dead_letter(dl)
            self.counters.dead_lettered += 1
            return PublishResult(dl.message_id or "", None, False)
        return self.publish(env, now)

    # -- delivery ----------------------------------------------------------------------------

    def due(
        self, now: float, limit: int | None = None, consumers: Iterable[str] | None = None
    ) -> list[Delivery]:
        """Deliveries due at `now`: the head of each ready key, marked in flight until acked."""
        out: list[Delivery] = []
        subs = self._subs.values() if consumers is None else [self._subs[c] for c in consumers]
        entries, counters = self._entries, self.counters
        for sub in subs:
            ready = sub.ready
            if not ready or ready[0][0] > now:
                continue  # most consumers, most of the time (called once a message)
            queues, attempts, inflight = sub.queues, sub.attempts, sub.inflight
            while ready and ready[0][0] <= now and (limit is None or len(out) < limit):
                key = heapq.heappop(ready)[2]
                item = queues[key][0]
                pos = item.position
                failures = attempts[pos][0] if attempts and pos in attempts else 0
                delivery = _delivery((sub.name, pos, entries[pos].envelope, failures + 1,
                                      item.replay))
                inflight[key] = delivery
                counters.delivered += 1
                # A message recovered after a restart may have been delivered before the
                # crash; the bus cannot tell, so it counts as a redelivery.
                if failures or item.recovered or item.replay:
                    counters.redelivered += 1
                out.append(delivery)
        return out

    def next_due_at(self) -> float | None:
        """When the next delivery becomes due (None: nothing is waiting)."""
        first = None
        for s in self._subs.values():
            if s.ready and (first is None or s.ready[0][0] < first):
                first = s.ready[0][0]
        return first

    def _finish(self, d: Delivery, now: float, sub: _Subscription | None = None) -> None:
        if sub is None:
            sub = self._subs[d.consumer]
        key = d.envelope.key
        if sub.inflight.get(key) is not d:
            raise ValueError(f"delivery of position {d.position} to {d.consumer} is not in flight")
        del sub.inflight[key]
        q = sub.queues[key]
        q.popleft()
        sub.backlog -= 1
        if sub.attempts:
            sub.attempts.pop(d.position, None)
        if q:
            self._push(sub, now, key)
        else:
            del sub.queues[key]
        self._release(d.position)

    def _check_inflight(self, d: Delivery) -> None:
        if self._subs[d.consumer].inflight.get(d.envelope.key) is not d:
            raise ValueError(f"delivery of position {d.position} to {d.consumer} is not in flight")

    def _undead(self, d: Delivery) -> str | None:
        """The dead letter a delivery's success clears (replay, requeue), if any."""
        return f"{d.consumer}/{d.position}" if d.position in self._subs[d.consumer].dead else None

    def _done(self, d: Delivery, now: float, skipped: bool = False) -> None:
        """In memory, once the store recorded the delivery as done."""
        sub = self._subs[d.consumer]
        if sub.dead:
            sub.dead.discard(d.position)
        self._finish(d, now, sub)
        self.counters.acked += 1
        if skipped:
            self.counters.duplicates_skipped += 1

    def ack(self, delivery: Delivery, now: float) -> None:
        """The consumer is done with the message (its effect happened elsewhere). Recorded in
        the store, so a restarted bus does not deliver it again."""
        sub = self._subs[delivery.consumer]
        if self._tx is not None or sub.dead:  # the open transaction or a dead letter to clear
            self.ack_many([delivery], now)
            return
        if sub.inflight.get(delivery.envelope.key) is not delivery:
            self._check_inflight(delivery)  # raises
        # `ack_many` of one, without its grouping (the twin acks one message at a time).
        try:  # one write, atomic by itself
            self.store.mark_processed(delivery.consumer, delivery.envelope.message_id)
        except BaseException:
            self._unmark(delivery, now)
            raise
        self._finish(delivery, now, sub)
        self.counters.acked += 1

    def ack_many(self, deliveries: Iterable[Delivery], now: float) -> None:
        """`ack` for each, recorded with one store write per consumer."""
        ds = list(deliveries)
        done: dict[str, list[str]] = {}
        cleared = []
        subs = self._subs
        for d in ds:
            sub = subs[d.consumer]
            if sub.inflight.get(d.envelope.key) is not d:
                self._check_inflight(d)  # raises
            mids = done.get(d.consumer)
            if mids is None:
                done[d.consumer] = [d.envelope.message_id]
            else:
                mids.append(d.envelope.message_id)
            if d.position in sub.dead:  # a replayed or requeued letter, now done
                cleared.append(f"{d.consumer}/{d.position}")

        tx = self._tx
        if tx is not None:  # the open transaction's commit decides
            tx.settling.extend(ds)
            self._ack_write(done, cleared)
            tx.after.append(partial(self._done_all, ds, now))
            return
        try:
            with self.store.batch():
                self._ack_write(done, cleared)
        except BaseException:
            for d in ds:
                self._unmark(d, now)
            raise
        self._done_all(ds, now)

    def _ack_write(self, done: dict[str, list[str]], cleared: list[str]) -> None:
        for consumer, ids in done.items():
            self.store.mark_processed_many(consumer, ids)
        for dl_id in cleared:
            self.store.delete_dead_letter(dl_id)

    def _done_all(self, ds: list[Delivery], now: float) -> None:
        for d in ds:
            self._done(d, now)

    def nack(self, delivery: Delivery, error: BaseException, now: float) -> Outcome:
        """Record a failure: schedule a retry with backoff, or dead-letter the message."""
        self._check_inflight(delivery)
        sub = self._subs[delivery.consumer]
        failures, first = sub.attempts.get(delivery.position, (0, now))
        failures += 1
        transient = self.policy.retryable(error)
        if transient and failures < self.policy.max_attempts:
            due_at = now + self.policy.delay(failures, self.rng)
            self._commit(now, [delivery], None,
                         partial(self._retry_later, delivery, failures, first, due_at))
            return Outcome.RETRY
        dl = DeadLetter(
            id=f"{delivery.consumer}/{delivery.position}", consumer=delivery.consumer,
            position=delivery.position, message_id=delivery.envelope.message_id,
            envelope=delivery.envelope, raw=None, cause_type=type(error).__name__,
            cause_message=str(error), attempts=failures, first_failure_at=first,
            last_failure_at=now, transient=transient,
        )
        self._commit(now, [delivery], partial(self.store.put_dead_letter, dl),
                     partial(self._buried, delivery, now))
        return Outcome.DEAD

    def _retry_later(self, d: Delivery, failures: int, first: float, due_at: float) -> None:
        sub = self._subs[d.consumer]
        del sub.inflight[d.envelope.key]
        sub.attempts[d.position] = (failures, first)
        self.counters.retries += 1
        self._push(sub, due_at, d.envelope.key)

    def _buried(self, d: Delivery, now: float) -> None:
        self.counters.dead_lettered += 1
        self._subs[d.consumer].dead.add(d.position)
        self._finish(d, now)

    def handle(self, delivery: Delivery, handler: Handler, now: float) -> Outcome:
        """Run `handler` through the consumer's durable inbox, then ack or nack."""
        return self.run([delivery], {delivery.consumer: handler}, now)[0]

    def process(
        self, handlers: Mapping[str, Handler], now: float, limit: int | None = None
    ) -> list[Outcome]:
        """Handle everything due for these consumers through their inboxes, in one store
        transaction; outcomes in delivery order. If the store fails, nothing was applied,
        every delivery is due again and the error propagates."""
        return self.run(self.due(now, limit, consumers=handlers.keys()), handlers, now)

    def run(self, deliveries: list[Delivery], handlers: Mapping[str, Handler], now: float
            ) -> list[Outcome]:
        """`process` for deliveries already taken from `due` (each consumer's in `handlers`)."""
        if not deliveries:
            return []
        if len(deliveries) == 1 and self._tx is None:
            return [self._run_one(deliveries[0], handlers, now)]
        with self.transaction(now, deliveries):
            by_consumer: dict[str, list[Delivery]] = {}
            for d in deliveries:
                by_consumer.setdefault(d.consumer, []).append(d)
            pairs: list[tuple[Delivery, bool | Exception]] = []
            for consumer, mine in by_consumer.items():
                handler = handlers[consumer]
                got = self.store.apply_many(
                    consumer,
                    [(d.envelope.message_id, partial(handler, d.envelope)) for d in mine],
                )
                pairs.extend(zip(mine, got, strict=True))
            if len(by_consumer) > 1:  # outcomes in delivery order
                order = {id(d): i for i, d in enumerate(deliveries)}
                pairs.sort(key=lambda p: order[id(p[0])])
            outcomes: list[Outcome] = []
            finished: list[tuple[Delivery, bool]] = []
            for d, result in pairs:
                if isinstance(result, StorageError):
                    raise result  # the store, not the message: the whole transaction fails
                if isinstance(result, Exception):
                    outcomes.append(self.nack(d, result, now))
                    continue
                # The inbox record was written with the effect; a replayed or requeued
                # message that is now done is no longer dead.
                dl = self._undead(d)
                if dl is not None:
                    self.store.delete_dead_letter(dl)
                finished.append((d, not result))
                outcomes.append(Outcome.APPLIED if result else Outcome.SKIPPED)
            assert self._tx is not None
            self._tx.after.append(partial(self._finished, finished, now))
            return outcomes

    def _run_one(self, d: Delivery, handlers: Mapping[str, Handler], now: float) -> Outcome:
        """`run` of one delivery with no transaction open (the twin's, one message at a time):
        the same steps and failure contract, without a transaction's bookkeeping."""
        env, store, consumer = d.envelope, self.store, d.consumer
        effect = partial(handlers[consumer], env)
        try:
            if d.position in self._subs[consumer].dead:  # see `run`: cleared with the effect
                with store.batch():
                    result = store.apply(consumer, env.message_id, effect)
                    store.delete_dead_letter(f"{consumer}/{d.position}")
            else:  # one write, atomic by itself
                result = store.apply(consumer, env.message_id, effect)
        except StorageError:  # the store, not the message: nothing was applied
            self._unmark(d, now)
            raise
        except Exception as exc:  # the effect failed: its writes and record were discarded
            return self.nack(d, exc, now)
        except BaseException:
            self._unmark(d, now)
            raise
        self._done(d, now, not result)
        return Outcome.APPLIED if result else Outcome.SKIPPED

    def _finished(self, finished: list[tuple[Delivery, bool]], now: float) -> None:
        for d, skipped in finished:
            self._done(d, now, skipped)

    def _unmark(self, d: Delivery, now: float) -> None:
        sub = self._subs[d.consumer]
        key = d.envelope.key
        if sub.inflight.get(key) is d:
            del sub.inflight[key]
            self._push(sub, now, key)

    def drain(self, handlers: Mapping[str, Handler], now: float, max_rounds: int = 1_000_000
              ) -> float:
        """Process until nothing is due, jumping the clock to each retry; returns the end time.

        For tests and batch drivers; a live driver sleeps until `next_due_at()` instead."""
        for _ in range(max_rounds):
            self.process(handlers, now)
            nxt = self.next_due_at()
            if nxt is None:
                return now
            now = max(now, nxt)
        raise RuntimeError(f"bus did not drain in {max_rounds} rounds")

    # -- dead letters, replay ----------------------------------------------------------------

    def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        dls = self.store.dead_letters()
        return [d for d in dls if consumer is None or d.consumer == consumer]

    def requeue(self, dead_letter_id: str, now: float, fixed: Envelope | None = None) -> None:
        """Deliver a dead letter again, after the cause was fixed.

        A consumer's dead letter is redelivered as it was (the fix was in reference data or
        code). An ingress dead letter never parsed, so it needs the corrected envelope."""
        dl = next((d for d in self.store.dead_letters() if d.id == dead_letter_id), None)
        if dl is None:
            raise NotFound(f"no dead letter {dead_letter_id!r}")
        if dl.consumer == INGRESS:
            if fixed is None:
                raise ValueError("an ingress dead letter needs the corrected envelope")
            with self.transaction(now):
                self.store.delete_dead_letter(dl.id)
                self.publish(fixed, now)
        else:
            assert dl.position is not None and dl.envelope is not None
            sub = self._subs.get(dl.consumer)
            if sub is None:
                raise NotFound(f"consumer {dl.consumer!r} is not subscribed")
            position = dl.position

            def write() -> None:
                # A saved start may have moved past the dead message: move it back, or a
                # restart before the redelivery would find the message neither dead nor due.
                saved = self.store.subscription(sub.name)
                if saved is not None and saved[1] > position:
                    self.store.save_subscription(sub.name, sub.types, position)
                self.store.delete_dead_letter(dl.id)

            self._commit(now, [], write,
                         partial(self._requeued, sub, position, dl.envelope, now))
            return
        self.counters.requeued += 1

    def _requeued(self, sub: _Subscription, position: int, envelope: Envelope, now: float
                  ) -> None:
        sub.dead.discard(position)
        self._enqueue([sub], LogEntry(position, now, envelope), now, _Item(position))
        self.counters.requeued += 1

    def replay(
        self,
        consumer: str,
        now: float,
        from_position: int = 1,
        from_time: float | None = None,
        only: Iterable[str] | None = None,
    ) -> int:
        """Queue the log again for a consumer from a position or publish time; the inbox skips
        what it already applied. `only` restricts the replay to these message ids."""
        sub = self._subs[consumer]
        wanted = None if only is None else set(only)
        n = 0
        for entry in self.store.log(from_position, from_time):
            env = entry.envelope
            if sub.wants(env.type) and (wanted is None or env.message_id in wanted):
                self._enqueue([sub], entry, now, _Item(entry.position, replay=True))
                n += 1
        self.counters.replayed += n
        return n

    # -- observation -------------------------------------------------------------------------

    def backlog(self, consumer: str) -> int:
        """Messages queued for the consumer and not yet acked or dead (in flight included)."""
        return self._subs[consumer].backlog

    def lag(self, consumer: str, now: float) -> float:
        """Age in seconds of the consumer's oldest unacknowledged message (0 if none)."""
        sub = self._subs[consumer]
        oldest = min(
            (self._entries[q[0].position].published_at for q in sub.queues.values()),
            default=None,
        )
        return 0.0 if oldest is None else max(0.0, now - oldest)

    def in_flight(self, consumer: str) -> list[Envelope]:
        """Envelopes queued for a consumer and not yet acknowledged, in log order."""
        sub = self._subs[consumer]
        positions = sorted(item.position for q in sub.queues.values() for item in q)
        return [self._entries[p].envelope for p in positions]


def _guess_id(raw: str | bytes | Mapping[str, Any]) -> str | None:
    """The message_id of malformed input when it can still be read, for the dead letter."""
    try:
        data = raw if isinstance(raw, Mapping) else json.loads(raw)
    except ValueError:
        return None
    mid = data.get("message_id") if isinstance(data, Mapping) else None
    return mid if isinstance(mid, str) else None
