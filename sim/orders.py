"""Order-to-ship flow: shop orders, release to the WMS, waves, pick/pack, carrier label,
shipment confirmation and invoice.

Order release by pattern:
- direct: the ERP calls the WMS itself, blocking with a timeout and a few retries, then gives
  up (the order is stuck until someone notices);
- orchestrated / event_driven: the core's order-to-ship saga (`integration_core.orchestrator`)
  drives every step; this module only carries out its commands and feeds back the answers,
  including its timeouts, which is how it retries.

Shipment confirmation by pattern: direct, a warehouse worker calls the ERP and waits (blocking
the warehouse); otherwise the confirmation is queued on the bus and the core delivers it.
"""

from __future__ import annotations

import csv
from collections import Counter, deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from integration_core.bus import Delivery
from integration_core.envelope import Envelope, trusted_envelope, wrap
from integration_core.errors import IllegalTransition, TransientError
from integration_core.models import OrderLine, SalesOrder, Shipment, ShipmentLine
from integration_core.orchestrator import (
    TERMINAL,
    Allocated,
    BackorderFilled,
    CreditApproved,
    Delivered,
    Event,
    ExceptionQueue,
    InvalidEvent,
    Invoiced,
    LabelCreated,
    LineQuantity,
    OrchestratorConfig,
    OrderState,
    Packed,
    Picked,
    ReleaseAccepted,
    ShipmentConfirmed,
    TimeoutFired,
    Validated,
    handle,
    start,
)
from integration_core.orchestrator import (
    CarrierFailed as CarrierFailedEvent,
)
from integration_core.orchestrator import Status as Status_
from integration_core.orchestrator.commands import (
    CancelTimeout,
    CloseException,
    Command,
    NotifyCustomer,
    OpenException,
    PostInvoice,
    ReleaseReservation,
    ReleaseToWms,
    RequestCreditCheck,
    RequestLabel,
    ReserveInventory,
    ScheduleTimeout,
    ValidateOrder,
)
from sim.calls import call, direct_call
from sim.columns import Column
from sim.distributions import sampler
from sim.inventory import EPOCH, OUTBOX_RESEND_S
from sim.kernel import at
from sim.scenario import ApiConfig, Pattern
from sim.systems.endpoint import Endpoint, Status
from sim.systems.wms import KINDS, zipf_probabilities

if TYPE_CHECKING:
    from sim.twin import Twin

PICK = KINDS.index(next(k for k in KINDS if k.value == "pick"))
SHIPMENTS = "erp-shipments"
COMMANDS = "saga-commands"
COMMANDS_TYPE = "saga.command"


@dataclass(frozen=True)
class _Ask:
    """A saga command waiting on the bus: what to call and how to read the answer."""

    link: Any
    endpoint: Endpoint
    op: Callable[[], Any]
    timeout: float
    rec: _Order
    answer: Callable[[Any], Event]
    system: str
    on_ok: Callable[[_Order, Event], None] | None


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
    state: OrderState | None = None
    timer: str | None = None
    picked: dict[int, int] = field(default_factory=dict)
    confirmation_acked: bool = False


class OrderFlow:
    def __init__(self, twin: Twin) -> None:
        self.t = twin
        sc = twin.scenario
        self.release_pattern = sc.patterns.resolved("order_release")
        self.confirm_pattern = sc.patterns.resolved("shipment_confirmation")
        self.saga = self.release_pattern is not Pattern.DIRECT
        # Re-ask ATP for backorders hourly (the default is daily: longer than most runs).
        self.config = OrchestratorConfig(timeouts={Status_.BACKORDERED: 3600.0})
        carrier = ApiConfig(workers=8, service_time_s=sc.carrier.label_latency_s)
        self.carrier_api = Endpoint(twin.env, "carrier", carrier, twin.streams.get("api/carrier"),
                                    record=False)
        self._carrier_fail = sc.carrier.failure_probability
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
        self.orders: dict[str, _Order] = {}
        self.released: list[deque[str]] = [deque() for _ in sc.warehouses]
        self.reserved = np.zeros(twin.n_rows, dtype=np.int64)
        self.exceptions = ExceptionQueue()
        self.blocked_s = 0.0
        self.notifications = 0
        self.stale_events = 0
        self.release_given_up = 0
        self.lookup_failures = 0
        self.lat = {f: Column(np.float64) for f in ("order_release", "order_to_ship",
                                                     "ship_to_invoice")}
        self.lat_at = {f: Column(np.float64) for f in self.lat}
        self._commands: dict[str, _Ask] = {}
        self._cmd_seq = 0
        if self.saga:
            twin.core.subscribe(COMMANDS, [COMMANDS_TYPE], self._deliver_command)
        if self.confirm_pattern is not Pattern.DIRECT:
            twin.core.subscribe(SHIPMENTS, ["shipment.confirmed"], self._deliver_confirmation)

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
        w = int(self._rng.integers(len(t.warehouse_ids)))
        # Customers buy what the warehouse moves most: the stream's popularity order.
        ranks = self._rng.choice(len(self._sku_p), size=n_lines, replace=False, p=self._sku_p)
        skus = t.popularity[w][ranks]
        lines = tuple(
            OrderLine(line_no=i + 1, sku=f"SKU-{int(s):05d}",
                      quantity=Decimal(max(1, round(self._units()))), unit_price=Decimal(10))
            for i, s in enumerate(skus)
        )
        order = SalesOrder(order_id=order_id, customer_id="C-1", lines=lines,
                           placed_at=EPOCH + timedelta(seconds=t.env.now),
                           ship_from=t.warehouse_ids[w])
        rec = _Order(order, w, [t.row_of(ln.sku, t.warehouse_ids[w]) for ln in lines], t.env.now)
        self.orders[order_id] = rec
        lookups = t.scenario.shop.status_lookups_per_order
        if lookups:
            rng = self._lookup_rng
            for delay in rng.uniform(0, 48 * 3600, rng.poisson(lookups)):
                at(t.env, float(delay), self._status_lookup, rec)
        if self.saga:
            rec.state, commands = start(order, t.env.now, self.config)
            self._execute(rec, commands)
        else:
            self._direct_release(rec)

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

    # -- WMS ---------------------------------------------------------------------------------

    def _wms_accept(self, rec: _Order) -> bool:
        """The WMS's release API: idempotent on the order id (a resend is not a new order)."""
        if rec.released_at is None:
            rec.released_at = self.t.env.now
            self._record("order_release", self.t.env.now - rec.placed_at)
            self.released[rec.warehouse].append(rec.order.order_id)
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
                self.t.wms_pools[w].submit(partial(self._start_pick, w, rec))

    def _start_pick(self, w: int, rec: _Order, done: Callable[[], None]) -> None:
        at(self.t.env, self._pick[w](), self._picked, rec, done)

    def _picked(self, rec: _Order, done: Callable[[], None]) -> None:
        t = self.t
        for ln, row in zip(rec.order.lines, rec.rows, strict=True):
            took = -t.wms.apply(row, -int(ln.quantity))
            rec.picked[ln.line_no] = took
            if took:
                t.inventory.on_movement(rec.warehouse, row, PICK, -took)
            self.reserved[row] -= min(self.reserved[row], int(ln.quantity))
        done()
        if self.saga:
            self._feed(rec, Picked(rec.order.order_id))
            self._feed(rec, Packed(rec.order.order_id))
        else:
            self._label(rec, "standard", 0)

    def _label(self, rec: _Order, service: str, attempt: int) -> None:
        """Without the saga the WMS books the label itself, trying the next service on
        failure."""
        t = self.t

        def result(status: Status, value: object) -> None:
            if status is Status.OK and value:
                self._ship(rec, str(value))
            elif attempt < 3:
                nxt = self.config.carrier_services[(attempt + 1) % 3]
                at(t.env, 30.0, self._label, rec, nxt, attempt + 1)
            else:
                rec.stuck = True

        t.api_calls["carrier"] += 1
        link = t.links["wms_core"]
        call(t.env, link, self.carrier_api, link, lambda: self._carrier_book(rec, service),
             t.scenario.direct.timeout_s, result)

    def _carrier_book(self, rec: _Order, service: str) -> str | None:
        if self._carrier_fail and self._rng.random() < self._carrier_fail:
            return None
        return f"TRK-{rec.order.order_id}-{service}"

    def _ship(self, rec: _Order, tracking: str) -> None:
        t = self.t
        if rec.shipped_at is not None:
            return
        rec.shipped_at = t.env.now
        self._record("order_to_ship", t.env.now - rec.placed_at)
        self._milestones(rec)
        lines = tuple(ShipmentLine(order_line_no=ln.line_no, sku=ln.sku,
                                   quantity_base=rec.picked[ln.line_no])
                      for ln in rec.order.lines if rec.picked.get(ln.line_no))
        if not lines:  # nothing on the shelf for any line: nothing to ship
            rec.stuck = True
            return
        shipment = Shipment(
            shipment_id=f"SH-{rec.order.order_id}", order_id=rec.order.order_id,
            warehouse_id=t.warehouse_ids[rec.warehouse], carrier="carrier", tracking=tracking,
            shipped_at=EPOCH + timedelta(seconds=t.env.now), lines=lines,
        )
        if self.confirm_pattern is Pattern.DIRECT:
            self.t.wms_pools[rec.warehouse].submit(
                lambda done: self._confirm_direct(rec, shipment, done))
        else:
            env = wrap(shipment, source=f"wms-{shipment.warehouse_id}",
                       occurred_at=shipment.shipped_at, correlation_id=rec.order.order_id)
            self._send_confirmation(rec, env, 0)

    def _send_confirmation(self, rec: _Order, env: Envelope, resends: int) -> None:
        """The WMS's outbox: send, and resend until the core acknowledges (the bus drops the
        duplicate copies)."""
        t = self.t
        if rec.confirmation_acked:
            return
        t.links["wms_core"].send(self._confirmation_arrives, rec, env)
        at(t.env, OUTBOX_RESEND_S[min(resends, len(OUTBOX_RESEND_S) - 1)],
           self._send_confirmation, rec, env, resends + 1)

    def _confirmation_arrives(self, rec: _Order, env: Envelope) -> None:
        if self.t.core.publish(env):
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
                self._feed(rec, ShipmentConfirmed(shipment))

        op = (lambda: True) if self.saga else (lambda: self._erp_invoice(rec))
        direct_call(t.env, t.links["wms_erp"], t.erp_api, op, t.scenario.direct, final,
                    t.count_call("erp"))

    def _deliver_confirmation(self, d: Delivery, ack: Callable[[], None],
                              nack: Callable[[BaseException], None]) -> None:
        """The core's consumer of shipment confirmations: to the saga, or (without one)
        straight to the ERP, which invoices."""
        t = self.t
        rec = self.orders[d.envelope.correlation_id]
        if self.saga:
            ack()
            shipment = Shipment.model_validate(d.envelope.payload)
            self._feed(rec, ShipmentConfirmed(shipment))
            return

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
            self._record("ship_to_invoice", self.t.env.now - rec.shipped_at)
        return f"INV-{rec.order.order_id}"

    # -- the saga ----------------------------------------------------------------------------

    def _feed(self, rec: _Order, event: Event) -> None:
        assert rec.state is not None
        try:
            rec.state, commands = handle(rec.state, event, self.t.env.now, self.config)
        except (IllegalTransition, InvalidEvent):
            self.stale_events += 1  # a late answer to a request the saga already gave up on
            return
        self._execute(rec, commands)

    def _execute(self, rec: _Order, commands: tuple[Command, ...] | list[Command]) -> None:
        t = self.t
        oid = rec.order.order_id
        erp_link, wms_link = t.links["core_erp"], t.links["wms_core"]
        timeout = t.scenario.bus.call_timeout_s
        for c in commands:
            if isinstance(c, ValidateOrder):
                at(t.env, 0.0, self._feed, rec, Validated(oid))
            elif isinstance(c, RequestCreditCheck):
                self._ask(erp_link, t.erp_api, lambda: True, timeout, rec,
                          lambda _v: CreditApproved(oid), "erp")
            elif isinstance(c, ReserveInventory):
                self._ask(erp_link, t.erp_api, partial(self._allocate, rec, c), timeout, rec,
                          partial(_allocation_answer, rec), "erp")
            elif isinstance(c, ReleaseToWms):
                self._ask(wms_link, t.wms_apis[rec.warehouse], lambda: self._wms_accept(rec),
                          timeout, rec, lambda _v: ReleaseAccepted(oid), "wms")
            elif isinstance(c, RequestLabel):
                self._ask(wms_link, self.carrier_api,
                          partial(self._carrier_book, rec, c.service), timeout, rec,
                          partial(_label_answer, oid), "carrier", on_ok=self._after_label)
            elif isinstance(c, PostInvoice):
                self._ask(erp_link, t.erp_api, lambda: self._erp_invoice(rec), timeout, rec,
                          partial(_invoiced, oid, c.shipment_id), "erp")
            elif isinstance(c, ScheduleTimeout):
                rec.timer = c.timeout_id
                at(t.env, c.due_at - t.env.now, self._timer, rec, c.timeout_id)
            elif isinstance(c, NotifyCustomer):
                self.notifications += 1
            elif isinstance(c, OpenException):
                self.exceptions.open(c.record)
            elif isinstance(c, CloseException):
                self.exceptions.close(c.exception_id, c.at)
            elif isinstance(c, ReleaseReservation):
                for ln in c.lines:
                    row = t.row_of(ln.sku, t.warehouse_ids[rec.warehouse])
                    self.reserved[row] -= min(self.reserved[row], ln.quantity_base)
            elif isinstance(c, CancelTimeout):
                if c.timeout_id == rec.timer:
                    rec.timer = None
            else:  # cancellations and returns: the twin's shop sends neither
                raise NotImplementedError(f"the twin does not carry out {type(c).__name__}")

    def _ask(self, link: Any, endpoint: Endpoint, op: Callable[[], Any], timeout: float,
             rec: _Order, answer: Callable[[Any], Event], system: str,
             on_ok: Callable[[_Order, Event], None] | None = None) -> None:
        """Carry out one command through the bus: published as a message, delivered to the
        partner with the bus's retry policy, its answer fed back to the saga. If the core is
        down the command is not sent; the saga's own timeout notices and asks again."""
        self._cmd_seq += 1
        oid = rec.order.order_id
        mid = f"cmd:{oid}:{self._cmd_seq}"
        self._commands[mid] = _Ask(link, endpoint, op, timeout, rec, answer, system, on_ok)
        self.t.core.publish(trusted_envelope(
            message_id=mid, type=COMMANDS_TYPE, schema_version=1, source="core",
            occurred_at=EPOCH + timedelta(seconds=self.t.env.now), correlation_id=oid,
            causation_id=None, key=oid, payload={"order_id": oid, "system": system},
        ))

    def _deliver_command(self, d: Delivery, ack: Callable[[], None],
                         nack: Callable[[BaseException], None]) -> None:
        ask = self._commands.get(d.envelope.message_id)
        if ask is None:  # its closure died with a crashed core: the saga's timeout resends
            ack()
            return
        self.t.api_calls[ask.system] += 1

        def result(status: Status, value: object) -> None:
            if status is not Status.OK:
                nack(TransientError(f"{ask.system} {status.value}"))
                return
            ack()
            self._commands.pop(d.envelope.message_id, None)
            event = ask.answer(value)
            self._feed(ask.rec, event)
            if ask.on_ok is not None:
                ask.on_ok(ask.rec, event)

        call(self.t.env, ask.link, ask.endpoint, ask.link, ask.op, ask.timeout, result)

    def _after_label(self, rec: _Order, event: Event) -> None:
        if isinstance(event, LabelCreated):
            self._ship(rec, event.tracking)

    def _milestones(self, rec: _Order) -> None:
        """The carrier's tracking: picked up, in transit, delivered (the saga hears the
        last one)."""
        env = self.t.env
        pickup = self._pickup() * 3600
        at(env, pickup, self._milestone, rec, "picked_up")
        at(env, pickup + 60.0, self._milestone, rec, "in_transit")
        at(env, pickup + self._transit() * 3600, self._milestone, rec, "delivered")

    def _milestone(self, rec: _Order, what: str) -> None:
        self.milestones[what] += 1
        if what == "delivered" and self.saga:
            self._feed(rec, Delivered(rec.order.order_id, f"SH-{rec.order.order_id}"))

    def _timer(self, rec: _Order, timeout_id: str) -> None:
        if rec.timer == timeout_id:
            rec.timer = None
            self._feed(rec, TimeoutFired(rec.order.order_id, timeout_id))

    def _allocate(self, rec: _Order, c: ReserveInventory) -> tuple[LineQuantity, ...]:
        """The ERP's allocation against available-to-promise (its on-hand less reservations)."""
        t = self.t
        out = []
        for ln in c.lines:
            row = t.row_of(ln.sku, t.warehouse_ids[rec.warehouse])
            atp = max(0, int(t.erp.on_hand[row] - self.reserved[row]))
            take = min(atp, ln.quantity_base)
            self.reserved[row] += take
            out.append(LineQuantity(ln.line_no, take))
        return tuple(out)

    # -- results -----------------------------------------------------------------------------

    def _record(self, flow: str, seconds: float) -> None:
        self.lat[flow].append(seconds)
        self.lat_at[flow].append(self.t.env.now)

    def latency(self) -> dict[str, np.ndarray]:
        return {f: c.values.copy() for f, c in self.lat.items()}

    def latency_at(self) -> dict[str, np.ndarray]:
        return {f: c.values.copy() for f, c in self.lat_at.items()}

    def settled(self) -> bool:
        """Every order invoiced, stuck, or (saga) terminal or waiting on a person. An order
        waiting on its own timer is not settled: a partner still owes it an answer."""
        return all(
            r.invoiced or r.stuck or (r.state is not None and (
                r.state.status in TERMINAL or bool(r.state.open_exceptions)))
            for r in self.orders.values()
        )

    def counts(self) -> dict[str, int]:
        recs = self.orders.values()
        return {
            "orders_placed": len(self.orders),
            "orders_released": sum(r.released_at is not None for r in recs),
            "orders_shipped": sum(r.shipped_at is not None for r in recs),
            "orders_invoiced": sum(r.invoiced for r in recs),
            "orders_release_given_up": self.release_given_up,
            "orders_stuck": sum(r.stuck for r in recs),
            "order_exceptions_open": len(self.exceptions.by_age()),
            "customer_notifications": self.notifications,
            "saga_stale_answers": self.stale_events,
            "status_lookup_failures": self.lookup_failures,
            **{f"carrier_{k}": v for k, v in sorted(self.milestones.items())},
            **{f"orders_status_{k}": v for k, v in sorted(Counter(
                r.state.status.value for r in recs if r.state is not None).items())},
        }


def _label_answer(order_id: str, tracking: object) -> Event:
    return LabelCreated(order_id, str(tracking)) if tracking else CarrierFailedEvent(order_id)


def _invoiced(order_id: str, shipment_id: str, invoice_id: object) -> Event:
    return Invoiced(order_id, shipment_id, str(invoice_id))


def _allocation_answer(rec: _Order, lines: tuple[LineQuantity, ...]) -> Event:
    """The same ATP answer is news of a first allocation or of a backorder filled."""
    assert rec.state is not None
    if rec.state.status is Status_.BACKORDERED:
        return BackorderFilled(rec.order.order_id, lines)
    return Allocated(rec.order.order_id, lines)


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
