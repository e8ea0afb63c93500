"""Order-to-ship flow: shop orders, release to the WMS, waves, pick/pack, carrier label,
shipment confirmation and invoice.

Order release by pattern:
- direct: the ERP calls the WMS itself, blocking with a timeout and a few retries, then gives
  up (the order is stuck until someone notices). No core in the path: this pattern exists in
  the twin only, as the baseline the others are measured against;
- orchestrated / event_driven: the shop places the order with the core, whose order desk
  (`integration_core.engine`, the one the live service runs) drives the saga: it allocates
  against available-to-promise, asks the ERP twin for credit, releases to the WMS twin and has
  the ERP invoice, through the SimPy partner adapter (`sim.partners`). This module plays the
  shop, the warehouse and the carrier, and serves the partners' side of those calls.

The warehouse books the carrier's label itself (trying the next service when the carrier
fails), ships, and confirms the shipment: directly to the ERP (a worker calls and waits,
blocking the warehouse) or to the core through its outbox, which resends until the core
acknowledges.

Orders go to the sites by `order_weight` (evenly when the weights are equal).

Cancellations and returns (`shop.cancel_*`, `shop.return_*`): whether a customer cancels or
returns, and when, is drawn when the order is placed, each from a stream of its own, so every
pattern sees the same customers (and, at rates of 0, nothing is drawn: the other draws do not
move). Through the core the shop sends the cancel to the saga, which cancels at once before
release or asks the WMS (`cancel_release`); the WMS cancels an order it has not waved yet and
refuses once picking has begun. Without a core (direct) the ERP calls the WMS's cancel itself,
blocking, with the direct pattern's retries. A return is received at the warehouse (a
``return`` movement: the units back on the shelf, synced to the ERP as any movement, so
divergence sees it) and credited by the ERP: through the core the RMA goes to the saga, which
has the ERP post the credit memo; without one the shop calls the ERP directly.
"""
from __future__ import annotations

import csv
from collections import Counter, deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from itertools import pairwise
from typing import Any

import numpy as np

from integration_core.bus import Delivery
from integration_core.engine.desk import CANCEL_REFUSED, ORDERS
from integration_core.engine.partners import (
    CancelAnswer,
    CancelRelease,
    CreditAnswer,
    CreditCheck,
    CreditMemoAnswer,
    CreditMemoRequest,
    InvoiceAnswer,
    InvoiceRequest,
    Release,
    ReleaseAnswer,
)
from integration_core.envelope import Envelope, OrderCancellation, wrap
from integration_core.errors import TransientError
from integration_core.models import (
    Milestone,
    OrderLine,
    ReturnAuthorization,
    ReturnLine,
    SalesOrder,
    Shipment,
    ShipmentLine,
    ShipmentMilestone,
)
from integration_core.orchestrator import (
    EXCEPTION_SPECS,
    TERMINAL,
    ExceptionType,
    OrchestratorConfig,
)
from integration_core.orchestrator import Status as Status_
from sim.calls import call, direct_call
from sim.columns import Column
from sim.core import sim_time, when
from sim.distributions import sampler
from sim.inventory import OUTBOX_RESEND_S
from sim.kernel import at
from sim.landscape import Landscape
from sim.scenario import Pattern
from sim.systems.endpoint import Status
from sim.systems.wms import KINDS, zipf_probabilities

PICK = KINDS.index(next(k for k in KINDS if k.value == "pick"))
RETURN = KINDS.index(next(k for k in KINDS if k.value == "return"))
FLOWS = ("order_release", "order_to_ship", "ship_to_invoice", "cancel_to_confirmed",
         "return_to_credit")
"""The latency flows this module measures: cancel requested -> cancellation confirmed (the
saga cancelled, or the ERP heard the WMS's yes), return received -> credit memo posted."""
SHIPMENTS = "erp-shipments"
SERVICES = ("standard", "express", "economy")
"""The carrier services the warehouse tries in turn when the carrier fails."""


@dataclass
class _Order:
    order: SalesOrder
    warehouse: int
    rows: list[int]
    placed_at: float
    released_at: float | None = None
    shipped_at: float | None = None
    invoiced: bool = False
    stuck: bool = False
    picked: dict[int, int] = field(default_factory=dict)
    confirmation_acked: bool = False
    accepted: bool = False
    """The core acknowledged the order (saga patterns)."""
    cancel: tuple[bool, float] | None = None
    """The customer will cancel: (after release?, delay s); drawn at placement."""
    return_after_s: float | None = None
    """The customer returns the order this long after delivery; drawn at placement."""
    waved: bool = False
    """The WMS started picking it: too late to cancel there."""
    wms_cancelled: bool = False
    """The WMS cancelled it (or refuses its release: the cancel came first)."""
    cancel_due: bool = False
    """The customer's cancel is scheduled and not sent yet: the run is not settled."""
    cancel_requested_at: float | None = None
    cancelled: bool = False
    """The cancellation was confirmed (direct: the ERP heard the WMS's yes)."""
    returned_at: float | None = None
    credited: bool = False
    credit_given_up: bool = False


class OrderFlow:
    def __init__(self, twin: Landscape,
                 on_pick: Callable[[int, int, int, int], None]) -> None:
        """`on_pick(warehouse, row, kind, delta)`: the WMS's movement for a pick, on its way
        to the ERP by the inventory pattern."""
        self.t = twin
        self._on_pick = on_pick
        sc = twin.scenario
        self.release_pattern = sc.patterns.resolved("order_release")
        self.confirm_pattern = sc.patterns.resolved("shipment_confirmation")
        self.saga = self.release_pattern is not Pattern.DIRECT
        self._carrier_fail = sc.carrier.failure_probability
        self._carrier_rng = twin.streams.get("carrier/failures")
        self._rng = twin.streams.get("orders")
        self._lookup_rng = twin.streams.get("orders/status-lookups")
        self._lines = sampler(sc.shop.lines_per_order, twin.streams.get("orders/lines"))
        self._units = sampler(sc.shop.units_per_line, twin.streams.get("orders/units"))
        self._transit = sampler(sc.carrier.in_transit_h, twin.streams.get("carrier/transit"))
        self._pickup = sampler(sc.carrier.pickup_h, twin.streams.get("carrier/pickup"))
        self.milestones: Counter[str] = Counter()
        self._pick = [sampler(w.pick_time_s, twin.streams.get(f"pick/{w.id}"))
                      for w in sc.warehouses]
        self._sku_p = zipf_probabilities(sc.catalog.skus, sc.catalog.zipf_s)
        weights = np.array([w.order_weight for w in sc.warehouses], dtype=np.float64)
        self._site_p = None if np.all(weights == weights[0]) else weights / weights.sum()
        """Routing by weight; None: evenly, drawn as before weights existed (same results)."""
        shop = sc.shop
        self._cancel_p = (shop.cancel_before_release, shop.cancel_after_release)
        self._cancel_rng = twin.streams.get("shop/cancels")
        self._cancel_delay = sampler(shop.cancel_delay_s, twin.streams.get("shop/cancels/delay"))
        self._return_rng = twin.streams.get("shop/returns")
        self._return_delay = sampler(shop.return_delay_h, twin.streams.get("shop/returns/delay"))
        self.cancels_requested = 0
        self.cancels_refused = 0
        """Direct only (through the core, the desk's trace says)."""
        self.cancels_given_up = 0
        self.returned_units = 0
        self._desk_read = False
        self.orders: dict[str, _Order] = {}
        self.released: list[deque[str]] = [deque() for _ in sc.warehouses]
        self.blocked_s = 0.0
        self.release_given_up = 0
        self.lookup_failures = 0
        self.lat = {f: Column(np.float64) for f in FLOWS}
        self.lat_at = {f: Column(np.float64) for f in self.lat}
        self.lat_site = {f: Column(np.int32) for f in self.lat}
        """The warehouse (index) each sample belongs to: per-site KPIs."""
        if self.saga:
            self._serve(twin)
        elif self.confirm_pattern is not Pattern.DIRECT:
            twin.core.subscribe(SHIPMENTS, ["shipment.confirmed"], self._deliver_confirmation)

    @staticmethod
    def desk_config() -> OrchestratorConfig:
        """The order desk's saga settings in the twin: backorders are asked again hourly (the
        default is daily: longer than most runs)."""
        return OrchestratorConfig(timeouts={Status_.BACKORDERED: 3600.0})

    def _serve(self, twin: Landscape) -> None:
        """The partners' side of the order desk's calls, through the partner port."""
        p, erp_link, wms_link = twin.partners, twin.links["core_erp"], twin.links["wms_core"]
        p.serve("credit_check", erp_link, lambda _r: twin.erp_api, self._credit)
        p.serve("invoice", erp_link, lambda _r: twin.erp_api, self._invoice)
        p.serve("release", wms_link, lambda r: twin.wms_apis[self.orders[r.order_id].warehouse],
                self._release)
        p.serve("cancel_release", wms_link,
                lambda r: twin.wms_apis[self.orders[r.order_id].warehouse], self._cancel_release)
        p.serve("credit_memo", erp_link, lambda _r: twin.erp_api, self._credit_memo)

    # -- shop --------------------------------------------------------------------------------

    def start(self) -> None:
        sc, env = self.t.scenario, self.t.env
        if sc.shop.arrivals_csv is not None:
            env.process(self._replay(sc.shop.arrivals_csv))
        elif sc.shop.orders_per_hour > 0:
            env.process(self._arrivals())
        for w, cfg in enumerate(sc.warehouses):
            env.process(self._waves(w, cfg.wave_interval_min * 60))

    def _arrivals(self) -> Generator[Any, Any, None]:
        """Non-homogeneous Poisson arrivals by thinning: draw at the peak rate, keep each with
        probability rate(t) / peak (daily x weekly profile, normalised to mean 1)."""
        sc, env, rng = self.t.scenario, self.t.env, self._rng
        shop = sc.shop
        daily = np.array(shop.daily_profile) / (np.mean(shop.daily_profile) or 1.0)
        weekly = np.array(shop.weekly_profile) / (np.mean(shop.weekly_profile) or 1.0)
        base = shop.orders_per_hour * shop.peak_multiplier / 3600
        peak = base * daily.max() * weekly.max()
        if peak <= 0:
            return
        n = 0
        while True:
            yield env.timeout(float(rng.exponential(1 / peak)))
            if env.now >= sc.duration_s:
                return
            hour = int(env.now // 3600)
            if rng.random() * peak <= base * daily[hour % 24] * weekly[(hour // 24) % 7]:
                n += 1
                self._place(f"SO-{n:07d}")

    def _replay(self, path: str) -> Generator[Any, Any, None]:
        """Orders at the times a CSV lists (seconds from the start, first column)."""
        env, end = self.t.env, self.t.scenario.duration_s
        for n, t in enumerate(read_arrivals(path), start=1):
            if t >= end:
                return
            yield env.timeout(max(0.0, t - env.now))
            self._place(f"SO-{n:07d}")

    def _place(self, order_id: str) -> None:
        t = self.t
        n_lines = max(1, round(self._lines()))
        n_sites = len(t.warehouse_ids)
        w = (int(self._rng.integers(n_sites)) if self._site_p is None
             else int(self._rng.choice(n_sites, p=self._site_p)))
        # Customers buy what the warehouse moves most: the stream's popularity order.
        ranks = self._rng.choice(len(self._sku_p), size=n_lines, replace=False, p=self._sku_p)
        skus = t.popularity[w][ranks]
        lines = tuple(
            OrderLine(line_no=i + 1, sku=f"SKU-{int(s):05d}",
                      quantity=Decimal(max(1, round(self._units()))), unit_price=Decimal(10))
            for i, s in enumerate(skus)
        )
        order = SalesOrder(order_id=order_id, customer_id="C-1", lines=lines,
                           placed_at=when(t.env.now), ship_from=t.warehouse_ids[w])
        rec = _Order(order, w, [t.row_of(ln.sku, t.warehouse_ids[w]) for ln in lines], t.env.now)
        t.offered.order(t.env.now, order_id, w,
                        ((int(s), int(ln.quantity)) for s, ln in zip(skus, lines, strict=True)))
        self.orders[order_id] = rec
        self._customer(rec)
        lookups = t.scenario.shop.status_lookups_per_order
        if lookups:
            rng = self._lookup_rng
            for delay in rng.uniform(0, 48 * 3600, rng.poisson(lookups)):
                at(t.env, float(delay), self._status_lookup, rec)
        if self.saga:
            self._send_order(rec, 0)
        else:
            self._direct_release(rec)

    def _customer(self, rec: _Order) -> None:
        """Draw whether this customer cancels or returns, and when. Nothing is drawn at a
        rate of 0, so scenarios without them keep every draw they had."""
        before, after = self._cancel_p
        if before or after:
            u = self._cancel_rng.random()
            if u < before + after:
                rec.cancel = (u >= before, max(0.0, self._cancel_delay()))
                if not rec.cancel[0]:
                    rec.cancel_due = True
                    at(self.t.env, rec.cancel[1], self._request_cancel, rec)
        rate = self.t.scenario.shop.return_rate
        if rate and self._return_rng.random() < rate:
            rec.return_after_s = max(0.0, self._return_delay()) * 3600

    def _send_order(self, rec: _Order, resends: int) -> None:
        """The shop's outbox: place the order with the core, again later while it is down."""
        if self.t.core.accept_order(rec.order):
            rec.accepted = True
            return
        at(self.t.env, OUTBOX_RESEND_S[min(resends, len(OUTBOX_RESEND_S) - 1)],
           self._send_order, rec, resends + 1)

    def _status_lookup(self, rec: _Order) -> None:
        """A customer asks where the order is. The core answers from the saga's state; without
        a core the shop asks the ERP, which costs an API call and fails while it is down."""
        t = self.t
        if self.saga:
            t.api_calls["core"] += 1
            return

        def result(status: Status, _v: object) -> None:
            if status is not Status.OK:
                self.lookup_failures += 1

        t.api_calls["erp"] += 1
        link = t.links["core_erp"]
        call(t.env, link, t.erp_api, link, lambda: rec.released_at, t.scenario.direct.timeout_s,
             result)

    # -- direct release: the ERP calls the WMS and waits ------------------------------------

    def _direct_release(self, rec: _Order) -> None:
        t = self.t

        def final(status: Status, _v: object) -> None:
            if status is not Status.OK:
                self.release_given_up += 1
                rec.stuck = True

        direct_call(t.env, t.links["wms_erp"], t.wms_apis[rec.warehouse],
                    lambda: self._wms_accept(rec), t.scenario.direct, final,
                    t.count_call("wms"))

    # -- the partners' side of the order desk's calls ----------------------------------------

    def _credit(self, request: CreditCheck) -> CreditAnswer:
        """The ERP twin's credit check: no credit model, every customer is good (as the live
        ERP twin answers)."""
        return CreditAnswer(approved=True)

    def _release(self, request: Release) -> ReleaseAnswer:
        if not self._wms_accept(self.orders[request.order_id]):
            return ReleaseAnswer(accepted=False, reason="cancelled before the release came")
        return ReleaseAnswer(accepted=True)

    def _cancel_release(self, request: CancelRelease) -> CancelAnswer:
        if self._wms_cancel(self.orders[request.order_id]):
            return CancelAnswer(cancelled=True)
        return CancelAnswer(cancelled=False, reason="picking has begun")

    def _credit_memo(self, request: CreditMemoRequest) -> CreditMemoAnswer:
        self._erp_credit(self.orders[request.order_id])
        return CreditMemoAnswer(credit_memo_id=f"CM-{request.rma_id}")

    def _invoice(self, request: InvoiceRequest) -> InvoiceAnswer:
        return InvoiceAnswer(invoice_id=self._erp_invoice(self.orders[request.order_id]))

    # -- WMS ---------------------------------------------------------------------------------

    def _wms_accept(self, rec: _Order) -> bool:
        """The WMS's release API: idempotent on the order id (a resend is not a new order).
        False: the order was cancelled before its release came."""
        if rec.wms_cancelled:
            return False
        if rec.released_at is None:
            rec.released_at = self.t.env.now
            self._record("order_release", self.t.env.now - rec.placed_at, rec.warehouse)
            self.released[rec.warehouse].append(rec.order.order_id)
            if rec.cancel is not None and rec.cancel[0]:
                rec.cancel_due = True
                at(self.t.env, rec.cancel[1], self._request_cancel, rec)
        return True

    def _wms_cancel(self, rec: _Order) -> bool:
        """The WMS's cancel API, idempotent: yes unless picking has begun (an order not yet
        released is remembered, and its release refused when it comes)."""
        if rec.waved:
            return False
        if not rec.wms_cancelled:
            rec.wms_cancelled = True
            if rec.released_at is not None:
                self.released[rec.warehouse].remove(rec.order.order_id)
        return True

    def _waves(self, w: int, every_s: float) -> Generator[Any, Any, None]:
        env = self.t.env
        while True:
            yield env.timeout(every_s)
            if not self.t.wms_apis[w].available():
                continue
            wave, self.released[w] = self.released[w], deque()
            for order_id in wave:
                rec = self.orders[order_id]
                rec.waved = True
                self.t.wms_pools[w].submit(partial(self._start_pick, w, rec))

    def _start_pick(self, w: int, rec: _Order, done: Callable[[], None]) -> None:
        at(self.t.env, self._pick[w](), self._picked, rec, done)

    def _picked(self, rec: _Order, done: Callable[[], None]) -> None:
        t = self.t
        for ln, row in zip(rec.order.lines, rec.rows, strict=True):
            took = -t.wms.apply(row, -int(ln.quantity))
            rec.picked[ln.line_no] = took
            if took:
                self._on_pick(rec.warehouse, row, PICK, -took)
        done()
        self._label(rec, 0)

    def _label(self, rec: _Order, attempt: int) -> None:
        """The WMS books the label, trying the next service 30 s after a failure; after the
        last it gives up and the order is stuck."""
        t = self.t
        service = SERVICES[attempt % len(SERVICES)]

        def result(status: Status, value: object) -> None:
            if status is Status.OK and value:
                self._ship(rec, str(value))
            elif attempt < 3:
                at(t.env, 30.0, self._label, rec, attempt + 1)
            else:
                rec.stuck = True

        t.api_calls["carrier"] += 1
        link = t.links["wms_core"]
        call(t.env, link, t.carrier_api, link, lambda: self._carrier_book(rec, service),
             t.scenario.direct.timeout_s, result)

    def _carrier_book(self, rec: _Order, service: str) -> str | None:
        if self._carrier_fail and self._carrier_rng.random() < self._carrier_fail:
            return None
        return f"TRK-{rec.order.order_id}-{service}"

    def _ship(self, rec: _Order, tracking: str) -> None:
        t = self.t
        if rec.shipped_at is not None:
            return
        lines = tuple(ShipmentLine(order_line_no=ln.line_no, sku=ln.sku,
                                   quantity_base=rec.picked[ln.line_no])
                      for ln in rec.order.lines if rec.picked.get(ln.line_no))
        if not lines:  # nothing on the shelf for any line: nothing to ship
            rec.stuck = True
            return
        rec.shipped_at = t.env.now
        self._record("order_to_ship", t.env.now - rec.placed_at, rec.warehouse)
        shipment = Shipment(
            shipment_id=f"SH-{rec.order.order_id}", order_id=rec.order.order_id,
            warehouse_id=t.warehouse_ids[rec.warehouse], carrier="carrier", tracking=tracking,
            shipped_at=when(t.env.now), lines=lines,
        )
        self._milestones(rec, shipment)
        if self.confirm_pattern is Pattern.DIRECT:
            self.t.wms_pools[rec.warehouse].submit(
                lambda done: self._confirm_direct(rec, shipment, done))
        else:
            env = wrap(shipment, source=f"wms-{shipment.warehouse_id}",
                       occurred_at=shipment.shipped_at, correlation_id=rec.order.order_id)
            self._send_confirmation(rec, shipment, env, 0)

    def _send_confirmation(self, rec: _Order, shipment: Shipment, env: Envelope,
                           resends: int) -> None:
        """The WMS's outbox: send, and resend until the core acknowledges (the bus drops the
        duplicate copies)."""
        t = self.t
        if rec.confirmation_acked:
            return
        t.links["wms_core"].send(self._confirmation_arrives, rec, shipment, env)
        at(t.env, OUTBOX_RESEND_S[min(resends, len(OUTBOX_RESEND_S) - 1)],
           self._send_confirmation, rec, shipment, env, resends + 1)

    def _confirmation_arrives(self, rec: _Order, shipment: Shipment, env: Envelope) -> None:
        core = self.t.core
        if core.accept_shipment(shipment) if self.saga else core.publish(env):
            self.t.links["wms_core"].send(self._confirmation_acked, rec)

    def _confirmation_acked(self, rec: _Order) -> None:
        rec.confirmation_acked = True

    def _confirm_direct(self, rec: _Order, shipment: Shipment, done: Callable[[], None]) -> None:
        """A warehouse worker tells the ERP and waits for it (blocking the warehouse)."""
        t = self.t
        started = t.env.now

        def final(status: Status, _v: object) -> None:
            self.blocked_s += t.env.now - started
            done()
            if status is not Status.OK:
                rec.stuck = True  # the warehouse gave up: the ERP never hears of the shipment
            elif self.saga:
                self._tell_core(rec, shipment, 0)

        op = (lambda: True) if self.saga else (lambda: self._erp_invoice(rec))
        direct_call(t.env, t.links["wms_erp"], t.erp_api, op, t.scenario.direct, final,
                    t.count_call("erp"))

    def _tell_core(self, rec: _Order, shipment: Shipment, resends: int) -> None:
        """After a direct confirmation the ERP relays it to the core (again while it is
        down), so the saga hears the goods left."""
        if not self.t.core.accept_shipment(shipment):
            at(self.t.env, OUTBOX_RESEND_S[min(resends, len(OUTBOX_RESEND_S) - 1)],
               self._tell_core, rec, shipment, resends + 1)

    def _deliver_confirmation(self, d: Delivery, ack: Callable[[], None],
                              nack: Callable[[BaseException], None]) -> None:
        """Without a saga, the core's consumer of shipment confirmations posts them straight
        to the ERP, which invoices."""
        t = self.t
        rec = self.orders[d.envelope.correlation_id]

        def result(status: Status, _v: object) -> None:
            ack() if status is Status.OK else nack(TransientError(f"ERP {status.value}"))

        t.api_calls["erp"] += 1
        link = t.links["core_erp"]
        call(t.env, link, t.erp_api, link, lambda: self._erp_invoice(rec),
             t.scenario.bus.call_timeout_s, result)

    def _erp_invoice(self, rec: _Order) -> str:
        """The ERP's invoice posting, idempotent per shipment."""
        if not rec.invoiced:
            rec.invoiced = True
            assert rec.shipped_at is not None
            self._record("ship_to_invoice", self.t.env.now - rec.shipped_at, rec.warehouse)
        return f"INV-{rec.order.order_id}"

    # -- the carrier -------------------------------------------------------------------------

    def _milestones(self, rec: _Order, shipment: Shipment) -> None:
        """The carrier's tracking: picked up, in transit, delivered (the core hears each)."""
        env = self.t.env
        pickup = self._pickup() * 3600
        at(env, pickup, self._milestone, shipment, Milestone.PICKED_UP, 0)
        at(env, pickup + 60.0, self._milestone, shipment, Milestone.IN_TRANSIT, 0)
        at(env, pickup + self._transit() * 3600, self._milestone, shipment,
           Milestone.DELIVERED, 0)

    def _milestone(self, shipment: Shipment, what: Milestone, resends: int) -> None:
        if resends == 0:
            self.milestones[what.value] += 1
            rec = self.orders[shipment.order_id]
            if what is Milestone.DELIVERED and rec.return_after_s is not None:
                at(self.t.env, rec.return_after_s, self._return, rec, shipment)
        if not self.saga:
            return
        m = ShipmentMilestone(shipment_id=shipment.shipment_id, tracking=shipment.tracking,
                              milestone=what, at=when(self.t.env.now))
        if not self.t.core.accept_milestone(m):  # the carrier's webhook retries
            at(self.t.env, OUTBOX_RESEND_S[min(resends, len(OUTBOX_RESEND_S) - 1)],
               self._milestone, shipment, what, resends + 1)

    # -- cancellations -----------------------------------------------------------------------

    def _request_cancel(self, rec: _Order) -> None:
        """The customer cancels: with the core, through the shop's outbox once the core has
        the order (a cancel of an order it never heard of would be dead-lettered); without,
        the ERP asks the WMS itself."""
        t = self.t
        rec.cancel_due = False
        if rec.cancel_requested_at is None:
            rec.cancel_requested_at = t.env.now
            self.cancels_requested += 1
        if not self.saga:
            self._direct_cancel(rec)
            return
        c = OrderCancellation(order_id=rec.order.order_id, reason="customer",
                              requested_at=when(rec.cancel_requested_at))
        self._send_cancel(rec, wrap(c, source="shop", occurred_at=c.requested_at), 0)

    def _send_cancel(self, rec: _Order, env: Envelope, resends: int) -> None:
        if not (rec.accepted and self.t.core.publish(env)):
            at(self.t.env, OUTBOX_RESEND_S[min(resends, len(OUTBOX_RESEND_S) - 1)],
               self._send_cancel, rec, env, resends + 1)

    def _direct_cancel(self, rec: _Order) -> None:
        t = self.t

        def final(status: Status, value: object) -> None:
            if status is not Status.OK:
                self.cancels_given_up += 1  # the order goes on: the customer gets it
            elif value:
                rec.cancelled = True
                assert rec.cancel_requested_at is not None
                self._record("cancel_to_confirmed", t.env.now - rec.cancel_requested_at,
                             rec.warehouse)
            else:
                self.cancels_refused += 1

        direct_call(t.env, t.links["wms_erp"], t.wms_apis[rec.warehouse],
                    lambda: self._wms_cancel(rec), t.scenario.direct, final,
                    t.count_call("wms"))

    # -- returns -----------------------------------------------------------------------------

    def _return(self, rec: _Order, shipment: Shipment) -> None:
        """The goods come back: the WMS receives them onto the shelf (its ``return``
        movement, on its way to the ERP by the inventory pattern), and the credit is asked."""
        t = self.t
        share = t.scenario.shop.return_units_share
        rec.returned_at = t.env.now
        lines = []
        for sl in shipment.lines:
            units = max(1, int(np.ceil(sl.quantity_base * share)))
            row = rec.rows[sl.order_line_no - 1]
            self._on_pick(rec.warehouse, row, RETURN, t.wms.apply(row, units))
            self.returned_units += units
            lines.append(ReturnLine(sku=sl.sku, quantity_base=units))
        if not self.saga:
            self._direct_credit(rec)
            return
        rma = ReturnAuthorization(rma_id=f"RMA-{rec.order.order_id}",
                                  order_id=rec.order.order_id, lines=tuple(lines),
                                  authorized_at=when(t.env.now))
        self._send_return(wrap(rma, source="shop", occurred_at=rma.authorized_at,
                               correlation_id=rma.order_id), 0)

    def _send_return(self, env: Envelope, resends: int) -> None:
        if not self.t.core.publish(env):
            at(self.t.env, OUTBOX_RESEND_S[min(resends, len(OUTBOX_RESEND_S) - 1)],
               self._send_return, env, resends + 1)

    def _direct_credit(self, rec: _Order) -> None:
        """Without a core the shop asks the ERP for the credit memo and waits."""
        t = self.t

        def final(status: Status, _v: object) -> None:
            if status is not Status.OK:
                rec.credit_given_up = True

        direct_call(t.env, t.links["core_erp"], t.erp_api, lambda: self._erp_credit(rec),
                    t.scenario.direct, final, t.count_call("erp"))

    def _erp_credit(self, rec: _Order) -> bool:
        """The ERP's credit memo, idempotent per return (one return per order here)."""
        if not rec.credited:
            rec.credited = True
            assert rec.returned_at is not None
            self._record("return_to_credit", self.t.env.now - rec.returned_at, rec.warehouse)
        return True

    def _desk_cancels(self) -> None:
        """Through the core a cancellation is confirmed when the saga reaches CANCELLED: read
        from the order's trace (its customer notice) once, when the results are taken after
        the run (`latency`, `latency_at`, `latency_site`, `counts`: whichever comes first)."""
        if self._desk_read:
            return
        self._desk_read = True
        desk = self._desk()
        done: list[tuple[float, float, int]] = []
        for rec in self.orders.values():
            d = desk.get(rec.order.order_id)
            if (rec.cancel_requested_at is None or d is None
                    or d["status"] != Status_.CANCELLED.value):
                continue
            rec.cancelled = True
            at_ = next((sim_time(e["at"]) for e in reversed(d["trace"])
                        if e["kind"] == "command" and e["name"] == "notify_customer"
                        and e["detail"].startswith("cancelled")), None)
            if at_ is not None:
                done.append((at_, at_ - rec.cancel_requested_at, rec.warehouse))
        for at_, seconds, warehouse in sorted(done):  # in completion order, as recorded
            self.lat["cancel_to_confirmed"].append(seconds)
            self.lat_at["cancel_to_confirmed"].append(at_)
            self.lat_site["cancel_to_confirmed"].append(warehouse)

    # -- results -----------------------------------------------------------------------------

    def _record(self, flow: str, seconds: float, warehouse: int) -> None:
        self.lat[flow].append(seconds)
        self.lat_at[flow].append(self.t.env.now)
        self.lat_site[flow].append(warehouse)

    def latency(self) -> dict[str, np.ndarray]:
        self._desk_cancels()
        return {f: c.values.copy() for f, c in self.lat.items()}

    def latency_at(self) -> dict[str, np.ndarray]:
        self._desk_cancels()
        return {f: c.values.copy() for f, c in self.lat_at.items()}

    def latency_site(self) -> dict[str, np.ndarray]:
        self._desk_cancels()
        return {f: c.values.copy() for f, c in self.lat_site.items()}

    def site_counts(self, warehouse: int) -> dict[str, int]:
        """The counts per-site KPIs need (placed, released, shipped, invoiced) for one site."""
        recs = [r for r in self.orders.values() if r.warehouse == warehouse]
        return {"orders_placed": len(recs),
                "orders_released": sum(r.released_at is not None for r in recs),
                "orders_shipped": sum(r.shipped_at is not None for r in recs),
                "orders_invoiced": sum(r.invoiced for r in recs),
                "orders_stuck": sum(r.stuck for r in recs),
                "orders_cancelled_unreleased": sum(r.cancelled and r.released_at is None
                                                   for r in recs),
                "orders_cancelled_unshipped": sum(r.cancelled and r.shipped_at is None
                                                  for r in recs)}

    def _desk(self) -> dict[str, dict[str, Any]]:
        """The order desk's records (the core's state: what the service's API shows)."""
        return self.t.core.engine.store.state(ORDERS) if self.saga else {}

    def settled(self) -> bool:
        """Every order invoiced, stuck, cancelled, or (saga) terminal or waiting on a person,
        every return credited, and no customer's cancel still to come (a return still to come
        is new work: the run does not wait for it). An order waiting on its own timer is not
        settled: a partner still owes it an answer."""
        if any(self._cancel_p) and any(r.cancel_due for r in self.orders.values()):
            return False
        open_ = [r for r in self.orders.values() if not (r.invoiced or r.stuck or r.cancelled)
                 or (r.returned_at is not None and not (r.credited or r.credit_given_up))]
        if not open_:
            return True
        if not self.saga:
            return False
        store = self.t.core.engine.store
        return all(_waits_on_nobody(store.get_state(ORDERS, r.order.order_id)) for r in open_)

    def counts(self) -> dict[str, int]:
        self._desk_cancels()
        recs = self.orders.values()
        desk = self._desk()
        traces = [e for d in desk.values() for e in d["trace"]]
        refused = self.cancels_refused + sum(
            (e["kind"] == "note" and e["name"] == CANCEL_REFUSED)
            or (e["kind"] == "command" and e["name"] == "notify_customer"
                and e["detail"].startswith("cancel_refused")) for e in traces)
        return {
            "orders_placed": len(self.orders),
            "orders_released": sum(r.released_at is not None for r in recs),
            "orders_shipped": sum(r.shipped_at is not None for r in recs),
            "orders_invoiced": sum(r.invoiced for r in recs),
            "orders_release_given_up": self.release_given_up,
            "orders_stuck": sum(r.stuck for r in recs),
            "order_exceptions_open": sum(x["closed_at"] is None for d in desk.values()
                                         for x in d["exceptions"].values()),
            "customer_notifications": sum(e["kind"] == "command"
                                          and e["name"] == "notify_customer" for e in traces),
            "saga_stale_answers": sum(e["kind"] == "note" and e["name"] == "answer not used"
                                      for e in traces),
            "status_lookup_failures": self.lookup_failures,
            "cancels_requested": self.cancels_requested,
            "orders_cancelled": sum(r.cancelled for r in recs),
            "orders_cancelled_unreleased": sum(r.cancelled and r.released_at is None
                                               for r in recs),
            "orders_cancelled_unshipped": sum(r.cancelled and r.shipped_at is None for r in recs),
            "cancels_refused": refused,
            "cancels_given_up": self.cancels_given_up,
            "returns": sum(r.returned_at is not None for r in recs),
            "returned_units": self.returned_units,
            "credit_memos": sum(r.credited for r in recs),
            **{f"carrier_{k}": v for k, v in sorted(self.milestones.items())},
            **{f"orders_status_{k}": v for k, v in sorted(Counter(
                d["status"] for d in desk.values()).items())},
        }


def _waits_on_nobody(record: dict[str, Any] | None) -> bool:
    if record is None:
        return False  # not taken in by the desk yet (or lost with a core that crashed)
    if Status_(record["status"]) in TERMINAL:
        return True
    return any(x["closed_at"] is None and EXCEPTION_SPECS[ExceptionType(x["type"])].blocking
               for x in record["exceptions"].values())


def read_arrivals(path: str) -> list[float]:
    """Arrival times (seconds) from the first column of a CSV; a header row is skipped, and
    any other row that is not a number is an error naming the file and line."""
    times: list[float] = []
    with open(path, newline="") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or not row[0].strip():
                continue
            try:
                times.append(float(row[0]))
            except ValueError:
                if n == 1:
                    continue  # header
                raise ValueError(f"{path}:{n}: arrival time {row[0]!r} is not a number") from None
    if any(b < a for a, b in pairwise(times)):
        raise ValueError(f"{path}: arrival times must not decrease")
    return times
