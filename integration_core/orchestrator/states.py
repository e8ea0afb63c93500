"""The order's state: a frozen value. `handle` never mutates one; it returns a new one.

Quantities are base units (int). Per line the saga keeps `ordered >= allocated`,
`ordered >= shipped >= invoiced` and `shipped >= returned`; a warehouse substitution is counted
against the order line it was shipped for, whatever SKU went out.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from fractions import Fraction

from integration_core.errors import PayloadError
from integration_core.models import Catalog, OrderLine, SalesOrder


class Status(StrEnum):
    """Where the order is in the order-to-ship saga."""

    NEW = "new"
    VALIDATING = "validating"
    CREDIT_CHECK = "credit_check"
    CREDIT_HOLD = "credit_hold"
    ALLOCATING = "allocating"
    BACKORDERED = "backordered"
    RELEASING = "releasing"
    RELEASE_REJECTED = "release_rejected"
    IN_FULFILMENT = "in_fulfilment"
    LABELLING = "labelling"
    SHIPPING = "shipping"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    RETURN_PENDING = "return_pending"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


#: The saga's work is done and nothing is scheduled. COMPLETED still accepts a return
#: authorization (returns come weeks later, on the customer's initiative, not the saga's).
TERMINAL: frozenset[Status] = frozenset({Status.COMPLETED, Status.CANCELLED, Status.REJECTED})


class System(StrEnum):
    """A party of the landscape: owner of an exception, or the one an order waits on."""

    SHOP = "shop"
    ERP = "erp"
    WMS = "wms"
    CARRIER = "carrier"
    INTEGRATION = "integration"


#: Who the order waits on in each non-terminal status. In each of them the order also has a
#: pending timeout or an open blocking exception (see `is_settled`). NEW is transient: `start`
#: handles OrderPlaced in the same step that creates the state.
WAITING_ON: dict[Status, System] = {
    Status.NEW: System.SHOP,
    Status.VALIDATING: System.ERP,  # item master and customer checks
    Status.CREDIT_CHECK: System.ERP,
    Status.CREDIT_HOLD: System.ERP,  # the credit department decides
    Status.ALLOCATING: System.ERP,  # available-to-promise
    Status.BACKORDERED: System.ERP,  # ATP allocates incoming stock to backorders
    Status.RELEASING: System.WMS,
    Status.RELEASE_REJECTED: System.WMS,  # someone fixes what the WMS refused
    Status.IN_FULFILMENT: System.WMS,
    Status.LABELLING: System.CARRIER,
    Status.SHIPPING: System.WMS,
    Status.SHIPPED: System.CARRIER,  # delivery; invoices are the ERP's, see `waiting_on`
    Status.RETURN_PENDING: System.ERP,
    Status.CANCELLING: System.WMS,
}

_MONEY = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class LineProgress:
    """One order line and what has happened to it, in base units."""

    line_no: int
    sku: str
    ordered: int
    unit_price: Decimal
    """Price of one base unit (rounded to Money's 4 decimals when the order unit is larger)."""
    allocated: int = 0
    shipped: int = 0
    invoiced: int = 0
    returned: int = 0

    @property
    def outstanding(self) -> int:
        """Still to allocate."""
        return self.ordered - self.allocated

    @property
    def backordered(self) -> int:
        """Ordered but not allocated: a synonym of `outstanding` in backorder vocabulary."""
        return self.ordered - self.allocated

    @property
    def unshipped(self) -> int:
        return self.ordered - self.shipped


@dataclass(frozen=True, slots=True)
class CountedLine:
    """Part of a shipment counted against an order line; `sku` is what was actually shipped."""

    line_no: int
    sku: str
    quantity_base: int


@dataclass(frozen=True, slots=True)
class ShipmentRecord:
    """A confirmed shipment: what counted against the order and what exceeded it."""

    shipment_id: str
    counted: tuple[CountedLine, ...]
    excess: tuple[CountedLine, ...] = ()
    tracking: str | None = None
    invoice_id: str | None = None
    delivered: bool = False

    @property
    def billable(self) -> bool:
        """A shipment that counted nothing (all excess) is not invoiced."""
        return bool(self.counted)

    @property
    def invoiced(self) -> bool:
        return self.invoice_id is not None

    @property
    def settled(self) -> bool:
        """Invoiced (or nothing to invoice) and delivered."""
        return (self.invoiced or not self.billable) and self.delivered


@dataclass(frozen=True, slots=True)
class ReturnRecord:
    """A return authorization, mapped onto the order lines whose shipments it returns."""

    rma_id: str
    lines: tuple[CountedLine, ...]
    credited: bool = False


@dataclass(frozen=True, slots=True)
class PendingTimeout:
    timeout_id: str
    due_at: float


@dataclass(frozen=True, slots=True)
class OrderState:
    """Everything the saga knows about one order. Build the first one with `OrderState.new`."""

    order: SalesOrder
    status: Status
    lines: tuple[LineProgress, ...]
    shipments: tuple[ShipmentRecord, ...] = ()
    returns: tuple[ReturnRecord, ...] = ()
    pending_timeout: PendingTimeout | None = None
    open_exceptions: tuple[str, ...] = ()
    """Blocking exceptions: the order cannot progress until one of them is dealt with."""
    attempts: int = 0
    """Requests sent in the current wait (release, label, ...); reset when the wait changes."""
    carrier_service: str | None = None
    failed_services: tuple[str, ...] = ()
    tracking: str | None = None
    timeout_seq: int = 0
    exception_seq: int = 0

    @classmethod
    def new(cls, order: SalesOrder, catalog: Catalog | None = None) -> OrderState:
        """State of a freshly received order; `catalog` converts lines not in base units."""
        return cls(
            order=order,
            status=Status.NEW,
            lines=tuple(_line_progress(line, catalog) for line in order.lines),
        )

    @property
    def order_id(self) -> str:
        return self.order.order_id

    @property
    def shipment_ids(self) -> frozenset[str]:
        return frozenset(s.shipment_id for s in self.shipments)

    def line(self, line_no: int) -> LineProgress | None:
        for line in self.lines:
            if line.line_no == line_no:
                return line
        return None

    def shipment(self, shipment_id: str) -> ShipmentRecord | None:
        for s in self.shipments:
            if s.shipment_id == shipment_id:
                return s
        return None

    def with_line(self, line: LineProgress) -> OrderState:
        lines = tuple(line if ln.line_no == line.line_no else ln for ln in self.lines)
        return replace(self, lines=lines)

    def with_shipment(self, record: ShipmentRecord) -> OrderState:
        shipments = tuple(
            record if s.shipment_id == record.shipment_id else s for s in self.shipments
        )
        return replace(self, shipments=shipments)

    @property
    def fully_allocated(self) -> bool:
        return all(line.allocated == line.ordered for line in self.lines)

    @property
    def fully_shipped(self) -> bool:
        return all(line.shipped == line.ordered for line in self.lines)

    @property
    def complete(self) -> bool:
        """Everything shipped, every shipment invoiced (if billable) and delivered."""
        return self.fully_shipped and all(s.settled for s in self.shipments if s.billable)


def _line_progress(line: OrderLine, catalog: Catalog | None) -> LineProgress:
    base = line.quantity_base
    if base is None:
        if catalog is None:
            raise PayloadError(
                f"lines[{line.line_no}].quantity_base",
                f"quantity {line.quantity} {line.unit} needs the item master to convert to base "
                "units",
            )
        base = catalog.item(line.sku).to_base(line.quantity, line.unit)
    if base <= 0:
        raise PayloadError(f"lines[{line.line_no}].quantity_base", "must be positive", base)
    # The order prices `unit`; invoices price base units.
    exact = Fraction(line.unit_price) * Fraction(line.quantity) / base
    price = (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(
        _MONEY, rounding=ROUND_HALF_EVEN
    )
    return LineProgress(line_no=line.line_no, sku=line.sku, ordered=base, unit_price=price)


def waiting_on(state: OrderState) -> System | None:
    """The party the order waits on now; None when it is terminal."""
    if state.status in TERMINAL:
        return None
    if state.status is Status.SHIPPED and any(
        s.billable and not s.invoiced for s in state.shipments
    ):
        return System.ERP
    return WAITING_ON[state.status]


def is_settled(state: OrderState) -> bool:
    """True when nobody can forget the order: it is terminal, or a timeout is pending that will
    wake it, or a blocking exception is open for a person to act on.

    The saga keeps this true after every event it accepts (except in the transient NEW).
    """
    return (
        state.status in TERMINAL or state.pending_timeout is not None or bool(state.open_exceptions)
    )
