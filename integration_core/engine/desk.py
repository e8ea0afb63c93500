"""The order desk: the bus consumer that drives the core's order-to-ship saga in real time.

It handles ``order.placed``, ``order.cancel_requested``, ``shipment.confirmed``,
``shipment.milestone``, ``return.authorized`` and its own ``saga.timeout`` messages through
the durable inbox. The saga (`orchestrator.start` /
`handle`) is the same pure code the simulator drives; this module carries out its commands.

State, per order, in the store's ``orders`` namespace: the order, the events fed to the saga
(with their times) and a trace. The saga state is rebuilt by folding the events through
`handle` again: `handle` is pure, so the fold gives back exactly the state it had, and no
hand-written serializer of `OrderState` can drift from the real thing.

Calls to partners go through a transactional outbox: the credit check, the invoice and the
credit memo (ERP), the release and its cancellation (WMS) are written to the ``outbox``
namespace in the same transaction as the saga's state. The runner makes the HTTP call
(retrying while the partner is down) and publishes its answer as a ``partner.reply``
message, which comes back here through the inbox and feeds the saga. A call is therefore
made at least once and its answer applied once; the partners are idempotent per order,
shipment or RMA id.

Answers the saga gets at once: validation (the API checked the item master), allocation
against available-to-promise, and the carrier's label (tracking from the WMS's confirmation:
a confirmation for an order still in fulfilment implies it was packed; the WMS books labels).
A carrier "delivered" milestone feeds `Delivered`.

Allocation: ATP per (SKU, location) is the core's WMS view (`stock`, handed in by the engine)
less what open orders hold, kept in the ``reserved`` namespace in the same transactions as the
orders. An order with a ``ship_from`` is allocated at that location only (that warehouse gets
the release). A reservation is given back when the order's shipment is confirmed (the pick's
movement has taken the units off the WMS view by then: between the two, ATP is understated,
never overstated) and when the saga compensates (`ReleaseReservation`).

Cancellations: the saga cancels at once before release, through the WMS (`cancel_release`)
after it, and not at all once the order is packed: a cancel the saga cannot take is traced
("cancel refused"), never dropped. A shipment confirmed while the WMS is asked to cancel
means it could not: the desk feeds `CancelRefused` before the confirmation. Returns: an RMA
for a completed order starts the credit memo (`credit_memo`, keyed by RMA id); one for an
order still shipping, or while another return waits for its memo, is held in the order's
record and fed once the order is completed again. The same RMA id twice counts once. The
goods coming back are the WMS's business: its ``return`` movement restocks the shelf through
the inventory flow, like any other movement.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from integration_core.atp import AtpRow, AtpTable, allocate_base
from integration_core.bus import Store, Tx
from integration_core.clock import Clock
from integration_core.engine.partners import OPERATIONS
from integration_core.envelope import Envelope, OrderCancellation
from integration_core.errors import NotFound, PayloadError, TransientError
from integration_core.models import (
    Catalog,
    ReturnAuthorization,
    SalesOrder,
    Shipment,
    ShipmentMilestone,
)
from integration_core.orchestrator import (
    DEFAULT_CONFIG,
    EVENT_TYPES,
    TERMINAL,
    Allocated,
    BackorderFilled,
    CancelConfirmed,
    CancelRefused,
    CancelRelease,
    CancelRequested,
    CloseException,
    Command,
    CreditApproved,
    CreditHeld,
    CreditMemoPosted,
    Delivered,
    Event,
    EventKind,
    Invoiced,
    LabelCreated,
    LineQuantity,
    NotifyCustomer,
    OpenException,
    OrchestratorConfig,
    OrderState,
    Packed,
    PostCreditMemo,
    PostInvoice,
    ReleaseAccepted,
    ReleaseRejected,
    ReleaseReservation,
    ReleaseToWms,
    RequestCreditCheck,
    RequestLabel,
    ReserveInventory,
    ReturnAuthorized,
    ScheduleTimeout,
    ShipmentConfirmed,
    Status,
    TimeoutFired,
    Validated,
    ValidateOrder,
    handle,
    is_allowed,
    start,
    waiting_on,
)

ORDERS = "orders"
SHIPMENT_ORDER = "shipment_order"
TIMERS = "order_timers"
"""Order id -> its pending timer [timeout_id, due_at] (or None), beside the order's record:
small to read when a timer comes due."""
OUTBOX = "outbox"
TIMEOUT_TYPE = "saga.timeout"
REPLY_TYPE = "partner.reply"
RESERVED = "reserved"
CANCEL_TYPE = "order.cancel_requested"
RETURN_TYPE = "return.authorized"
TYPES = ("order.placed", CANCEL_TYPE, "shipment.confirmed", "shipment.milestone", RETURN_TYPE,
         TIMEOUT_TYPE, REPLY_TYPE)
CANCEL_REFUSED = "cancel refused"
"""The trace's name for a cancellation the saga could not take (the order was packed)."""
_RETURNABLE = frozenset({Status.SHIPPING, Status.SHIPPED, Status.RETURN_PENDING})
"""Where a return waits in the record until the order is completed (again)."""

Record = dict[str, Any]
OnHand = Callable[[Tx, str, str | None], dict[str, int]]
"""(tx, sku, location or None) -> on-hand by location in the core's WMS view, lots summed."""


def _no_stock(tx: Tx, sku: str, location: str | None) -> dict[str, int]:
    return {}


def encode_event(event: Event, at: float) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": event.kind.value, "at": at}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, Shipment | ReturnAuthorization):
            value = value.model_dump(mode="json")
        elif f.name == "lines":
            value = [[ln.line_no, ln.quantity_base] for ln in value]
        out[f.name] = value
    return out


def decode_event(data: dict[str, Any]) -> Event:
    cls = EVENT_TYPES[EventKind(data["kind"])]
    args = {k: v for k, v in data.items() if k not in ("kind", "at")}
    if cls in (Allocated, BackorderFilled):
        args["lines"] = tuple(LineQuantity(n, q) for n, q in args["lines"])
    if cls is ShipmentConfirmed:
        args["shipment"] = Shipment.model_validate(args["shipment"])
    if cls is ReturnAuthorized:
        args["rma"] = ReturnAuthorization.model_validate(args["rma"])
    return cls(**args)


class OrderDesk:
    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        config: OrchestratorConfig = DEFAULT_CONFIG,
        stock: OnHand = _no_stock,
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.config = config
        self.stock = stock
        self.timers: list[tuple[float, str, str]] = []
        """Heap of (due_at, order_id, timeout_id); `due_timers` skips the stale ones, and
        the saga ignores a TimeoutFired that is not its pending timer anyway."""
        self.open_calls: set[str] = set()
        """Outbox calls written and not yet answered. May hold a call whose transaction
        rolled back: `open_call` checks the store, like `due_timers` does."""
        self.new_calls: list[str] = []
        """Calls written since the runner last looked."""
        self._folded: dict[str, tuple[list[dict[str, Any]], OrderState]] = {}
        """Order id -> (events, the saga state they fold to) as last saved: spares the fold
        on the order's next message. `OrderState` is immutable."""

    # -- state -------------------------------------------------------------------------------

    def rebuild(self, record: Record) -> OrderState:
        """The saga state of a record: the fold of its events, or the state last saved when
        the record's events are the ones it was folded from (a transaction that rolled back
        leaves other events in the store, and the fold runs again)."""
        oid = record["order"]["order_id"]
        cached = self._folded.get(oid)
        if cached is not None and cached[0] == record["events"]:
            return cached[1]
        order = SalesOrder.model_validate(record["order"])
        state, _ = start(order, record["placed_at"], self.config, self.catalog)
        for ev in record["events"]:
            state, _ = handle(state, decode_event(ev), ev["at"], self.config)
        return state

    @staticmethod
    def _record(tx: Tx, order_id: str) -> Record | None:
        found: Record | None = tx.get(ORDERS, order_id)
        return found  # a copy: every store's `get` hands one out, also of staged values

    def load_timers(self, store: Store) -> int:
        """After a restart: the pending timer of every order, from the store."""
        self.timers = [(timer[1], oid, timer[0])
                       for oid, timer in store.state(TIMERS).items() if timer]
        heapq.heapify(self.timers)
        return len(self.timers)

    def load_calls(self, store: Store) -> list[str]:
        """After a restart: every outbox call without an answer (made again: at least once)."""
        self.open_calls = {k for k, v in store.state(OUTBOX).items() if v and v.get("done") is None}
        self.new_calls = sorted(self.open_calls)
        return self.new_calls

    def take_new_calls(self) -> list[str]:
        out, self.new_calls = self.new_calls, []
        return out

    def open_call(self, store: Store, call_id: str) -> dict[str, Any] | None:
        """The call's outbox record if it still waits for an answer."""
        entry = store.get_state(OUTBOX, call_id)
        if entry is None or entry.get("done") is not None:  # done at t=0 is done
            self.open_calls.discard(call_id)
            return None
        return dict(entry)

    def next_timer_at(self) -> float | None:
        """When the earliest timer is due (it may be stale: `due_timers` then skips it)."""
        return self.timers[0][0] if self.timers else None

    def due_timers(self, store: Store, now: float) -> list[tuple[str, str]]:
        """(order_id, timeout_id) of the timers due that are still their order's pending
        one (the heap also holds timers the saga replaced or cancelled since)."""
        out = []
        while self.timers and self.timers[0][0] <= now:
            _, order_id, timeout_id = heapq.heappop(self.timers)
            timer = store.get_state(TIMERS, order_id)
            if timer and timer[0] == timeout_id:
                out.append((order_id, timeout_id))
        return out

    # -- the consumer ------------------------------------------------------------------------

    def handle(self, envelope: Envelope, tx: Tx) -> None:
        now = self.clock.now()
        if envelope.type == "order.placed":
            self._placed(envelope, tx, now)
        elif envelope.type == CANCEL_TYPE:
            self._cancel_requested(envelope, tx, now)
        elif envelope.type == "shipment.confirmed":
            self._confirmed(envelope, tx, now)
        elif envelope.type == "shipment.milestone":
            self._milestone(envelope, tx, now)
        elif envelope.type == RETURN_TYPE:
            self._return_authorized(envelope, tx, now)
        elif envelope.type == TIMEOUT_TYPE:
            self._timeout(envelope, tx, now)
        elif envelope.type == REPLY_TYPE:
            self._reply(envelope, tx, now)
        else:
            raise PayloadError("type", f"the order desk does not handle {envelope.type!r}")

    def _placed(self, envelope: Envelope, tx: Tx, now: float) -> None:
        order = SalesOrder.model_validate(envelope.payload)
        if tx.get(ORDERS, order.order_id) is not None:
            return  # placed before under another message id: the first one counts
        record: Record = {"order": envelope.payload, "placed_at": now, "events": [],
                          "trace": [], "exceptions": {}, "timer": None, "tracking": None}
        _trace_message(record, envelope, now)
        state, commands = start(order, now, self.config, self.catalog)
        state = self._carry_out(state, commands, record, tx, now)
        self._save(tx, state, record, now)

    def _confirmed(self, envelope: Envelope, tx: Tx, now: float) -> None:
        shipment = Shipment.model_validate(envelope.payload)
        record = self._record(tx, shipment.order_id)
        if record is None:
            raise NotFound(f"no order {shipment.order_id!r} for shipment "
                           f"{shipment.shipment_id!r}; requeue once the order is placed",
                           field="order_id")
        _trace_message(record, envelope, now)
        state = self.rebuild(record)
        if state.status is Status.CANCELLING:
            # The WMS was asked to cancel and shipped instead: it could not cancel, whatever
            # its answer (still on its way) will say.
            state = self._feed(state, CancelRefused(state.order_id, "the goods had shipped"),
                               record, tx, now)
        if state.status is Status.IN_FULFILMENT:
            # The confirmation says the goods left: they were packed, and the carrier's label
            # is the one on the confirmation.
            record["tracking"] = shipment.tracking
            state = self._feed(state, Packed(state.order_id), record, tx, now)
        state = self._feed(state, ShipmentConfirmed(shipment), record, tx, now)
        # The goods left: what they were reserved by is now off the WMS view.
        self._free(tx, record, {ln.order_line_no for ln in shipment.lines})
        tx.put(SHIPMENT_ORDER, shipment.shipment_id, shipment.order_id)
        self._save(tx, state, record, now)

    def _cancel_requested(self, envelope: Envelope, tx: Tx, now: float) -> None:
        c = OrderCancellation.model_validate(envelope.payload)
        record = self._record(tx, c.order_id)
        if record is None:
            raise NotFound(f"no order {c.order_id!r} to cancel; requeue once the order is "
                           "placed", field="order_id")
        _trace_message(record, envelope, now)
        state = self.rebuild(record)
        if state.status in (Status.CANCELLING, Status.CANCELLED):
            _trace(record, now, "note", "cancel repeated", f"already {state.status.value}")
        elif is_allowed(state.status, EventKind.CANCEL_REQUESTED):
            record["cancel"] = {"reason": c.reason, "requested_at": now}
            state = self._feed(state, CancelRequested(c.order_id, c.reason), record, tx, now)
        else:
            # Packed (or further): too late. The customer's way back is a return.
            _trace(record, now, "note", CANCEL_REFUSED,
                   f"cancel requested while {state.status.value}: too late")
        self._save(tx, state, record, now)

    def _return_authorized(self, envelope: Envelope, tx: Tx, now: float) -> None:
        rma = ReturnAuthorization.model_validate(envelope.payload)
        record = self._record(tx, rma.order_id)
        if record is None:
            raise NotFound(f"no order {rma.order_id!r} for return {rma.rma_id!r}",
                           field="order_id")
        state = self.rebuild(record)
        held = record.setdefault("returns_held", [])
        if (any(r.rma_id == rma.rma_id for r in state.returns)
                or any(h["rma_id"] == rma.rma_id for h in held)):
            _trace_message(record, envelope, now)
            _trace(record, now, "note", "return repeated", f"return {rma.rma_id} known")
        elif state.status is Status.COMPLETED:
            _trace_message(record, envelope, now)
            # The returned quantities are checked here (InvalidEvent: dead-lettered).
            state = self._feed(state, ReturnAuthorized(rma), record, tx, now)
        elif state.status in _RETURNABLE:
            _trace_message(record, envelope, now)
            held.append(envelope.payload)
            _trace(record, now, "note", "return held",
                   f"return {rma.rma_id} waits while {state.status.value}")
        else:
            raise PayloadError("order_id", f"order {rma.order_id!r} is {state.status.value}: "
                               f"nothing shipped to return ({rma.rma_id!r})")
        self._save(tx, state, record, now)

    def _held_return(self, state: OrderState, record: Record, tx: Tx, now: float
                     ) -> OrderState:
        """Feed the first held return once the order is completed (again)."""
        held = record.get("returns_held")
        while held and state.status is Status.COMPLETED:
            rma = ReturnAuthorization.model_validate(held.pop(0))
            try:
                state = self._feed(state, ReturnAuthorized(rma), record, tx, now)
            except PayloadError as exc:  # more than shipped: refused, in the trace
                _trace(record, now, "note", "return refused", f"{rma.rma_id}: {exc}")
        return state

    def _milestone(self, envelope: Envelope, tx: Tx, now: float) -> None:
        m = ShipmentMilestone.model_validate(envelope.payload)
        order_id = tx.get(SHIPMENT_ORDER, m.shipment_id)
        if order_id is None:
            # The confirmation travels under another ordering key and may still be queued.
            raise TransientError(f"shipment {m.shipment_id!r} is not confirmed yet",
                                 field="shipment_id")
        record = self._record(tx, order_id)
        assert record is not None  # the mapping is written with the order's record
        _trace_message(record, envelope, now)
        state = self.rebuild(record)
        if m.milestone.value == "delivered" and is_allowed(state.status, EventKind.DELIVERED):
            state = self._feed(state, Delivered(order_id, m.shipment_id), record, tx, now)
        self._save(tx, state, record, now)

    def _timeout(self, envelope: Envelope, tx: Tx, now: float) -> None:
        order_id, timeout_id = envelope.payload["order_id"], envelope.payload["timeout_id"]
        record = self._record(tx, order_id)
        if record is None:
            return
        _trace_message(record, envelope, now)
        state = self.rebuild(record)
        if is_allowed(state.status, EventKind.TIMEOUT_FIRED):
            state = self._feed(state, TimeoutFired(order_id, timeout_id), record, tx, now)
        self._save(tx, state, record, now)

    def _reply(self, envelope: Envelope, tx: Tx, now: float) -> None:
        p = envelope.payload
        entry = tx.get(OUTBOX, p["call_id"])
        if entry is None or entry.get("done") is not None:
            return  # answered before (a call made twice around a restart)
        tx.put(OUTBOX, p["call_id"], {**entry, "done": now})
        self.open_calls.discard(p["call_id"])
        record = self._record(tx, entry["order_id"])
        assert record is not None  # the call was written with the order's record
        _trace_message(record, envelope, now)
        state = self.rebuild(record)
        event = _reply_event(entry, p)
        if event is not None and is_allowed(state.status, event.kind):
            state = self._feed(state, event, record, tx, now)
        else:
            _trace(record, now, "note", "answer not used",
                   f"{entry['op']} answered while {state.status.value}")
        self._save(tx, state, record, now)

    def _call(self, tx: Tx, record: Record, order_id: str, op: str, body: dict[str, Any],
              now: float) -> None:
        assert op in OPERATIONS, op  # the port's table is the one list of partner calls
        record["calls"] = n = record.get("calls", 0) + 1
        call_id = f"{order_id}/{n}:{op}"
        tx.put(OUTBOX, call_id, {"call_id": call_id, "order_id": order_id, "op": op,
                                 "body": body, "at": now})
        self.open_calls.add(call_id)
        self.new_calls.append(call_id)

    # -- driving the saga --------------------------------------------------------------------

    def _feed(self, state: OrderState, event: Event, record: Record, tx: Tx, now: float
              ) -> OrderState:
        state, commands = handle(state, event, now, self.config)
        record["events"].append(encode_event(event, now))
        _trace(record, now, "event", event.kind.value, "")
        return self._carry_out(state, commands, record, tx, now)

    def _carry_out(self, state: OrderState, commands: Iterable[Command], record: Record,
                   tx: Tx, now: float) -> OrderState:
        pending = deque(commands)
        while pending:
            c = pending.popleft()
            _trace(record, now, "command", c.kind.value, _detail(c))
            answer = self._answer(state, c, record, tx, now)
            if answer is not None:
                state, more = handle(state, answer, now, self.config)
                record["events"].append(encode_event(answer, now))
                _trace(record, now, "event", answer.kind.value, "")
                pending.extend(more)
        return state

    def _answer(self, state: OrderState, c: Command, record: Record, tx: Tx, now: float
                ) -> Event | None:
        """Carry out one command; the partner's answer, if it gives one at once."""
        oid = state.order_id
        if isinstance(c, ValidateOrder):
            return Validated(oid)  # SKUs and units were checked against the item master
        if isinstance(c, RequestCreditCheck):
            self._call(tx, record, oid, "credit_check", {
                "order_id": oid, "customer_id": c.customer_id, "amount": str(c.amount)}, now)
            return None
        if isinstance(c, ReserveInventory):
            lines = self._reserve(tx, record, c)
            if state.status is Status.BACKORDERED:
                return BackorderFilled(oid, lines)
            return Allocated(oid, lines)
        if isinstance(c, ReleaseToWms):
            self._call(tx, record, oid, "release", {
                "order_id": oid, "lines": [{"line_no": ln.line_no, "sku": ln.sku,
                                            "quantity_base": ln.quantity_base}
                                           for ln in c.lines]}, now)
            return None
        if isinstance(c, CancelRelease):
            self._call(tx, record, oid, "cancel_release", {
                "order_id": oid, "reason": (record.get("cancel") or {}).get("reason", "")},
                now)
            return None
        if isinstance(c, PostCreditMemo):
            self._call(tx, record, oid, "credit_memo", {
                "rma_id": c.rma_id, "order_id": oid, "customer_id": c.customer_id,
                "lines": [{"sku": ln.sku, "quantity_base": ln.quantity_base,
                           "unit_price": str(ln.unit_price)} for ln in c.lines]}, now)
            return None
        if isinstance(c, RequestLabel):
            return LabelCreated(oid, record.get("tracking") or f"TRK-{oid}")
        if isinstance(c, PostInvoice):
            self._call(tx, record, oid, "invoice", {
                "shipment_id": c.shipment_id, "order_id": oid,
                "lines": [{"sku": ln.sku, "quantity_base": ln.quantity_base,
                           "unit_price": str(ln.unit_price)} for ln in c.lines]}, now)
            return None
        if isinstance(c, ScheduleTimeout):
            heapq.heappush(self.timers, (c.due_at, oid, c.timeout_id))
        elif isinstance(c, OpenException):
            r = c.record
            record["exceptions"][r.exception_id] = {
                "type": r.type.value, "severity": r.severity.value, "owner": r.owner.value,
                "opened_at": r.opened_at, "closed_at": None, "detail": r.detail,
            }
        elif isinstance(c, CloseException):
            known = record["exceptions"].get(c.exception_id)
            if known is not None:
                known["closed_at"] = c.at
        elif isinstance(c, ReleaseReservation):
            self._free(tx, record, None)
        # NotifyCustomer, CancelTimeout: the trace is the record.
        return None

    def _reserve(self, tx: Tx, record: Record, c: ReserveInventory
                 ) -> tuple[LineQuantity, ...]:
        """Allocate against ATP and hold what was allocated."""
        rows = [
            AtpRow(sku, loc, on_hand, int(tx.get(RESERVED, _held(sku, loc)) or 0))
            for sku in sorted({ln.sku for ln in c.lines})
            for loc, on_hand in self.stock(tx, sku, c.ship_from).items()
        ]
        allocations = allocate_base(((ln.line_no, ln.sku, ln.quantity_base) for ln in c.lines),
                                    AtpTable(rows), c.ship_from)
        held = record.setdefault("reserved", [])
        for a in allocations:
            for p in a.picks:
                key = _held(a.sku, p.location)
                tx.put(RESERVED, key, int(tx.get(RESERVED, key) or 0) + p.quantity_base)
                held.append([a.line_no, a.sku, p.location, p.quantity_base])
        return tuple(LineQuantity(a.line_no, a.allocated_base) for a in allocations)

    @staticmethod
    def _free(tx: Tx, record: Record, line_nos: set[int] | None) -> None:
        """Give back what the order holds (for these lines only, when given)."""
        keep = []
        for entry in record.get("reserved", []):
            line_no, sku, loc, qty = entry
            if line_nos is not None and line_no not in line_nos:
                keep.append(entry)
                continue
            key = _held(sku, loc)
            tx.put(RESERVED, key, max(0, int(tx.get(RESERVED, key) or 0) - qty))
        record["reserved"] = keep

    def _save(self, tx: Tx, state: OrderState, record: Record, now: float) -> None:
        state = self._held_return(state, record, tx, now)
        record["status"] = state.status.value
        pending = state.pending_timeout
        record["timer"] = None if pending is None else [pending.timeout_id, pending.due_at]
        tx.put(ORDERS, state.order_id, record)
        tx.put(TIMERS, state.order_id, record["timer"])
        if state.status in TERMINAL:
            self._folded.pop(state.order_id, None)
        else:
            self._folded[state.order_id] = (list(record["events"]), state)

    # -- reads -------------------------------------------------------------------------------

    def view(self, store: Store, order_id: str, queued: Iterable[Envelope]) -> dict[str, Any]:
        """Status and trace of an order; `queued`: its messages not yet handled."""
        record = store.get_state(ORDERS, order_id)
        waiting = [
            {"at": None, "kind": "queued", "name": e.type, "message_id": e.message_id,
             "correlation_id": e.correlation_id, "causation_id": e.causation_id,
             "occurred_at": e.occurred_at.isoformat(), "detail": "accepted, not yet handled"}
            for e in queued if e.correlation_id == order_id
        ]
        if record is None:
            if not waiting:
                raise NotFound(f"no order {order_id!r}", field="order_id")
            return {"order_id": order_id, "status": "received", "waiting_on": "integration",
                    "lines": [], "shipments": [], "exceptions": [], "pending_timeout": None,
                    "trace": waiting}
        state = self.rebuild(record)
        who = waiting_on(state)
        return {
            "order_id": order_id,
            "status": state.status.value,
            "waiting_on": None if who is None else who.value,
            "lines": [{"line_no": ln.line_no, "sku": ln.sku, "ordered": ln.ordered,
                       "allocated": ln.allocated, "shipped": ln.shipped,
                       "invoiced": ln.invoiced} for ln in state.lines],
            "shipments": [{"shipment_id": s.shipment_id, "tracking": s.tracking,
                           "invoice_id": s.invoice_id, "delivered": s.delivered}
                          for s in state.shipments],
            "exceptions": [{"exception_id": k, **v} for k, v in record["exceptions"].items()],
            "pending_timeout": None if record["timer"] is None else
            {"timeout_id": record["timer"][0], "due_at": record["timer"][1]},
            "trace": record["trace"] + waiting,
        }


def _held(sku: str, location: str) -> str:
    return f"{sku}\t{location}"  # canonical ids never hold a tab


def _reply_event(entry: dict[str, Any], reply: dict[str, Any]) -> Event | None:
    """The saga event a partner's answer stands for (None: an invoice or a credit memo the
    ERP refused, which the saga's timeout turns into an exception)."""
    oid, op, answer = entry["order_id"], entry["op"], reply.get("answer") or {}
    error = reply.get("error")
    if op == "credit_check":
        if error is None and answer.get("approved"):
            return CreditApproved(oid)
        return CreditHeld(oid, error or answer.get("reason", ""))
    if op == "release":
        if error is None and answer.get("accepted"):
            return ReleaseAccepted(oid)
        return ReleaseRejected(oid, error or answer.get("reason", "") or "refused")
    if op == "invoice" and error is None:
        return Invoiced(oid, entry["body"]["shipment_id"], answer["invoice_id"])
    if op == "cancel_release":
        if error is None and answer.get("cancelled"):
            return CancelConfirmed(oid)
        return CancelRefused(oid, error or answer.get("reason", "") or "refused")
    if op == "credit_memo" and error is None:
        return CreditMemoPosted(oid, entry["body"]["rma_id"], answer["credit_memo_id"])
    return None


def _trace(record: Record, at: float, kind: str, name: str, detail: str) -> None:
    record["trace"].append({"at": at, "kind": kind, "name": name, "message_id": None,
                            "correlation_id": None, "causation_id": None,
                            "occurred_at": None, "detail": detail})


def _trace_message(record: Record, e: Envelope, at: float) -> None:
    record["trace"].append({
        "at": at, "kind": "message", "name": e.type, "message_id": e.message_id,
        "correlation_id": e.correlation_id, "causation_id": e.causation_id,
        "occurred_at": e.occurred_at.isoformat(), "detail": f"from {e.source}",
    })


def _detail(c: Command) -> str:
    if isinstance(c, NotifyCustomer):
        return f"{c.notice.value}: {c.detail}".rstrip(": ")
    if isinstance(c, OpenException):
        return f"{c.record.type.value}: {c.record.detail}"
    if isinstance(c, ScheduleTimeout):
        return f"{c.timeout_id} due {c.due_at:.3f} while {c.status.value}"
    if isinstance(c, PostInvoice):
        return f"shipment {c.shipment_id}"
    if isinstance(c, PostCreditMemo):
        return f"return {c.rma_id}"
    if isinstance(c, RequestLabel):
        return f"service {c.service}"
    return ""
