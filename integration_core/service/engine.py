"""The service's engine: the same core objects the simulator drives, given a real clock.

One `SQLiteStore` file holds the bus log, the consumers' inboxes and state, dead letters and
(through a second connection) idempotency records. Consumers:

- ``wms``: the WMS view, the sum of acknowledged movements (``wms_on_hand``);
- ``erp``: the ERP twin's ledger (``erp_on_hand``, ``erp_applied``);
- ``orders``: the order desk, which drives the order-to-ship saga.

Everything here is synchronous and runs on the event loop's thread, one call at a time: the
store's connection is never used by two threads, and a request's read-check-write (an
idempotency key, a publish) cannot interleave with another's.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from integration_core.bus import Bus, DeadLetter, PublishResult, SQLiteStore, Tx
from integration_core.clock import Clock, SystemClock
from integration_core.envelope import Envelope, trusted_envelope, wrap
from integration_core.errors import NotFound
from integration_core.models import (
    Catalog,
    Movement,
    SalesOrder,
    Shipment,
    ShipmentMilestone,
)
from integration_core.reconciler import BalanceTable, Keyspace, Reconciler, ReconcileResult
from integration_core.service.config import Settings
from integration_core.service.erp import ErpTwin
from integration_core.service.idempotency import IdempotencyStore
from integration_core.service.ledger import Ledger, RowKey, add_deltas, movement_fields
from integration_core.service.orders import SHIPMENT_ORDER, TIMEOUT_TYPE, TYPES, OrderDesk

MOVEMENT = "inventory.movement"
WMS_ON_HAND = "wms_on_hand"
CONSUMERS = ("wms", "erp", "orders")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MESSAGE_ID = 200


def _message_id(text: str) -> str:
    """Within the envelope's 200 characters: long ids are replaced by a stable digest."""
    if len(text) <= _MAX_MESSAGE_ID:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Accepted:
    message_id: str
    position: int | None
    duplicate: bool


class Engine:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock if clock is not None else SystemClock()
        self.catalog: Catalog = settings.catalog()
        self.store = SQLiteStore(settings.db, synchronous=settings.synchronous)
        self.idempotency = IdempotencyStore(settings.db, settings.synchronous)
        self.bus = Bus(self.store, settings.retry_policy(), np.random.default_rng(settings.seed))
        self.erp = ErpTwin()
        self.wms = Ledger(WMS_ON_HAND)
        self.desk = OrderDesk(self.erp, self.catalog, self.clock)
        # A restarted engine resumes each consumer where its inbox says it was.
        self.bus.subscribe("wms", [MOVEMENT], from_beginning=True)
        self.bus.subscribe("erp", [MOVEMENT], from_beginning=True)
        self.bus.subscribe("orders", TYPES, from_beginning=True)
        self.handlers: dict[str, Callable[[Envelope, Tx], None]] = {
            # wms first: the WMS view is never behind the ERP within one transaction.
            "wms": self._wms_apply,
            "erp": self.erp.apply_movement,
            "orders": self.desk.handle,
        }
        self.recovered = {c: self.bus.backlog(c) for c in CONSUMERS}
        self.desk.load_timers(self.store)
        self.reconciler = Reconciler(self.catalog, epoch=EPOCH)
        self.keys = Keyspace()
        self.last_reconcile: ReconcileResult | None = None
        self.reconcile_runs = 0
        self.outcomes: Counter[str] = Counter()
        self.on_publish: Callable[[], None] = lambda: None
        """Set by the runner: wakes the delivery loop."""
        self.started_at = self.clock.now()

    def close(self) -> None:
        self.idempotency.close()
        self.store.close()

    # -- ingress -----------------------------------------------------------------------------

    def _publish(self, envelopes: Sequence[Envelope]) -> list[Accepted]:
        now = self.clock.now()
        if len(envelopes) == 1:
            results: list[PublishResult] = [self.bus.publish(envelopes[0], now)]
        else:
            results = self.bus.publish_many(envelopes, now)
        if any(not r.duplicate for r in results):
            self.on_publish()
        return [Accepted(r.message_id, r.position, r.duplicate) for r in results]

    def movement_envelope(self, m: Movement, source: str) -> Envelope:
        return wrap(m, source=source, occurred_at=m.occurred_at)

    def accept_movements(self, movements: Sequence[Movement], source: str) -> list[Accepted]:
        """Durable when this returns: one transaction for all of them."""
        return self._publish([self.movement_envelope(m, source) for m in movements])

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

    # -- delivery ----------------------------------------------------------------------------

    def _wms_apply(self, envelope: Envelope, tx: Tx) -> None:
        _, sku, location, lot, delta = movement_fields(envelope)
        self.wms.apply(tx, sku, location, lot, delta)

    def pump(self, now: float) -> int:
        """Handle what is due, up to `deliver_batch` deliveries, in one transaction."""
        outcomes = self.bus.process(self.handlers, now, limit=self.settings.deliver_batch)
        self.outcomes.update(o.value for o in outcomes)
        return len(outcomes)

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

    # -- reads -------------------------------------------------------------------------------

    def inventory(self, sku: str) -> dict[str, Any]:
        if sku not in self.catalog.items:
            raise NotFound(f"sku: unknown SKU {sku!r}")
        erp = self.erp.rows(self.store, sku)
        wms = add_deltas(self.wms.rows(self.store, sku), self.bus.in_flight("wms"), sku)
        to_erp = [e for e in self.bus.in_flight("erp") if e.payload.get("sku") == sku]
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

    def applied_counts(self, movement_ids: Iterable[str]) -> dict[str, int]:
        return self.erp.applied_counts(self.store, movement_ids)

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        dead = Counter(d.consumer for d in self.bus.dead_letters())
        return {
            "consumers": {
                c: {"backlog": self.bus.backlog(c), "lag_s": self.bus.lag(c, now),
                    "dead_letters": dead.get(c, 0), "recovered_at_start": self.recovered[c]}
                for c in CONSUMERS
            },
            "ingress_dead_letters": dead.get("ingress", 0),
            "next_due_at": self.bus.next_due_at(),
            "counters": self.bus.counters.as_dict(),
            "outcomes": dict(self.outcomes),
            "erp_mode": self.erp.mode,
            "last_reconcile": None if self.last_reconcile is None else
            divergence(self.last_reconcile),
        }

    # -- reconciliation ----------------------------------------------------------------------

    def reconcile(self, now: float | None = None) -> ReconcileResult:
        """ERP against WMS, with the movements still on their way to the ERP in flight.

        A movement the ERP dead-lettered is not in flight: its units are unexplained until
        someone requeues it (the reconciler's repairs are reported, not applied, here)."""
        now = self.clock.now() if now is None else now
        erp = self.erp.table(self.store)
        wms = add_deltas(self.wms.table(self.store), self.bus.in_flight("wms"))
        in_flight = [_movement(e) for e in self.bus.in_flight("erp") if e.type == MOVEMENT]
        self.reconcile_runs += 1
        result = self.reconciler.run(
            BalanceTable.from_dict(erp, self.keys), BalanceTable.from_dict(wms, self.keys), now,
            in_flight=in_flight, run_id=f"{self.reconcile_runs}@{now:.3f}",
        )
        self.last_reconcile = result
        return result


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
