"""Commands: what the saga asks the driver to do. Plain values; the driver carries them out.

Requests to partners carry stable ids (release id, order id) so that a resend after a timeout
is deduplicated by the partner rather than executed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import ClassVar

from integration_core.models import InvoiceLine
from integration_core.orchestrator.exceptions import ExceptionRecord
from integration_core.orchestrator.states import Status


class CommandKind(StrEnum):
    VALIDATE_ORDER = "validate_order"
    REQUEST_CREDIT_CHECK = "request_credit_check"
    RESERVE_INVENTORY = "reserve_inventory"
    RELEASE_TO_WMS = "release_to_wms"
    REQUEST_LABEL = "request_label"
    POST_INVOICE = "post_invoice"
    NOTIFY_CUSTOMER = "notify_customer"
    OPEN_EXCEPTION = "open_exception"
    CLOSE_EXCEPTION = "close_exception"
    RELEASE_RESERVATION = "release_reservation"
    CANCEL_RELEASE = "cancel_release"
    SCHEDULE_TIMEOUT = "schedule_timeout"
    CANCEL_TIMEOUT = "cancel_timeout"
    POST_CREDIT_MEMO = "post_credit_memo"


class Notice(StrEnum):
    """What a customer notification is about."""

    REJECTED = "rejected"
    BACKORDERED = "backordered"
    SHIPPED = "shipped"
    INVOICED = "invoiced"
    CANCELLED = "cancelled"
    CANCEL_REFUSED = "cancel_refused"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class LineRequest:
    line_no: int
    sku: str
    quantity_base: int


@dataclass(frozen=True, slots=True)
class ValidateOrder:
    kind: ClassVar[CommandKind] = CommandKind.VALIDATE_ORDER
    order_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class RequestCreditCheck:
    kind: ClassVar[CommandKind] = CommandKind.REQUEST_CREDIT_CHECK
    order_id: str
    customer_id: str
    amount: Decimal
    attempt: int


@dataclass(frozen=True, slots=True)
class ReserveInventory:
    """Allocate against available-to-promise what is still outstanding."""

    kind: ClassVar[CommandKind] = CommandKind.RESERVE_INVENTORY
    order_id: str
    lines: tuple[LineRequest, ...]
    ship_from: str | None
    attempt: int


@dataclass(frozen=True, slots=True)
class ReleaseToWms:
    kind: ClassVar[CommandKind] = CommandKind.RELEASE_TO_WMS
    order_id: str
    release_id: str
    lines: tuple[LineRequest, ...]
    ship_from: str | None
    attempt: int


@dataclass(frozen=True, slots=True)
class RequestLabel:
    kind: ClassVar[CommandKind] = CommandKind.REQUEST_LABEL
    order_id: str
    service: str
    attempt: int


@dataclass(frozen=True, slots=True)
class PostInvoice:
    """Invoice one shipment: the SKUs actually shipped, at the ordered line's price."""

    kind: ClassVar[CommandKind] = CommandKind.POST_INVOICE
    order_id: str
    shipment_id: str
    customer_id: str
    lines: tuple[InvoiceLine, ...]


@dataclass(frozen=True, slots=True)
class NotifyCustomer:
    kind: ClassVar[CommandKind] = CommandKind.NOTIFY_CUSTOMER
    order_id: str
    customer_id: str
    notice: Notice
    detail: str = ""


@dataclass(frozen=True, slots=True)
class OpenException:
    kind: ClassVar[CommandKind] = CommandKind.OPEN_EXCEPTION
    record: ExceptionRecord


@dataclass(frozen=True, slots=True)
class CloseException:
    kind: ClassVar[CommandKind] = CommandKind.CLOSE_EXCEPTION
    order_id: str
    exception_id: str
    at: float


@dataclass(frozen=True, slots=True)
class ReleaseReservation:
    """Compensation: give back everything reserved for the order (`lines` is what we know of;
    a reservation still in flight must be released too)."""

    kind: ClassVar[CommandKind] = CommandKind.RELEASE_RESERVATION
    order_id: str
    lines: tuple[LineRequest, ...]


@dataclass(frozen=True, slots=True)
class CancelRelease:
    """Compensation: ask the WMS to cancel the release; answered by CancelConfirmed/Refused."""

    kind: ClassVar[CommandKind] = CommandKind.CANCEL_RELEASE
    order_id: str
    release_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class ScheduleTimeout:
    """Arm the order's single timer; it replaces any timer the order had."""

    kind: ClassVar[CommandKind] = CommandKind.SCHEDULE_TIMEOUT
    order_id: str
    timeout_id: str
    due_at: float
    status: Status


@dataclass(frozen=True, slots=True)
class CancelTimeout:
    kind: ClassVar[CommandKind] = CommandKind.CANCEL_TIMEOUT
    order_id: str
    timeout_id: str


@dataclass(frozen=True, slots=True)
class PostCreditMemo:
    kind: ClassVar[CommandKind] = CommandKind.POST_CREDIT_MEMO
    order_id: str
    rma_id: str
    customer_id: str
    lines: tuple[InvoiceLine, ...]
    attempt: int


Command = (
    ValidateOrder
    | RequestCreditCheck
    | ReserveInventory
    | ReleaseToWms
    | RequestLabel
    | PostInvoice
    | NotifyCustomer
    | OpenException
    | CloseException
    | ReleaseReservation
    | CancelRelease
    | ScheduleTimeout
    | CancelTimeout
    | PostCreditMemo
)

COMMAND_TYPES: dict[CommandKind, type[Command]] = {
    cls.kind: cls
    for cls in (
        ValidateOrder,
        RequestCreditCheck,
        ReserveInventory,
        ReleaseToWms,
        RequestLabel,
        PostInvoice,
        NotifyCustomer,
        OpenException,
        CloseException,
        ReleaseReservation,
        CancelRelease,
        ScheduleTimeout,
        CancelTimeout,
        PostCreditMemo,
    )
}
