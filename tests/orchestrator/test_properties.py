"""Random event sequences against one order, with the saga's invariants checked after each step:

- per line: allocated <= ordered, invoiced <= shipped <= ordered, returned <= shipped; the
  shipped and invoiced counts are the sums over distinct shipments (no double counting of a
  redelivered confirmation; over-shipped units are never counted);
- every order is settled: terminal, or a timer is pending, or a blocking exception is open;
- the commands agree with the state: the driver's one timer is the state's pending timeout, and
  the blocking exceptions open in the queue are the state's open exceptions;
- a rejected event (IllegalTransition, InvalidEvent) changes nothing.

Events are plausible rather than uniform: mostly the next step of the happy path, often any
event the current status allows, sometimes any event at all; with random partial allocations,
split shipments, substitutions, over-shipments, duplicates, stale timers and cancellations.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field

from hypothesis import event as note
from hypothesis import given, settings
from hypothesis import strategies as st

from integration_core.errors import IllegalTransition
from integration_core.models import Shipment
from integration_core.orchestrator import (
    EXCEPTION_SPECS,
    TERMINAL,
    Allocated,
    BackorderFilled,
    CancelTimeout,
    CloseException,
    Command,
    CreditMemoPosted,
    Delivered,
    Event,
    EventKind,
    ExceptionQueue,
    InvalidEvent,
    Invoiced,
    LineQuantity,
    OpenException,
    OrderState,
    PendingTimeout,
    PostInvoice,
    ReturnAuthorized,
    ScheduleTimeout,
    ShipmentConfirmed,
    Status,
    TimeoutFired,
    allowed_events,
    handle,
    is_settled,
    start,
)
from tests.orchestrator.factories import CONFIG, OID, order, rma, sample_event, shipment

HAPPY: dict[Status, tuple[EventKind, ...]] = {
    Status.VALIDATING: (EventKind.VALIDATED,),
    Status.CREDIT_CHECK: (EventKind.CREDIT_APPROVED,),
    Status.CREDIT_HOLD: (EventKind.CREDIT_RELEASED,),
    Status.ALLOCATING: (EventKind.ALLOCATED,),
    Status.BACKORDERED: (EventKind.BACKORDER_FILLED,),
    Status.RELEASING: (EventKind.RELEASE_ACCEPTED,),
    Status.RELEASE_REJECTED: (EventKind.RETRY_REQUESTED,),
    Status.IN_FULFILMENT: (EventKind.PICKED, EventKind.PACKED),
    Status.LABELLING: (EventKind.LABEL_CREATED,),
    Status.SHIPPING: (EventKind.SHIPMENT_CONFIRMED, EventKind.INVOICED, EventKind.DELIVERED),
    Status.SHIPPED: (EventKind.INVOICED, EventKind.DELIVERED),
    Status.COMPLETED: (EventKind.RETURN_AUTHORIZED,),
    Status.RETURN_PENDING: (EventKind.CREDIT_MEMO_POSTED,),
    Status.CANCELLING: (EventKind.CANCEL_CONFIRMED, EventKind.CANCEL_REFUSED),
}


@dataclass
class Driver:
    """What a driver would keep: one timer per order, the exception queue, what the WMS sent."""

    timer: PendingTimeout | None = None
    queue: ExceptionQueue = field(default_factory=ExceptionQueue)
    sent: list[Shipment] = field(default_factory=list)
    invoices: Counter[str] = field(default_factory=Counter)
    invoiced_units: int = 0

    def carry_out(self, commands: tuple[Command, ...]) -> None:
        for c in commands:
            if isinstance(c, ScheduleTimeout):
                self.timer = PendingTimeout(c.timeout_id, c.due_at)
            elif isinstance(c, CancelTimeout):
                assert self.timer is not None and self.timer.timeout_id == c.timeout_id
                self.timer = None
            elif isinstance(c, OpenException):
                self.queue.open(c.record)
            elif isinstance(c, CloseException):
                assert self.queue.get(c.exception_id).is_open
                self.queue.close(c.exception_id, c.at)
            elif isinstance(c, PostInvoice):
                self.invoices[c.shipment_id] += 1
                self.invoiced_units += sum(ln.quantity_base for ln in c.lines)


def draw_kind(data: st.DataObject, state: OrderState) -> EventKind:
    roll = data.draw(st.integers(0, 19))
    allowed = allowed_events(state.status)
    if roll < 11 and state.status in HAPPY:
        return data.draw(st.sampled_from(HAPPY[state.status]))
    if roll < 18 and allowed:
        return data.draw(st.sampled_from(allowed))
    return data.draw(st.sampled_from(list(EventKind)))


def draw_event(data: st.DataObject, state: OrderState, driver: Driver, now: float) -> Event:
    kind = draw_kind(data, state)
    match kind:
        case EventKind.ALLOCATED | EventKind.BACKORDER_FILLED:
            full = data.draw(st.booleans())
            lines = tuple(
                LineQuantity(
                    ln.line_no,
                    ln.outstanding if full else data.draw(st.integers(0, ln.outstanding + 1)),
                )
                for ln in state.lines
            )
            cls = Allocated if kind is EventKind.ALLOCATED else BackorderFilled
            return cls(OID, lines)
        case EventKind.SHIPMENT_CONFIRMED:
            if driver.sent and data.draw(st.integers(0, 3)) == 0:
                return ShipmentConfirmed(data.draw(st.sampled_from(driver.sent)))  # redelivery
            order_lines = data.draw(st.permutations(state.lines))
            parts = []
            for ln in order_lines[: data.draw(st.integers(1, len(order_lines)))]:
                sku = ln.sku + ("-SUB" if data.draw(st.integers(0, 4)) == 0 else "")
                qty = data.draw(st.integers(1, max(ln.unshipped, 1) + 1))
                parts.append((ln.line_no, sku, qty))
            sent = shipment(f"SH-{len(driver.sent) + 1}", *parts)
            driver.sent.append(sent)
            return ShipmentConfirmed(sent)
        case EventKind.INVOICED | EventKind.DELIVERED:
            ids = [*sorted(state.shipment_ids), "SH-404"]
            sid = data.draw(st.sampled_from(ids))
            if kind is EventKind.INVOICED:
                return Invoiced(OID, sid, f"INV-{sid}")
            return Delivered(OID, sid)
        case EventKind.TIMEOUT_FIRED:
            timer = state.pending_timeout
            if timer is not None and data.draw(st.integers(0, 4)) > 0:
                return TimeoutFired(OID, timer.timeout_id)
            return TimeoutFired(OID, f"{OID}/timer-0")  # stale
        case EventKind.RETURN_AUTHORIZED:
            skus = sorted({p.sku for s in state.shipments for p in s.counted} | {"A"})
            sku = data.draw(st.sampled_from(skus))
            rid = f"RMA-{data.draw(st.integers(1, 3))}"  # ids repeat: duplicates happen
            return ReturnAuthorized(rma(rid, (sku, data.draw(st.integers(1, 3)))))
        case EventKind.CREDIT_MEMO_POSTED:
            rids = [r.rma_id for r in state.returns] + ["RMA-404"]
            return CreditMemoPosted(OID, data.draw(st.sampled_from(rids)), "CM")
        case _:
            return sample_event(kind, state)


def check(state: OrderState, driver: Driver) -> None:
    for ln in state.lines:
        assert 0 <= ln.allocated <= ln.ordered
        assert 0 <= ln.invoiced <= ln.shipped <= ln.ordered
        assert 0 <= ln.returned <= ln.shipped
        counted = [p for s in state.shipments for p in s.counted if p.line_no == ln.line_no]
        assert ln.shipped == sum(p.quantity_base for p in counted)
        invoiced = [
            p for s in state.shipments if s.invoiced for p in s.counted if p.line_no == ln.line_no
        ]
        assert ln.invoiced == sum(p.quantity_base for p in invoiced)
    assert len(state.shipment_ids) == len(state.shipments)
    for record in state.shipments:  # counted + excess is exactly what the WMS sent
        sent = next(s for s in driver.sent if s.shipment_id == record.shipment_id)
        total = sum(p.quantity_base for p in (*record.counted, *record.excess))
        assert total == sum(ln.quantity_base for ln in sent.lines)
    assert all(n == 1 for n in driver.invoices.values()), "a shipment was invoiced twice"
    assert driver.invoiced_units <= sum(ln.shipped for ln in state.lines)

    assert is_settled(state), f"{state.status} has no timer and no open exception"
    assert driver.timer == state.pending_timeout
    blocking = {r.exception_id for r in driver.queue.by_age() if EXCEPTION_SPECS[r.type].blocking}
    assert blocking == set(state.open_exceptions)
    if state.status in TERMINAL:
        assert state.pending_timeout is None and state.open_exceptions == ()


@settings(max_examples=200, deadline=None)
@given(data=st.data(), quantities=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_random_event_sequences_keep_the_invariants(
    data: st.DataObject, quantities: list[int]
) -> None:
    now = 0.0
    driver = Driver()
    state, commands = start(order(*quantities), now, CONFIG)
    driver.carry_out(commands)
    check(state, driver)
    for _ in range(data.draw(st.integers(1, 60), label="steps")):
        event = draw_event(data, state, driver, now)
        now += data.draw(st.integers(0, 600))
        timer = state.pending_timeout
        if isinstance(event, TimeoutFired) and timer and event.timeout_id == timer.timeout_id:
            now = max(now, timer.due_at)  # a timer fires when it is due
        snapshot = copy.deepcopy(state)
        try:
            new, commands = handle(state, event, now, CONFIG)
        except (IllegalTransition, InvalidEvent):
            assert state == snapshot
            continue
        if new is state:
            assert commands == ()  # duplicate or stale: nothing to do
        spent = driver.timer
        if isinstance(event, TimeoutFired) and spent and event.timeout_id == spent.timeout_id:
            driver.timer = None  # the timer went off: it is spent
        driver.carry_out(commands)
        state = new
        check(state, driver)
    note(f"final status: {state.status.value}")
