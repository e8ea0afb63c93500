"""The integration engine, sans-I/O: the bus and its consumers, the order desk, inventory
posting, the saga's timers and reconciliation, over a `Store` and a `Clock` handed in.

Consumers:

- ``wms``: the core's WMS view, the sum of acknowledged movements (``wms_on_hand``), local;
- ``erp``: remote. A driver takes its due deliveries (`erp_due`), posts them to the ERP
  through its partner adapter and settles them here (`settle`): acked when the ERP booked
  them, retried or dead-lettered when it did not. The ERP books a message id once, so a
  redelivery is harmless;
- ``orders``: the order desk, which drives the order-to-ship saga (its partner calls go
  through the outbox, see `desk`; drivers take them from `calls_due`, make them through their
  partner adapter and report back with `answer` or `call_failed`).

A driver may add remote consumers of its own (`subscribe_remote`: the twin's item sync, say)
and deliver them like the ERP's: `due`, then `settle`.

Drivers (the live service's asyncio runner; the twin) supply time, storage and partners.
Every method is synchronous and must be called one at a time: a request's read-check-write
(an idempotency key, a publish) cannot interleave with another's.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import numpy as np

from integration_core.bus import (
    Bus,
    DeadLetter,
    Delivery,
    Outcome,
    RetryPolicy,
    Store,
    Tx,
)
from integration_core.clock import Clock
from integration_core.engine.calls import Call, CallSchedule
from integration_core.engine.desk import (
    REPLY_TYPE,
    SHIPMENT_ORDER,
    TIMEOUT_TYPE,
    TYPES,
    OrderDesk,
)
from integration_core.engine.items import SiteItems
from integration_core.engine.ledger import Ledger, RowKey, add_deltas, movement_fields
from integration_core.engine.partners import Stock
from integration_core.engine.redrive import redrivable
from integration_core.envelope import (
    MESSAGE_TYPES,
    MOVEMENT,
    Envelope,
    OrderCancellation,
    trusted_envelope,
    trusted_envelope_of,
    wrap,
)
from integration_core.errors import NotFound
from integration_core.models import (
    Catalog,
    Movement,
    ReturnAuthorization,
    SalesOrder,
    Shipment,
    ShipmentMilestone,
)
from integration_core.orchestrator import DEFAULT_CONFIG, OrchestratorConfig
from integration_core.reconcile import (
    AdjustmentRepair,
    BalanceTable,
    Keyspace,
    Reconciler,
    ReconcileResult,
    Repair,
    RepairGate,
)

WMS_ON_HAND = "wms_on_hand"
CONSUMERS = ("wms", "erp", "orders")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MESSAGE_ID = 200
_MOVEMENT_TYPE = MESSAGE_TYPES[MOVEMENT]


def _message_id(text: str) -> str:
    """Within the envelope's 200 characters: long ids are replaced by a stable digest."""
    if len(text) <= _MAX_MESSAGE_ID:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


class MovementRecord(NamedTuple):
    """A validated movement as the bus stores it: everything its envelope needs. A tuple:
    it crosses from the service's intake worker, and tuples unpickle fastest."""

    movement_id: str
    key: str
    occurred_at: datetime
    payload: dict[str, Any]

    @classmethod
    def of(cls, m: Movement) -> MovementRecord:
        # tuple.__new__ is what the NamedTuple's generated __new__ calls: one Python call less.
        return tuple.__new__(cls, (m.movement_id, _MOVEMENT_TYPE.key(m), m.occurred_at,
                                   m.json_dict()))


_VALUE = {o: o.value for o in Outcome}
"""Each outcome's name (`Outcome.value` is a property: two Python calls per read)."""
_APPLIED = _VALUE[Outcome.APPLIED]


class Accepted(NamedTuple):
    """What the core did with one message it was handed (a tuple: one per message)."""

    message_id: str
    position: int | None
    duplicate: bool
    conflict: bool = False
    """The id was stored before with other content; this one was not stored."""


class Engine:
    def __init__(self, store: Store, clock: Clock, catalog: Catalog, *,
                 policy: RetryPolicy | None = None, rng: np.random.Generator | None = None,
                 deliver_batch: int = 250, orders: OrchestratorConfig | None = DEFAULT_CONFIG,
                 call_rng: np.random.Generator | None = None,
                 repair_after_s: float | None = None,
                 site_items: SiteItems | None = None) -> None:
        """`store` is the engine's only state: an engine built again on the same store
        resumes each consumer where its inbox says it was (a restart). `rng` draws the bus's
        retry jitter, `call_rng` the outbox calls'. `orders=None`: no order desk (a landscape
        whose orders do not pass through the core). `repair_after_s`: how long a break must
        persist unchanged before its repair is carried out (`RepairGate`); None: reported only.
        `site_items`: the sites with an item master of their own (`engine.items`); None: every
        site shares the ERP's."""
        self.store = store
        self.site_items = site_items
        self.clock = clock
        self.catalog = catalog
        self.deliver_batch = deliver_batch
        self.bus = Bus(store, policy, rng if rng is not None else np.random.default_rng(0))
        self.wms = Ledger(WMS_ON_HAND)
        self.desk = OrderDesk(self.catalog, self.clock, orders or DEFAULT_CONFIG,
                              stock=self._on_hand)
        self.calls = CallSchedule(self.bus.policy, call_rng if call_rng is not None
                                  else np.random.default_rng(1))
        self.remote: list[str] = ["erp"]
        self.bus.subscribe("wms", [MOVEMENT], from_beginning=True)
        self.bus.subscribe("erp", [MOVEMENT], from_beginning=True)
        self.handlers: dict[str, Callable[[Envelope, Tx], None]] = {"wms": self._wms_apply}
        if orders is not None:
            self.bus.subscribe("orders", TYPES, from_beginning=True)
            self.handlers["orders"] = self.desk.handle
        self.consumers = [c for c in CONSUMERS if c in self.handlers or c == "erp"]
        self.recovered = {c: self.bus.backlog(c) for c in self.consumers}
        self.desk.load_timers(self.store)
        self.calls.add(self.desk.load_calls(self.store), self.clock.now())
        self.desk.take_new_calls()
        self.reconciler = Reconciler(self.catalog, epoch=EPOCH)
        self.keys = Keyspace()
        self.last_reconcile: ReconcileResult | None = None
        self.reconcile_runs = 0
        self.gate = None if repair_after_s is None else RepairGate(repair_after_s)
        self.ripe: list[Repair] = []
        """The last run's repairs whose break persisted (empty without a gate)."""
        self.repairs_posted = 0
        self.outcomes: Counter[str] = Counter()
        self.on_publish: Callable[[], None] = lambda: None
        """Set by the driver: wakes its delivery loop."""
        self.started_at = self.clock.now()

    # -- ingress -----------------------------------------------------------------------------

    def _publish(self, envelopes: Sequence[Envelope]) -> list[Accepted]:
        if len(envelopes) == 1:
            return [self._publish_one(envelopes[0])]
        results = self.bus.publish_many(envelopes, self.clock.now())
        if any(not r.duplicate for r in results):
            self.on_publish()
        return [Accepted._make(r) for r in results]

    def _publish_one(self, envelope: Envelope) -> Accepted:
        r = self.bus.publish(envelope, self.clock.now())
        if not r.duplicate:
            self.on_publish()
        return Accepted._make(r)

    def movement_envelope(self, m: Movement | MovementRecord, source: str) -> Envelope:
        """`wrap`'s envelope, built without validating again: the movement was validated
        against the item master and every other field is the core's own (the hot path of
        ingest)."""
        r = m if isinstance(m, MovementRecord) else MovementRecord.of(m)
        return trusted_envelope_of({
            "message_id": f"{MOVEMENT}:{r.movement_id}", "type": MOVEMENT,
            "schema_version": _MOVEMENT_TYPE.version, "source": source,
            "occurred_at": r.occurred_at, "correlation_id": r.movement_id, "causation_id": None,
            "key": r.key, "payload": r.payload,
        })

    def accept_movements(self, movements: Sequence[Movement | MovementRecord], source: str
                         ) -> list[Accepted]:
        """Durable when this returns: one transaction for all of them."""
        return self._publish([self.movement_envelope(m, source) for m in movements])

    def accept_movement(self, movement: Movement | MovementRecord, source: str) -> Accepted:
        """`accept_movements` of one (the twin's WMS hands over one at a time)."""
        return self._publish_one(self.movement_envelope(movement, source))

    def accept_order(self, order: SalesOrder, source: str) -> Accepted:
        return self._publish([wrap(order, source=source, occurred_at=order.placed_at)])[0]

    def accept_shipment(self, shipment: Shipment, source: str) -> Accepted:
        env = wrap(shipment, source=source, occurred_at=shipment.shipped_at,
                   correlation_id=shipment.order_id)
        return self._publish([env])[0]

    def accept_milestone(self, m: ShipmentMilestone, source: str) -> Accepted:
        # Correlate with the order when the shipment is known, so the order's trace finds it.
        order_id = self.store.get_state(SHIPMENT_ORDER, m.shipment_id)
        mid = _message_id(f"shipment.milestone:{m.shipment_id}:{m.milestone.value}:"
                          f"{m.at.isoformat()}")
        env = wrap(m, source=source, occurred_at=m.at, message_id=mid,
                   correlation_id=order_id or m.shipment_id)
        return self._publish([env])[0]

    def accept_cancellation(self, c: OrderCancellation, source: str) -> Accepted:
        """The customer's cancel; one per order (a second is the bus's duplicate)."""
        return self._publish([wrap(c, source=source, occurred_at=c.requested_at)])[0]

    def accept_return(self, rma: ReturnAuthorization, source: str) -> Accepted:
        """A return authorized (RMA); one per RMA id."""
        return self._publish([wrap(rma, source=source, occurred_at=rma.authorized_at,
                                   correlation_id=rma.order_id)])[0]

    # -- delivery ----------------------------------------------------------------------------

    def _wms_apply(self, envelope: Envelope, tx: Tx) -> None:
        _, sku, location, lot, delta = movement_fields(envelope)
        if self.site_items is not None and not self.site_items.maps(sku, location):
            raise _unmapped(sku, location)
        self.wms.apply(tx, sku, location, lot, delta)

    def _mapped(self, deliveries: list[Delivery], now: float) -> list[Delivery]:
        """The ERP's deliveries whose item the site's master maps; the others are
        dead-lettered until the item reaches the site."""
        items = self.site_items
        if items is None:
            return deliveries
        out = []
        for d in deliveries:
            if d.consumer == "erp" and d.envelope.type == MOVEMENT:
                _, sku, location, _, _ = movement_fields(d.envelope)
                if not items.maps(sku, location):
                    self.settle([d], _unmapped(sku, location), now)
                    continue
            out.append(d)
        return out

    def item_arrived(self, sku: str, location: str) -> int:
        """`sku` reached the item master of the site at `location`: replay the movements that
        waited for it (dead-lettered as unmapped). Returns how many were requeued."""
        if self.site_items is None or not self.site_items.arrived(sku, location):
            return 0
        waiting = [d for d in self.bus.dead_letters()
                   if d.envelope is not None and d.envelope.type == MOVEMENT
                   and not d.transient and d.cause_type == "NotFound"
                   and movement_fields(d.envelope)[1:3] == (sku, location)]
        now = self.clock.now()
        for d in waiting:
            self.bus.requeue(d.id, now)
        if waiting:
            self.on_publish()
        return len(waiting)

    def _on_hand(self, tx: Tx, sku: str, location: str | None) -> dict[str, int]:
        """The WMS view of one SKU by location (lots summed), for the desk's allocation."""
        item = self.catalog.items.get(sku)
        if location is not None and (item is None or not item.lot_tracked):
            return {location: self.wms.get(tx, sku, location, None)}  # one key, no scan
        out: dict[str, int] = {}
        for (_, loc, _lot), qty in self.wms.rows(self.store, sku).items():
            if location is None or loc == location:
                out[loc] = out.get(loc, 0) + qty
        return out

    def open_balances(self, rows: dict[RowKey, int], load_id: str = "1") -> bool:
        """Load the WMS view's opening balance (an initial load from the WMS's own stock
        report, before its movements flow): the rows replace what the view held, in one
        transaction, once per `load_id` (False: loaded before)."""
        def write(tx: Tx) -> None:
            for (sku, location, lot), qty in rows.items():
                self.wms.put(tx, sku, location, lot, qty)

        return self.store.apply("wms-opening", f"opening-balance:{load_id}", write)

    def pump(self, now: float) -> int:
        """Handle what is due, up to `deliver_batch` deliveries, in one transaction."""
        outcomes = self.bus.process(self.handlers, now, limit=self.deliver_batch)
        self.outcomes.update(o.value for o in outcomes)
        return len(outcomes)

    def deliver(self, now: float, consumers: Iterable[str]) -> list[Delivery]:
        """`pump` without its limit, in one pass with the remote consumers: of what is due to
        `consumers`, handles the local ones' and hands back the remote ones', marked in
        flight (for a driver on an in-memory store, where one `due` a step counts; it keeps
        the list, `[*engine.handlers, *its remote consumers]`)."""
        due = self.bus.due(now, None, consumers=consumers)
        if self.site_items is not None:
            due = self._mapped(due, now)
        handlers = self.handlers
        local: list[Delivery] = []
        remote: list[Delivery] = []
        for d in due:
            (local if d.consumer in handlers else remote).append(d)
        if local:
            outcomes = self.outcomes
            for o in self.bus.run(local, handlers, now):
                outcomes[_VALUE[o]] += 1
        return remote

    def fire_timers(self, now: float) -> int:
        """Publish the saga's due timeouts as messages: the bus dedupes them by timeout id
        and delivers them through the order desk's inbox, so each fires at most once."""
        envs = [
            trusted_envelope(
                message_id=_message_id(f"{TIMEOUT_TYPE}:{timeout_id}"), type=TIMEOUT_TYPE,
                schema_version=1, source="core", occurred_at=datetime.fromtimestamp(now, UTC),
                correlation_id=order_id, causation_id=None, key=order_id,
                payload={"order_id": order_id, "timeout_id": timeout_id},
            )
            for order_id, timeout_id in self.desk.due_timers(self.store, now)
        ]
        return len(self._publish(envs)) if envs else 0

    def next_due_at(self) -> float | None:
        return self.bus.next_due_at()

    # -- remote consumers: the ERP's, and any a driver adds ---------------------------------

    def subscribe_remote(self, consumer: str, types: Sequence[str]) -> None:
        """A consumer whose partner the driver calls itself (`due`, then `settle`)."""
        self.bus.subscribe(consumer, list(types), from_beginning=True)
        self.remote.append(consumer)

    def due(self, consumers: Sequence[str], now: float, limit: int | None = None
            ) -> list[Delivery]:
        """Deliveries due to remote consumers, marked in flight (at most one per ordering
        key and consumer)."""
        return self._mapped(self.bus.due(now, limit, consumers=consumers), now)

    def erp_due(self, now: float, limit: int) -> list[Delivery]:
        """Movements due to the ERP, marked in flight (at most one per ordering key)."""
        return self.due(["erp"], now, limit)

    @staticmethod
    def posting(d: Delivery) -> dict[str, Any]:
        """The movement as a `Posting` record (a plain dict: built 20,000 times a second)."""
        mid, sku, location, lot, delta = movement_fields(d.envelope)
        return {"message_id": d.envelope.message_id, "movement_id": mid, "sku": sku,
                "location": location, "lot": lot, "delta": delta}

    def settle(self, deliveries: Sequence[Delivery], error: Exception | None,
               now: float) -> list[Outcome]:
        """Ack what the partner took (or had taken before); retry or dead-letter on `error`,
        in one transaction."""
        if error is None:  # one store write; all due again if it does not commit
            self.bus.ack_many(deliveries, now)
            self.outcomes[_APPLIED] += len(deliveries)
            return [Outcome.APPLIED] * len(deliveries)
        with self.bus.transaction(now, deliveries):  # likewise, for all the nacks
            outcomes = [self.bus.nack(d, error, now) for d in deliveries]
        self.outcomes.update(o.value for o in outcomes)
        self.on_publish()  # retries are due later: the delivery loop recomputes its sleep
        return outcomes

    def ack(self, delivery: Delivery, now: float) -> None:
        """`settle` of one delivery the partner took (the twin's, one message at a time)."""
        self.bus.ack(delivery, now)
        self.outcomes[_APPLIED] += 1

    # -- the outbox ---------------------------------------------------------------------------

    @property
    def has_new_calls(self) -> bool:
        return bool(self.desk.new_calls)

    def calls_due(self, now: float) -> list[Call]:
        """Outbox calls to make now: new ones, and failed ones whose backoff is over. A store
        that fails while their records are read loses none: every call taken is due again a
        second later (a failure of our own storage is an outage, never a loss)."""
        self.calls.add(self.desk.take_new_calls(), now)
        due = self.calls.due(now)
        out = []
        try:
            for call_id, attempt in due:
                record = self.desk.open_call(self.store, call_id)
                if record is not None:  # answered meanwhile (made twice around a restart)
                    out.append(Call(record, attempt))
        except Exception:
            self.calls.again(due, now + 1.0)
            raise
        return out

    def call_failed(self, call: Call, now: float, delay: float | None = None) -> float:
        """The partner did not answer (down, slow, lost): make the call again later; returns
        when."""
        return self.calls.retry(call, now, delay)

    def answer(self, call: Call, answer: dict[str, Any] | None, error: str | None) -> None:
        """The partner answered (`error`: it refused for good)."""
        self.publish_reply(call.record, answer, error)

    def next_wake_at(self) -> float | None:
        """The earliest of: a delivery due, a saga timer, an outbox call's retry."""
        t = self.bus.next_due_at()
        timer = self.desk.next_timer_at()
        if timer is not None and (t is None or timer < t):
            t = timer
        call = self.calls.next_at()
        if call is not None and (t is None or call < t):
            t = call
        return t

    def calls_waiting(self, now: float) -> bool:
        """Whether `calls_due` has anything now: new calls, or a retry whose time came."""
        if self.desk.new_calls:
            return True
        t = self.calls.next_at()
        return t is not None and t <= now

    def publish_reply(self, call: dict[str, Any], answer: dict[str, Any] | None,
                      error: str | None) -> None:
        """A partner's answer to an outbox call, on its way back to the order desk."""
        oid = call["order_id"]
        env = trusted_envelope(
            message_id=_message_id(f"{REPLY_TYPE}:{call['call_id']}"), type=REPLY_TYPE,
            schema_version=1, source=call["op"], occurred_at=datetime.fromtimestamp(
                self.clock.now(), UTC), correlation_id=oid, causation_id=None, key=oid,
            payload={"call_id": call["call_id"], "answer": answer, "error": error},
        )
        self._publish([env])

    # -- reads -------------------------------------------------------------------------------

    def check_sku(self, sku: str) -> None:
        if sku not in self.catalog.items:
            raise NotFound(f"unknown SKU {sku!r}", field="sku")

    def snapshot(self, sku: str | None = None) -> tuple[dict[RowKey, int], list[Envelope]]:
        """The WMS view (what its consumer applied plus what it has queued) and the movements
        not yet acknowledged by the ERP, at one instant: the runner fences ERP deliveries off
        while it asks the ERP, so the ERP's answer describes the same instant."""
        if sku is None:
            wms = add_deltas(self.wms.table(self.store), self.bus.in_flight("wms"))
            pending = [e for e in self.bus.in_flight("erp") if e.type == MOVEMENT]
        else:
            wms = add_deltas(self.wms.rows(self.store, sku), self.bus.in_flight("wms"), sku)
            pending = [e for e in self.bus.in_flight("erp") if e.payload.get("sku") == sku]
        return wms, pending

    @staticmethod
    def unbooked(pending: list[Envelope], stock: Stock) -> list[Envelope]:
        """Pending movements the ERP has not booked yet: the ones truly in flight (a booking
        whose answer was lost is in the ERP's stock already)."""
        booked = set(stock.booked)
        return [e for e in pending if e.payload["movement_id"] not in booked]

    def inventory(self, sku: str, wms: dict[RowKey, int], pending: list[Envelope],
                  stock: Stock) -> dict[str, Any]:
        erp = stock.table()
        to_erp = self.unbooked(pending, stock)
        flight = add_deltas({}, to_erp, sku)
        rows = []
        unexplained = 0
        for key in sorted(set(erp) | set(wms) | set(flight), key=_row_order):
            e, w, f = erp.get(key, 0), wms.get(key, 0), flight.get(key, 0)
            unexplained += abs(w - e - f)
            rows.append({"location": key[1], "lot": key[2], "erp_on_hand": e, "wms_on_hand": w,
                         "in_flight_units": f, "unexplained_units": w - e - f})
        return {
            "sku": sku,
            "erp_on_hand": sum(erp.values()),
            "wms_on_hand": sum(wms.values()),
            "in_flight_units": sum(flight.values()),
            "in_flight_movements": len(to_erp),
            "unexplained_units": unexplained,
            "rows": rows,
        }

    def order(self, order_id: str) -> dict[str, Any]:
        return self.desk.view(self.store, order_id, self.bus.in_flight("orders"))

    def dead_letters(self, consumer: str | None = None) -> list[DeadLetter]:
        return self.bus.dead_letters(consumer)

    def requeue(self, dead_letter_id: str, fixed: Envelope | None = None) -> None:
        self.bus.requeue(dead_letter_id, self.clock.now(), fixed)
        self.on_publish()

    def redrive(self) -> int:
        """Requeue every dead letter a redrive policy may retry as it is
        (`integration_core.engine.redrive.redrivable`); returns how many."""
        letters = redrivable(self.bus.dead_letters())
        now = self.clock.now()
        for d in letters:
            self.bus.requeue(d.id, now)
        if letters:
            self.on_publish()
        return len(letters)

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        dead = Counter(d.consumer for d in self.bus.dead_letters())
        return {
            # Nothing left to do: no consumer has a message waiting, no partner call is open.
            "drained": (all(self.bus.backlog(c) == 0 for c in self.consumers)
                        and not self.desk.open_calls),
            "consumers": {
                c: {"backlog": self.bus.backlog(c), "lag_s": self.bus.lag(c, now),
                    "dead_letters": dead.get(c, 0), "recovered_at_start": self.recovered[c]}
                for c in self.consumers
            },
            "ingress_dead_letters": dead.get("ingress", 0),
            "outbox": {"open_calls": len(self.desk.open_calls)},
            "next_due_at": self.bus.next_due_at(),
            "counters": self.bus.counters.as_dict(),
            "outcomes": dict(self.outcomes),
            "last_reconcile": None if self.last_reconcile is None else
            divergence(self.last_reconcile),
            "repairs": {"gate_s": None if self.gate is None else self.gate.after_s,
                        "ripe": len(self.ripe), "posted": self.repairs_posted},
        }

    # -- reconciliation ----------------------------------------------------------------------

    def reconcile(self, wms: dict[RowKey, int], pending: list[Envelope], stock: Stock,
                  now: float | None = None) -> ReconcileResult:
        """ERP against WMS (both from one `snapshot` instant), with the movements the ERP has
        not booked yet in flight.

        A movement the ERP dead-lettered is not in flight: its units are unexplained until
        someone requeues it. With a repair gate, the run's ripe repairs are in `ripe` and the
        ERP's share of them in `repair_postings()`, for the driver to post."""
        now = self.clock.now() if now is None else now
        erp = stock.table()
        in_flight = [_movement(e) for e in self.unbooked(pending, stock)]
        self.reconcile_runs += 1
        result = self.reconciler.run(
            BalanceTable.from_dict(erp, self.keys), BalanceTable.from_dict(wms, self.keys), now,
            in_flight=in_flight, run_id=f"{self.reconcile_runs}@{now:.3f}",
        )
        self.last_reconcile = result
        self.ripe = [] if self.gate is None else self.gate.ripe(result, now)
        return result

    def repair_postings(self) -> list[dict[str, Any]]:
        """The ripe adjustments the ERP must book (toward the system of record), as postings:
        the adjustment's id is the idempotency key, so posting one again is harmless. A repair
        aimed at the WMS side is reported only: the core cannot change a warehouse's shelves."""
        out = []
        for r in self.ripe:
            if isinstance(r, AdjustmentRepair) and r.target == "erp":
                m = r.movement
                out.append({"message_id": f"repair:{m.movement_id}", "movement_id": m.movement_id,
                            "sku": m.sku, "location": m.location, "lot": m.lot,
                            "delta": m.delta})
        return out


def _row_order(key: RowKey) -> tuple[str, str]:
    return key[1], key[2] or ""


def divergence(r: ReconcileResult) -> dict[str, Any]:
    d = r.divergence
    return {"run_id": r.run_id, "divergence_units": d.divergence_units,
            "in_flight_units": d.in_flight_units, "unexplained_units": d.unexplained_units,
            "skus_out_of_sync": d.skus_out_of_sync}


def _movement(envelope: Envelope) -> Movement:
    # Validated at ingress; the reconciler reads ids, keys and the signed delta only.
    p = envelope.payload
    return Movement.model_construct(**{**p, "quantity_base": int(p["quantity_base"])})


def _unmapped(sku: str, location: str) -> NotFound:
    return NotFound(f"{sku!r} is not in the item master of site {location!r} yet; replayed "
                    "when it arrives", field="sku")
