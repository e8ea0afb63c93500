"""The integration core in SimPy time: the idempotent bus and the driver that delivers from it.

The bus is sans-I/O; this bridge gives it a clock. It wakes exactly when the bus says the next
delivery is due (or at once when a publish or an ack makes something ready), hands each
delivery to its consumer's asynchronous handler, and turns the handler's answer into ack or
nack. A crash throws away the bus's memory; with a durable store the restarted bus recovers
every unfinished message from it, as the SQLite store does after a kill.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from integration_core.bus import (
    INGRESS,
    Bus,
    Counters,
    Delivery,
    MemoryStore,
    Outcome,
    RetryPolicy,
)
from integration_core.envelope import Envelope
from sim.kernel import at
from sim.scenario import BusConfig

Ack = Callable[[], None]
Nack = Callable[[BaseException], None]
AsyncHandler = Callable[[Delivery, Ack, Nack], None]
"""Starts handling a delivery; calls ack() or nack(error) exactly once, whenever it is done."""


class CoreBridge:
    def __init__(
        self,
        env: simpy.Environment,
        cfg: BusConfig,
        rng: np.random.Generator,
        retain_log_s: float | None = 6 * 3600,
    ) -> None:
        self.env = env
        self.cfg = cfg
        self.rng = rng
        self.retain_log_s = retain_log_s
        self.policy = RetryPolicy(
            max_attempts=cfg.max_attempts, initial_delay=cfg.initial_delay_s,
            multiplier=cfg.multiplier, max_delay=cfg.max_delay_s, jitter=cfg.jitter,
        )
        self.store = MemoryStore(retain_log_s)
        self.bus = Bus(self.store, self.policy, rng)
        self.up = True
        self.crashes = 0
        self._past = Counters()
        self._subs: list[tuple[str, frozenset[str], AsyncHandler]] = []
        self._handlers: dict[str, AsyncHandler] = {}
        self._generation = 0
        self._wake_at: float | None = None
        self._running = False
        self.lost_in_crash: list[Envelope] = []
        self.redriven = 0
        self.on_dead_letter: Callable[[Envelope], None] | None = None
        """Told when the bus gives up on a message (for the simulator's ground truth)."""

    # -- wiring ------------------------------------------------------------------------------

    def subscribe(self, consumer: str, types: list[str], handler: AsyncHandler) -> None:
        self._subs.append((consumer, frozenset(types), handler))
        self._handlers[consumer] = handler
        self.bus.subscribe(consumer, types)

    def publish(self, envelope: Envelope) -> bool:
        """Ingress: False when the core is down (the producer must try again)."""
        if not self.up:
            return False
        self.bus.publish(envelope, self.env.now)
        self._wake(self.env.now)
        return True

    def redrive(self, every_s: float) -> Generator[Any, Any, None]:
        """Requeue dead letters with a transient cause every `every_s` (the partner was down for
        longer than the retry policy lasts); the idempotency key makes a requeue safe. Bad
        payloads stay dead until someone fixes them."""
        while True:
            yield self.env.timeout(every_s)
            if not self.up:
                continue
            for d in self.bus.dead_letters():
                if d.consumer != INGRESS and d.transient:
                    self.bus.requeue(d.id, self.env.now)
                    self.redriven += 1
            self.poke()

    def poke(self) -> None:
        """Something became ready outside publish/ack (a requeue, a replay): look now."""
        self._wake(self.env.now)

    # -- the driver --------------------------------------------------------------------------

    def _wake(self, t: float) -> None:
        if t <= self.env.now and not self._running:
            # Due now: deliver inline rather than through a scheduled event (same simulated
            # time, one event fewer per message on the hot path).
            self._deliver_due()
            return
        if self._wake_at is not None and self._wake_at <= t:
            return
        self._wake_at = t
        at(self.env, t - self.env.now, self._run, t, self._generation)

    def _run(self, t: float, generation: int) -> None:
        if generation != self._generation or self._wake_at != t:
            return  # superseded by an earlier wake, or by a crash
        self._wake_at = None
        self._deliver_due()

    def _deliver_due(self) -> None:
        if not self.up:
            return
        self._running = True
        try:
            self._deliver_due_now()
        finally:
            self._running = False

    def _deliver_due_now(self) -> None:
        generation = self._generation
        now = self.env.now
        handlers = self._handlers
        for d in self.bus.due(now):
            handlers[d.consumer](d, self._acker(d, generation), self._nacker(d, generation))
        nxt = self.bus.next_due_at()
        if nxt is not None:
            self._wake(max(nxt, now))

    def _acker(self, d: Delivery, generation: int) -> Ack:
        def ack() -> None:
            if generation == self._generation and self.up:
                self.bus.ack(d, self.env.now)
                self._wake(self.env.now)

        return ack

    def _nacker(self, d: Delivery, generation: int) -> Nack:
        def nack(error: BaseException) -> None:
            if generation == self._generation and self.up:
                outcome = self.bus.nack(d, error, self.env.now)
                if outcome is Outcome.DEAD and self.on_dead_letter is not None:
                    self.on_dead_letter(d.envelope)
                nxt = self.bus.next_due_at()
                if nxt is not None:
                    self._wake(nxt)

        return nack

    # -- faults ------------------------------------------------------------------------------

    def crash(self) -> None:
        """The core process dies: in-flight work and (unless durable) the bus are gone."""
        if not self.up:
            return
        self.up = False
        self.crashes += 1
        self._generation += 1
        self._wake_at = None
        self._accumulate()
        if not self.cfg.durable:
            self.lost_in_crash.extend(
                e for name, _, _ in self._subs for e in self.bus.in_flight(name)
            )
            self.store = MemoryStore(self.retain_log_s)

    def restart(self) -> None:
        if self.up:
            return
        self.up = True
        self.bus = Bus(self.store, self.policy, self.rng)
        for name, types, _ in self._subs:
            self.bus.subscribe(name, types)  # a durable store hands back what was unfinished
        self._wake(self.env.now)

    def _accumulate(self) -> None:
        for k, v in self.bus.counters.as_dict().items():
            setattr(self._past, k, getattr(self._past, k) + v)

    def counters(self) -> dict[str, int]:
        now = self.bus.counters.as_dict()
        return {k: v + getattr(self._past, k) for k, v in now.items()}

    def backlog(self) -> dict[str, int]:
        return {name: self.bus.backlog(name) for name, _, _ in self._subs}

    def lag(self) -> dict[str, float]:
        return {name: self.bus.lag(name, self.env.now) for name, _, _ in self._subs}
