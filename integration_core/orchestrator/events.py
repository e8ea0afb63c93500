"""Events: what the shop, ERP, WMS, carrier, timers and operators tell the saga.

Each event names its order and has a `kind`, the key of the transition table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from integration_core.errors import PayloadError
from integration_core.models import ReturnAuthorization, Shipment


class EventKind(StrEnum):
    ORDER_PLACED = "order_placed"
    VALIDATED = "validated"
    VALIDATION_FAILED = "validation_failed"
    CREDIT_APPROVED = "credit_approved"
    CREDIT_HELD = "credit_held"
    CREDIT_RELEASED = "credit_released"
    ALLOCATED = "allocated"
    BACKORDER_FILLED = "backorder_filled"
    RELEASE_ACCEPTED = "release_accepted"
    RELEASE_REJECTED = "release_rejected"
    PICKED = "picked"
    PACKED = "packed"
    LABEL_CREATED = "label_created"
    CARRIER_FAILED = "carrier_failed"
    SHIPMENT_CONFIRMED = "shipment_confirmed"
    INVOICED = "invoiced"
    DELIVERED = "delivered"
    TIMEOUT_FIRED = "timeout_fired"
    RETRY_REQUESTED = "retry_requested"
    CANCEL_REQUESTED = "cancel_requested"
    CANCEL_CONFIRMED = "cancel_confirmed"
    CANCEL_REFUSED = "cancel_refused"
    RETURN_AUTHORIZED = "return_authorized"
    CREDIT_MEMO_POSTED = "credit_memo_posted"


class InvalidEvent(PayloadError):
    """An allowed event whose data cannot apply to this order (unknown line or shipment, more
    allocated or returned than possible). The sender is at fault; the state is unchanged."""


@dataclass(frozen=True, slots=True)
class LineQuantity:
    line_no: int
    quantity_base: int


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """The shop's order was received; the state holds it (`OrderState.new`)."""

    kind: ClassVar[EventKind] = EventKind.ORDER_PLACED
    order_id: str


@dataclass(frozen=True, slots=True)
class Validated:
    kind: ClassVar[EventKind] = EventKind.VALIDATED
    order_id: str


@dataclass(frozen=True, slots=True)
class ValidationFailed:
    kind: ClassVar[EventKind] = EventKind.VALIDATION_FAILED
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class CreditApproved:
    kind: ClassVar[EventKind] = EventKind.CREDIT_APPROVED
    order_id: str


@dataclass(frozen=True, slots=True)
class CreditHeld:
    kind: ClassVar[EventKind] = EventKind.CREDIT_HELD
    order_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CreditReleased:
    kind: ClassVar[EventKind] = EventKind.CREDIT_RELEASED
    order_id: str


@dataclass(frozen=True, slots=True)
class Allocated:
    """Answer to ReserveInventory: base units newly allocated per line (may be partial)."""

    kind: ClassVar[EventKind] = EventKind.ALLOCATED
    order_id: str
    lines: tuple[LineQuantity, ...]


@dataclass(frozen=True, slots=True)
class BackorderFilled:
    """Stock arrived and ATP allocated more to a backordered order, per line."""

    kind: ClassVar[EventKind] = EventKind.BACKORDER_FILLED
    order_id: str
    lines: tuple[LineQuantity, ...]


@dataclass(frozen=True, slots=True)
class ReleaseAccepted:
    kind: ClassVar[EventKind] = EventKind.RELEASE_ACCEPTED
    order_id: str


@dataclass(frozen=True, slots=True)
class ReleaseRejected:
    kind: ClassVar[EventKind] = EventKind.RELEASE_REJECTED
    order_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Picked:
    """The WMS reports picking progress (may come once per wave)."""

    kind: ClassVar[EventKind] = EventKind.PICKED
    order_id: str


@dataclass(frozen=True, slots=True)
class Packed:
    """The order is packed and needs a carrier label."""

    kind: ClassVar[EventKind] = EventKind.PACKED
    order_id: str


@dataclass(frozen=True, slots=True)
class LabelCreated:
    kind: ClassVar[EventKind] = EventKind.LABEL_CREATED
    order_id: str
    tracking: str


@dataclass(frozen=True, slots=True)
class CarrierFailed:
    """The carrier could not book (or collect under) the current service."""

    kind: ClassVar[EventKind] = EventKind.CARRIER_FAILED
    order_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ShipmentConfirmed:
    """The WMS shipped (part of) the order. Idempotent per shipment id."""

    kind: ClassVar[EventKind] = EventKind.SHIPMENT_CONFIRMED
    shipment: Shipment

    @property
    def order_id(self) -> str:
        return self.shipment.order_id


@dataclass(frozen=True, slots=True)
class Invoiced:
    """The ERP posted the invoice of one shipment."""

    kind: ClassVar[EventKind] = EventKind.INVOICED
    order_id: str
    shipment_id: str
    invoice_id: str


@dataclass(frozen=True, slots=True)
class Delivered:
    kind: ClassVar[EventKind] = EventKind.DELIVERED
    order_id: str
    shipment_id: str


@dataclass(frozen=True, slots=True)
class TimeoutFired:
    """A timer set by ScheduleTimeout went off. Ignored when it is not the pending one."""

    kind: ClassVar[EventKind] = EventKind.TIMEOUT_FIRED
    order_id: str
    timeout_id: str


@dataclass(frozen=True, slots=True)
class RetryRequested:
    """An operator dealt with the open exception: resend the request and wait again."""

    kind: ClassVar[EventKind] = EventKind.RETRY_REQUESTED
    order_id: str


@dataclass(frozen=True, slots=True)
class CancelRequested:
    kind: ClassVar[EventKind] = EventKind.CANCEL_REQUESTED
    order_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CancelConfirmed:
    """The WMS cancelled the release and put the stock back."""

    kind: ClassVar[EventKind] = EventKind.CANCEL_CONFIRMED
    order_id: str


@dataclass(frozen=True, slots=True)
class CancelRefused:
    """The WMS is too far along to cancel; fulfilment continues."""

    kind: ClassVar[EventKind] = EventKind.CANCEL_REFUSED
    order_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReturnAuthorized:
    kind: ClassVar[EventKind] = EventKind.RETURN_AUTHORIZED
    rma: ReturnAuthorization

    @property
    def order_id(self) -> str:
        return self.rma.order_id


@dataclass(frozen=True, slots=True)
class CreditMemoPosted:
    kind: ClassVar[EventKind] = EventKind.CREDIT_MEMO_POSTED
    order_id: str
    rma_id: str
    credit_memo_id: str


Event = (
    OrderPlaced
    | Validated
    | ValidationFailed
    | CreditApproved
    | CreditHeld
    | CreditReleased
    | Allocated
    | BackorderFilled
    | ReleaseAccepted
    | ReleaseRejected
    | Picked
    | Packed
    | LabelCreated
    | CarrierFailed
    | ShipmentConfirmed
    | Invoiced
    | Delivered
    | TimeoutFired
    | RetryRequested
    | CancelRequested
    | CancelConfirmed
    | CancelRefused
    | ReturnAuthorized
    | CreditMemoPosted
)

#: Event class per kind, for names in the diagram and for tests that cover every kind.
EVENT_TYPES: dict[EventKind, type[Event]] = {
    cls.kind: cls
    for cls in (
        OrderPlaced,
        Validated,
        ValidationFailed,
        CreditApproved,
        CreditHeld,
        CreditReleased,
        Allocated,
        BackorderFilled,
        ReleaseAccepted,
        ReleaseRejected,
        Picked,
        Packed,
        LabelCreated,
        CarrierFailed,
        ShipmentConfirmed,
        Invoiced,
        Delivered,
        TimeoutFired,
        RetryRequested,
        CancelRequested,
        CancelConfirmed,
        CancelRefused,
        ReturnAuthorized,
        CreditMemoPosted,
    )
}
