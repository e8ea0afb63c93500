"""Builders for orchestrator tests: an order, shipments, and paths that reach each status."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from integration_core.models import (
    OrderLine,
    ReturnAuthorization,
    ReturnLine,
    SalesOrder,
    Shipment,
    ShipmentLine,
)
from integration_core.orchestrator import (
    Allocated,
    BackorderFilled,
    CancelConfirmed,
    CancelRefused,
    CancelRequested,
    CarrierFailed,
    Command,
    CreditApproved,
    CreditHeld,
    CreditMemoPosted,
    CreditReleased,
    Delivered,
    Event,
    EventKind,
    Invoiced,
    LabelCreated,
    LineQuantity,
    OrchestratorConfig,
    OrderPlaced,
    OrderState,
    Packed,
    Picked,
    ReleaseAccepted,
    ReleaseRejected,
    RetryRequested,
    ReturnAuthorized,
    ShipmentConfirmed,
    Status,
    TimeoutFired,
    Validated,
    ValidationFailed,
    handle,
)

OID = "SO-1"
T0 = 1_000.0
WHEN = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
CONFIG = OrchestratorConfig()

C = TypeVar("C")


def order(*quantities: int, order_id: str = OID) -> SalesOrder:
    """Lines 1..n of SKUs A, B, ... with the given base quantities (default: A x3, B x2)."""
    qs = quantities or (3, 2)
    return SalesOrder(
        order_id=order_id,
        customer_id="CUST-1",
        placed_at=WHEN,
        ship_from="DC1",
        lines=tuple(
            OrderLine(
                line_no=i + 1,
                sku=chr(ord("A") + i),
                quantity=Decimal(q),
                unit_price=Decimal(10 * (i + 1)),
            )
            for i, q in enumerate(qs)
        ),
    )


def shipment(sid: str, *lines: tuple[int, str, int], order_id: str = OID) -> Shipment:
    return Shipment(
        shipment_id=sid,
        order_id=order_id,
        warehouse_id="DC1",
        lines=tuple(ShipmentLine(order_line_no=n, sku=s, quantity_base=q) for n, s, q in lines),
        tracking=f"TRK-{sid}",
        shipped_at=WHEN,
    )


def rma(rid: str, *lines: tuple[str, int], order_id: str = OID) -> ReturnAuthorization:
    return ReturnAuthorization(
        rma_id=rid,
        order_id=order_id,
        lines=tuple(ReturnLine(sku=s, quantity_base=q) for s, q in lines),
        authorized_at=WHEN,
    )


def alloc(*pairs: tuple[int, int]) -> tuple[LineQuantity, ...]:
    return tuple(LineQuantity(n, q) for n, q in pairs)


def fire(state: OrderState) -> TimeoutFired:
    """The pending timer of `state` going off."""
    assert state.pending_timeout is not None, f"no timer pending in {state.status}"
    return TimeoutFired(state.order_id, state.pending_timeout.timeout_id)


def run(
    state: OrderState, events: Iterable[Event], now: float = T0
) -> tuple[OrderState, list[Command]]:
    """Handle events in turn, one second apart; all commands, in order."""
    out: list[Command] = []
    for i, event in enumerate(events):
        state, commands = handle(state, event, now + i, CONFIG)
        out.extend(commands)
    return state, out


def of_type(commands: Sequence[object], kind: type[C]) -> list[C]:
    return [c for c in commands if isinstance(c, kind)]


# Paths from NEW to each status, for the default order (A x3, B x2).
_FULL = alloc((1, 3), (2, 2))
_PAST_CREDIT: list[Event] = [OrderPlaced(OID), Validated(OID), CreditApproved(OID)]
_RELEASED: list[Event] = [*_PAST_CREDIT, Allocated(OID, _FULL), ReleaseAccepted(OID)]
_LABELLED: list[Event] = [*_RELEASED, Picked(OID), Packed(OID), LabelCreated(OID, "TRK")]
_SHIPPED: list[Event] = [
    *_LABELLED,
    ShipmentConfirmed(shipment("SH-1", (1, "A", 3))),
    ShipmentConfirmed(shipment("SH-2", (2, "B", 2))),
]
_COMPLETED: list[Event] = [
    *_SHIPPED,
    Invoiced(OID, "SH-1", "INV-1"),
    Invoiced(OID, "SH-2", "INV-2"),
    Delivered(OID, "SH-1"),
    Delivered(OID, "SH-2"),
]
PATHS: dict[Status, list[Event]] = {
    Status.NEW: [],
    Status.VALIDATING: [OrderPlaced(OID)],
    Status.CREDIT_CHECK: [OrderPlaced(OID), Validated(OID)],
    Status.CREDIT_HOLD: [OrderPlaced(OID), Validated(OID), CreditHeld(OID, "over limit")],
    Status.ALLOCATING: _PAST_CREDIT,
    Status.BACKORDERED: [*_PAST_CREDIT, Allocated(OID, alloc((1, 1)))],
    Status.RELEASING: [*_PAST_CREDIT, Allocated(OID, _FULL)],
    Status.RELEASE_REJECTED: [*_PAST_CREDIT, Allocated(OID, _FULL), ReleaseRejected(OID, "x")],
    Status.IN_FULFILMENT: _RELEASED,
    Status.LABELLING: [*_RELEASED, Picked(OID), Packed(OID)],
    # One shipment in, so that Invoiced and Delivered have something to refer to.
    Status.SHIPPING: _SHIPPED[:-1],
    Status.SHIPPED: _SHIPPED,
    Status.COMPLETED: _COMPLETED,
    Status.RETURN_PENDING: [*_COMPLETED, ReturnAuthorized(rma("RMA-1", ("A", 1)))],
    Status.CANCELLING: [*_RELEASED, CancelRequested(OID, "changed my mind")],
    Status.CANCELLED: [*_RELEASED, CancelRequested(OID), CancelConfirmed(OID)],
    Status.REJECTED: [OrderPlaced(OID), ValidationFailed(OID, "unknown SKU")],
}


def reach(status: Status) -> OrderState:
    state, _ = run(OrderState.new(order()), PATHS[status])
    assert state.status is status, (state.status, status)
    return state


def sample_event(kind: EventKind, state: OrderState) -> Event:
    """A well-formed event of `kind` whose data fits `state` (for the exhaustive table test)."""
    unallocated = alloc(*((ln.line_no, ln.outstanding) for ln in state.lines if ln.outstanding))
    unshipped = [(ln.line_no, ln.sku, ln.unshipped) for ln in state.lines if ln.unshipped]
    pending = [s for s in state.shipments if s.billable and not s.invoiced]
    undelivered = [s for s in state.shipments if not s.delivered]
    owed = [r for r in state.returns if not r.credited]
    match kind:
        case EventKind.ORDER_PLACED:
            return OrderPlaced(OID)
        case EventKind.VALIDATED:
            return Validated(OID)
        case EventKind.VALIDATION_FAILED:
            return ValidationFailed(OID, "bad")
        case EventKind.CREDIT_APPROVED:
            return CreditApproved(OID)
        case EventKind.CREDIT_HELD:
            return CreditHeld(OID, "limit")
        case EventKind.CREDIT_RELEASED:
            return CreditReleased(OID)
        case EventKind.ALLOCATED:
            return Allocated(OID, unallocated)
        case EventKind.BACKORDER_FILLED:
            return BackorderFilled(OID, unallocated)
        case EventKind.RELEASE_ACCEPTED:
            return ReleaseAccepted(OID)
        case EventKind.RELEASE_REJECTED:
            return ReleaseRejected(OID, "unknown location")
        case EventKind.PICKED:
            return Picked(OID)
        case EventKind.PACKED:
            return Packed(OID)
        case EventKind.LABEL_CREATED:
            return LabelCreated(OID, "TRK-9")
        case EventKind.CARRIER_FAILED:
            return CarrierFailed(OID, "no pickup")
        case EventKind.SHIPMENT_CONFIRMED:
            return ShipmentConfirmed(shipment("SH-X", *(unshipped or [(1, "A", 1)])))
        case EventKind.INVOICED:
            sid = pending[0].shipment_id if pending else "SH-1"
            return Invoiced(OID, sid, "INV-X")
        case EventKind.DELIVERED:
            sid = undelivered[0].shipment_id if undelivered else "SH-1"
            return Delivered(OID, sid)
        case EventKind.TIMEOUT_FIRED:
            timer = state.pending_timeout
            return TimeoutFired(OID, timer.timeout_id if timer else "stale")
        case EventKind.RETRY_REQUESTED:
            return RetryRequested(OID)
        case EventKind.CANCEL_REQUESTED:
            return CancelRequested(OID, "no longer needed")
        case EventKind.CANCEL_CONFIRMED:
            return CancelConfirmed(OID)
        case EventKind.CANCEL_REFUSED:
            return CancelRefused(OID, "already picked")
        case EventKind.RETURN_AUTHORIZED:
            return ReturnAuthorized(rma("RMA-X", ("B", 1)))
        case EventKind.CREDIT_MEMO_POSTED:
            rid = owed[0].rma_id if owed else "RMA-1"
            return CreditMemoPosted(OID, rid, "CM-1")
    raise AssertionError(kind)
