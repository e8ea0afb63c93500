"""The integration engine in SimPy time: `integration_core.engine.Engine` with a virtual clock.

This driver does for the twin what the live service's runner does in real time, and nothing
more: it wakes when the engine says something is due (a delivery, a saga timer, an outbox
call's retry) or at once when a publish makes something ready; lets the engine handle its
local consumers (`pump`: the WMS view, the order desk) through the durable inbox; hands the
remote consumers' deliveries (the ERP's postings, and consumers the twin adds) to their
handlers and settles their answers; makes the order desk's outbox calls through the SimPy
partner adapter. A crash throws the engine away; with a durable store the restarted engine
recovers every unfinished message, timer and call from it, as the SQLite store does after a
kill.

Time: the engine's clock reads Unix seconds (`START` + simulated seconds), the same epoch the
live service runs on.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import simpy

from integration_core.bus import Bus, Counters, Delivery, MemoryStore, Outcome, RetryPolicy
from integration_core.engine import Engine, MovementRecord, RowKey
from integration_core.engine.batching import Batcher, Batching
from integration_core.engine.calls import Call
from integration_core.engine.items import SiteItems
from integration_core.envelope import Envelope
from integration_core.errors import PayloadError
from integration_core.feed import EdiInbox, EdiOutcome
from integration_core.models import Catalog, SalesOrder, Shipment, ShipmentMilestone
from integration_core.orchestrator import OrchestratorConfig
from sim.kernel import at
from sim.partners import SimPartners
from sim.scenario import BusConfig

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday: simulated second 0
START_S = START.timestamp()

Ack = Callable[[], None]
Nack = Callable[[BaseException], None]
AsyncHandler = Callable[[Delivery, Ack, Nack], None]
"""Starts handling a delivery; calls ack() or nack(error) exactly once, whenever it is done."""
BatchHandler = Callable[[list[Delivery], Ack, Nack], None]
"""Likewise for a batch: one answer for all of it."""


class SimClock:
    """The engine's clock under SimPy: Unix seconds, `START` at simulated second 0."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env

    def now(self) -> float:
        # SimPy's `now` is a property over `_now`: read directly, several times a message.
        return START_S + self.env._now


class TwinCore:
    def __init__(
        self,
        env: simpy.Environment,
        cfg: BusConfig,
        rng: np.random.Generator,
        catalog: Catalog,
        partners: SimPartners,
        orders: OrchestratorConfig | None,
        opening: Callable[[], dict[RowKey, int]],
        retain_log_s: float | None = 6 * 3600,
        site_items: SiteItems | None = None,
    ) -> None:
        """`opening()` reads the WMS's stock for the engine's opening balance: at the start,
        and again after a crash that lost the store (the core reloads what it forgot; a
        movement the WMS's outbox resends after the reload then counts twice in the view).
        `orders=None`: the orders do not pass through the core (no order desk).
        `site_items`: the item masters of sites that keep their own (`engine.items`)."""
        self.site_items = site_items
        self.env = env
        self.cfg = cfg
        self.rng = rng
        self.clock = SimClock(env)
        self.catalog = catalog
        self.partners = partners
        self.orders_config = orders
        self.opening = opening
        self.retain_log_s = retain_log_s
        self.policy = RetryPolicy(
            max_attempts=cfg.max_attempts, initial_delay=cfg.initial_delay_s,
            multiplier=cfg.multiplier, max_delay=cfg.max_delay_s, jitter=cfg.jitter,
        )
        self.store = MemoryStore(retain_log_s)
        self.up = True
        self.crashes = 0
        self.loads = 0
        self._past = Counters()
        self._remote: dict[str, tuple[frozenset[str], AsyncHandler]] = {}
        self._generation = 0
        self._wake_at: float | None = None
        self._running = False
        self.lost_in_crash: list[Envelope] = []
        self._edi: EdiInbox | None = None
        self.redriven = 0
        self.items_replayed = 0
        self._arrivals: list[tuple[str, str]] = []
        """Movements requeued when the item they waited for reached their site."""
        self.on_dead_letter: Callable[[Envelope], None] | None = None
        """Told when the bus gives up on a message (for the simulator's ground truth)."""
        per_min = cfg.erp_batch_calls_per_min
        self.batcher = (Batcher(Batching(cfg.erp_batch_size, cfg.erp_batch_wait_s,
                                         cfg.erp_batch_calls, 60 / per_min if per_min else 0.0))
                        if cfg.erp_batch_size > 1 else None)
        """The core's batching policy for the ERP's bulk endpoint (None: one call each)."""
        self.erp_batch_handler: BatchHandler | None = None
        """Posts a batch of the ERP consumer's deliveries in one call (with `batcher`)."""
        self.engine = self._build()

    def _build(self) -> Engine:
        engine = Engine(self.store, self.clock, self.catalog, policy=self.policy,
                        rng=self.rng, orders=self.orders_config, call_rng=self.rng,
                        site_items=self.site_items)
        assert engine.remote[0] == "erp"
        for consumer, (types, _) in self._remote.items():
            if consumer not in engine.remote:
                engine.subscribe_remote(consumer, sorted(types))
        engine.on_publish = self.poke
        self.loads += engine.open_balances(self.opening(), "twin-start")
        self._consumers = [*engine.handlers, *self._remote]
        return engine

    @property
    def bus(self) -> Bus:
        return self.engine.bus

    # -- wiring ------------------------------------------------------------------------------

    def subscribe(self, consumer: str, types: Sequence[str], handler: AsyncHandler) -> None:
        """A remote consumer and its handler; the engine's own ``erp`` consumer takes a
        handler too (the twin posts to its ERP through it)."""
        self._remote[consumer] = (frozenset(types), handler)
        if consumer not in self.engine.remote:
            self.engine.subscribe_remote(consumer, list(types))
        self._consumers = [*self.engine.handlers, *self._remote]

    # -- ingress: False when the core is down (the producer must try again) -------------------

    def publish(self, envelope: Envelope) -> bool:
        if not self.up:
            return False
        self.engine.bus.publish(envelope, self.clock.now())
        self.poke()
        return True

    def accept_movement(self, record: MovementRecord, source: str) -> bool:
        if not self.up:
            return False
        self.engine.accept_movement(record, source)
        return True

    def accept_interchange(self, raw: bytes, source: str) -> EdiOutcome | None:
        """An X12 interchange through the core's `EdiInbox`, as the live route takes it;
        None when the core is down (no reply: the partner resends)."""
        if not self.up:
            return None
        if self._edi is None or self._edi.engine is not self.engine:
            self._edi = EdiInbox(self.engine)  # a restart built a new engine
        # Publishing inside the inbox's transaction must not step the engine before it
        # commits: mark the driver busy (a publish then schedules a wake), then step now.
        busy, self._running = self._running, True
        try:
            outcome = self._edi.receive(raw, source)
        finally:
            self._running = busy
        self.poke()
        return outcome

    def accept_order(self, order: SalesOrder) -> bool:
        if not self.up:
            return False
        self.engine.accept_order(order, "shop")
        return True

    def accept_shipment(self, shipment: Shipment) -> bool:
        if not self.up:
            return False
        self.engine.accept_shipment(shipment, f"wms-{shipment.warehouse_id}")
        return True

    def accept_milestone(self, milestone: ShipmentMilestone) -> bool:
        if not self.up:
            return False
        self.engine.accept_milestone(milestone, "carrier")
        return True

    def redrive(self, every_s: float) -> Generator[Any, Any, None]:
        """The operations team's round every `every_s`: requeue the dead letters the engine may
        retry as they are (`Engine.redrive`)."""
        while True:
            yield self.env.timeout(every_s)
            self.redrive_now()

    def redrive_now(self) -> None:
        if self.up:
            self.redriven += self.engine.redrive()

    def item_arrived(self, sku: str, site: str) -> None:
        """A site with its own item master now has `sku` (its WMS took the item)."""
        if self.up:
            self.items_replayed += self.engine.item_arrived(sku, site)
        else:
            self._arrivals.append((sku, site))  # told once the core is back

    def poke(self) -> None:
        """Something became ready (a publish, a requeue): look now."""
        if self._running:
            self._wake(self.env.now)
        else:
            self._step()  # what `_wake(now)` does, without the detour: once per message

    # -- the driver --------------------------------------------------------------------------

    def _wake(self, t: float) -> None:
        if t <= self.env.now and not self._running:
            # Due now: deliver inline rather than through a scheduled event (same simulated
            # time, one event fewer per message on the hot path).
            self._step()
            return
        if self._wake_at is not None and self._wake_at <= t:
            return
        self._wake_at = t
        at(self.env, t - self.env.now, self._run, t, self._generation)

    def _run(self, t: float, generation: int) -> None:
        if generation != self._generation or self._wake_at != t:
            return  # superseded by an earlier wake, or by a crash
        self._wake_at = None
        self._step()

    def _step(self) -> None:
        if not self.up:
            return
        self._running = True
        try:
            self._step_now()
        finally:
            self._running = False

    def _step_now(self) -> None:
        engine, generation = self.engine, self._generation
        now = START_S + self.env._now  # self.clock.now()
        timer = engine.desk.next_timer_at()
        if timer is not None and timer <= now:
            engine.fire_timers(now)
        remote, batcher = self._remote, self.batcher
        for d in engine.deliver(now, self._consumers):
            if batcher is not None and d.consumer == "erp":
                batcher.add([d], now)
                continue
            answer = _Answer(self, d, generation)
            remote[d.consumer][1](d, answer.ack, answer.nack)
        if batcher is not None and batcher.held:
            handler = self.erp_batch_handler
            assert handler is not None, "an ERP batching policy needs erp_batch_handler"
            for batch in batcher.ready(now):
                handler(batch, self._batch_acker(batch, generation),
                        self._batch_nacker(batch, generation))
            held_until = batcher.next_at()
            if held_until is not None:
                self._wake(max(held_until - START_S, self.env.now))
        if engine.calls_waiting(now):
            for call in engine.calls_due(now):
                self.partners.perform(call.op, call.body, self._answerer(call, generation))
        nxt = engine.next_wake_at()
        if nxt is not None:
            self._wake(max(nxt - START_S, self.env.now))

    def _answerer(self, call: Call, generation: int) -> Callable[[Any, BaseException | None],
                                                                   None]:
        def answered(answer: Any, error: BaseException | None) -> None:
            if generation != self._generation or not self.up:
                return  # the core crashed meanwhile: the restarted desk makes the call again
            if error is None:
                self.engine.answer(call, answer, None)
            elif isinstance(error, PayloadError):
                self.engine.answer(call, None, str(error))  # refused for good
            else:
                self.engine.call_failed(call, self.clock.now())
            self.poke()

        return answered

    def _batch_acker(self, batch: list[Delivery], generation: int) -> Ack:
        def ack() -> None:
            if generation == self._generation and self.up:
                assert self.batcher is not None
                self.batcher.done()
                self.engine.settle(batch, None, self.clock.now())
                self.poke()  # a call is free, and the batch's keys may have more waiting

        return ack

    def _batch_nacker(self, batch: list[Delivery], generation: int) -> Nack:
        def nack(error: BaseException) -> None:
            if generation == self._generation and self.up:
                assert self.batcher is not None
                self.batcher.done()
                exc = error if isinstance(error, Exception) else RuntimeError(str(error))
                outcomes = self.engine.settle(batch, exc, self.clock.now())
                if self.on_dead_letter is not None:
                    for d, outcome in zip(batch, outcomes, strict=True):
                        if outcome is Outcome.DEAD:
                            self.on_dead_letter(d.envelope)

        return nack

    # -- faults ------------------------------------------------------------------------------

    def crash(self) -> None:
        """The core process dies: in-flight work and (unless durable) the store are gone."""
        if not self.up:
            return
        self.up = False
        self.crashes += 1
        self._generation += 1
        self._wake_at = None
        if self.batcher is not None:
            self.batcher.drop()  # in flight: a durable store redelivers them after the restart
        self._accumulate()
        if not self.cfg.durable:
            self.lost_in_crash.extend(
                e for name in self.consumers() for e in self.engine.bus.in_flight(name)
            )
            self.store = MemoryStore(self.retain_log_s)

    def restart(self) -> None:
        if self.up:
            return
        self.up = True
        self.engine = self._build()  # a durable store hands back what was unfinished
        arrivals, self._arrivals = self._arrivals, []
        for sku, site in arrivals:
            self.item_arrived(sku, site)
        self.poke()

    def _accumulate(self) -> None:
        for k, v in self.engine.bus.counters.as_dict().items():
            setattr(self._past, k, getattr(self._past, k) + v)

    def counters(self) -> dict[str, int]:
        now = self.engine.bus.counters.as_dict()
        return {k: v + getattr(self._past, k) for k, v in now.items()}

    def consumers(self) -> list[str]:
        return [*self.engine.consumers, *self.engine.remote[1:]]

    def backlog(self) -> dict[str, int]:
        return {name: self.engine.bus.backlog(name) for name in self.consumers()}

    def lag(self) -> dict[str, float]:
        now = self.clock.now()
        return {name: self.engine.bus.lag(name, now) for name in self.consumers()}

    def in_flight_calls(self) -> int:
        return len(self.engine.desk.open_calls)


class _Answer:
    """One remote delivery's `ack` and `nack` (an object, not two closures: one per message).
    Either is ignored once the core crashed after the delivery (`generation` moved on)."""

    __slots__ = ("core", "delivery", "generation")

    def __init__(self, core: TwinCore, delivery: Delivery, generation: int) -> None:
        self.core = core
        self.delivery = delivery
        self.generation = generation

    def ack(self) -> None:
        core = self.core
        if self.generation == core._generation and core.up:
            now = START_S + core.env._now  # core.clock.now()
            core.engine.ack(self.delivery, now)
            # Most acks leave nothing ready (the key's queue is empty): no step then.
            nxt = core.engine.bus.next_due_at()
            if nxt is not None and nxt <= now:
                core.poke()

    def nack(self, error: BaseException) -> None:
        core = self.core
        if self.generation == core._generation and core.up:
            exc = error if isinstance(error, Exception) else RuntimeError(str(error))
            (outcome,) = core.engine.settle([self.delivery], exc, core.clock.now())
            if outcome is Outcome.DEAD and core.on_dead_letter is not None:
                core.on_dead_letter(self.delivery.envelope)


def sim_time(unix_s: float) -> float:
    """Simulated seconds of an engine time."""
    return unix_s - START_S


def when(seconds: float) -> datetime:
    """The datetime of a simulated second."""
    return datetime.fromtimestamp(START_S + seconds, UTC)
