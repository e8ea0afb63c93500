"""Canonical models: the objects that cross system boundaries.

All models are frozen. Quantities are exact: base units are integers, reported quantities are
Decimal, conversions use Fraction, never float.

Checks that need the item master (unknown SKU or unit, whole base units, lots, serials) run when
the model is validated with a catalog in the context: ``catalog.parse(Movement, data)``.

The fields are bounded for data from outside, cheaply: identifiers (`Id`) are printable ASCII a
URL path can carry, free text (`Text`) has no control characters, numbers (`Number`, `Money`)
are checked for length and exponent before any Decimal arithmetic or Fraction is made of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

from integration_core.errors import UnknownSku, UnknownUnit

# Identifiers travel in URL paths (GET /v1/orders/{id}), file names, log lines and the keys of
# the bus: printable ASCII without the characters a path cannot carry as they are (space, #, %,
# /, ?, \), and not only dots ("." and ".." vanish when a client normalises the path). One
# compiled pattern, checked by pydantic-core in Rust: a few tens of ns per id.
_ID_CHAR = r"[\x21\x22\x24\x26-\x2e\x30-\x3e\x40-\x5b\x5d-\x7e]"
_ID_CHAR_NOT_DOT = r"[\x21\x22\x24\x26-\x2d\x30-\x3e\x40-\x5b\x5d-\x7e]"
ID_PATTERN = f"^{_ID_CHAR}*{_ID_CHAR_NOT_DOT}{_ID_CHAR}*$"
ID_RULE = "an id is printable ASCII without spaces or any of # % / ? \\, and not only dots"
# Free text (names, descriptions, carrier details): any characters but control characters
# (tab, line feed and carriage return allowed), bounded.
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
TEXT_RULE = "text must not contain control characters other than tab and line breaks"
MAX_TEXT = 1000

Id = Annotated[str, Field(min_length=1, max_length=128, pattern=ID_PATTERN)]
Reference = Annotated[str, Field(min_length=1, max_length=512, pattern=ID_PATTERN)]
"""A source document's id, or a composite key such as the reconciler's ``sku@location``."""
Text = Annotated[str, Field(max_length=MAX_TEXT, pattern=TEXT_PATTERN)]

MAX_NUMBER_CHARS = 40
"""Longest numeric string (quantity, price, factor) accepted."""
MAX_EXPONENT = 40
"""Largest decimal exponent of a number accepted, either sign: ``1e-41`` is refused."""


def _bounded_number(v: object) -> object:
    """A numeric string or Decimal checked before any arithmetic: ``Fraction("1e-6000000")``
    builds a six-million-digit integer (seconds of CPU), ``Decimal`` reads a megabyte of
    digits. Plain ASCII decimal notation only (Decimal alone would also read "1_0", "١٢")."""
    if isinstance(v, str):
        if len(v) > MAX_NUMBER_CHARS:
            raise ValueError(f"a number has at most {MAX_NUMBER_CHARS} characters, got "
                             f"{len(v)}")
        if not v.isascii() or "_" in v:
            raise ValueError("expected a decimal number in ASCII digits, e.g. 12 or -1.5")
        if "e" not in v and "E" not in v:
            return v  # plain notation: its length bounds the exponent; pydantic reads it
        try:
            v = Decimal(v)
        except InvalidOperation:
            raise ValueError("expected a decimal number, e.g. 12 or -1.5") from None
    if isinstance(v, Decimal):
        if not v.is_finite():
            raise ValueError("expected a finite number, not NaN or Infinity")
        if abs(v.adjusted()) > MAX_EXPONENT:
            raise ValueError(f"exponent {v.adjusted()} is out of range: at most "
                             f"{MAX_EXPONENT} digits either side of the point")
    return v


# Constraints go before this validator in an Annotated: after it, pydantic would check them in
# Python instead of in its decimal validator (3x slower).
_BOUNDED_NUMBER = BeforeValidator(_bounded_number)
Number = Annotated[Decimal, _BOUNDED_NUMBER]
"""A Decimal from an untrusted source: bounded in length and exponent before it is parsed."""
Money = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4), _BOUNDED_NUMBER]
MAX_QUANTITY = 10**12
"""Largest quantity anywhere, in any unit and in base units: beyond any real stock, and it
keeps every sum inside the 64-bit integers SQLite and the reconciler's arrays hold."""


class Canonical(BaseModel):
    """Base of all canonical models: frozen, no unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


# --- item master -------------------------------------------------------------------------------


class UnitConversion(Canonical):
    """``1 unit = factor x of``; ``of`` defaults to the item's base unit. Example: 1 PL = 40 CS."""

    unit: Id = Field(description="Unit being defined, e.g. CS.")
    factor: Annotated[Decimal, Field(gt=0), _BOUNDED_NUMBER] = Field(
        description="How many `of` one `unit` holds.")
    of: Id | None = Field(default=None, description="Unit the factor counts; base unit if null.")


class Item(Canonical):
    sku: Id
    description: Text = ""
    base_uom: Id = Field(default="EA", description="Base unit of measure; stock is kept in it.")
    conversions: tuple[UnitConversion, ...] = ()
    lot_tracked: bool = False
    serial_tracked: bool = False
    unit_value: Money = Field(default=Decimal(0), description="Value of one base unit.")

    _factors: dict[str, Fraction] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _resolve_factors(self) -> Item:
        pending = {c.unit: c for c in self.conversions}
        if len(pending) != len(self.conversions):
            raise ValueError("conversions: a unit is defined twice")
        if self.base_uom in pending:
            raise ValueError(f"conversions: base unit {self.base_uom!r} cannot be converted")
        factors: dict[str, Fraction] = {self.base_uom: Fraction(1)}
        while pending:
            progressed = False
            for unit, conv in list(pending.items()):
                target = conv.of or self.base_uom
                if target in factors:
                    factors[unit] = Fraction(conv.factor) * factors[target]
                    del pending[unit]
                    progressed = True
            if not progressed:
                raise ValueError(
                    f"conversions: units {sorted(pending)} refer to unknown units or to each other"
                )
        self._factors = factors
        return self

    @property
    def units(self) -> list[str]:
        return sorted(self._factors)

    def knows(self, unit: str) -> bool:
        return unit in self._factors

    def factor(self, unit: str | None) -> Fraction:
        """Base units in one `unit`; None means the base unit."""
        if unit is None:
            return _ONE
        try:
            return self._factors[unit]
        except KeyError:
            raise UnknownUnit(self.sku, unit, self.units) from None

    def to_base(self, quantity: Decimal | int, unit: str | None) -> int:
        """Exact conversion to base units; a fraction of a base unit is an error."""
        factor = self.factor(unit)
        if factor.denominator == 1 and quantity == int(quantity):  # the common case, no Fraction
            return int(quantity) * factor.numerator
        exact = Fraction(quantity) * factor
        if exact.denominator != 1:
            raise ValueError(
                f"quantity {quantity} {unit or self.base_uom} is {float(exact):g} "
                f"{self.base_uom}: not a whole number of base units"
            )
        return int(exact)

    def from_base(self, quantity_base: int, unit: str | None) -> Decimal:
        exact = Fraction(quantity_base) / self.factor(unit)
        return Decimal(exact.numerator) / Decimal(exact.denominator)


_ONE = Fraction(1)
"""The base unit's factor (a Fraction is immutable: one serves every call)."""


class WarehouseOperator(StrEnum):
    OWN = "own"
    THIRD_PARTY = "3pl"


class Warehouse(Canonical):
    warehouse_id: Id
    name: Text = ""
    operator: WarehouseOperator = WarehouseOperator.OWN
    batch_reporting: bool = Field(default=False, description="Reports movements in batches (3PL).")


class Location(Canonical):
    location_id: Id
    warehouse_id: Id
    zone: Text = ""


class Customer(Canonical):
    customer_id: Id
    name: Text = ""
    credit_limit: Money = Decimal(0)
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"


class Catalog:
    """The item master plus reference data, passed as validation context."""

    def __init__(
        self,
        items: Iterable[Item] = (),
        locations: Iterable[Location] = (),
        customers: Iterable[Customer] = (),
    ) -> None:
        self.items = {i.sku: i for i in items}
        self.locations = {loc.location_id: loc for loc in locations}
        self.customers = {c.customer_id: c for c in customers}

    def item(self, sku: str) -> Item:
        try:
            return self.items[sku]
        except KeyError:
            raise UnknownSku(sku) from None

    def parse(self, model: type[M], data: Mapping[str, Any]) -> M:
        """Validate `data` as `model`, including the checks that need the item master."""
        # The validator itself, as model_validate calls it with no options: a Python call less.
        validated: M = model.__pydantic_validator__.validate_python(
            data, context={"catalog": self})
        return validated


M = TypeVar("M", bound=Canonical)


def _catalog(info: ValidationInfo) -> Catalog | None:
    ctx = info.context
    # A dict (what Catalog.parse passes) skips the abstract-class check: up to four calls per
    # movement.
    if type(ctx) is dict or isinstance(ctx, Mapping):
        cat = ctx.get("catalog")
        if isinstance(cat, Catalog):
            return cat
    return None


def _item(info: ValidationInfo) -> Item | None:
    """The item named by the already-validated `sku` field, when a catalog is in context."""
    cat = _catalog(info)
    sku = info.data.get("sku")
    if cat is None or sku is None:
        return None
    return cat.items.get(sku)


def _bounded(quantity_base: int) -> int:
    if abs(quantity_base) > MAX_QUANTITY:
        raise ValueError(f"{quantity_base} base units is more than {MAX_QUANTITY:.0e}, the "
                         "largest quantity accepted")
    return quantity_base


def _check_sku(sku: str, info: ValidationInfo) -> str:
    cat = _catalog(info)
    if cat is not None and sku not in cat.items:
        raise ValueError(f"unknown SKU {sku!r}: not in the item master")
    return sku


def _check_unit(unit: str | None, info: ValidationInfo) -> str | None:
    if unit is None:  # the base unit: no item to look up
        return unit
    item = _item(info)
    if item is not None and not item.knows(unit):
        raise ValueError(f"unknown unit {unit!r} for SKU {item.sku!r}; known: {item.units}")
    return unit


# --- orders ------------------------------------------------------------------------------------


class Channel(StrEnum):
    WEB = "web"
    MARKETPLACE = "marketplace"
    EDI = "edi"
    PHONE = "phone"


class OrderLine(Canonical):
    line_no: Annotated[int, Field(ge=1)]
    sku: Id
    quantity: Annotated[Decimal, Field(gt=0, le=MAX_QUANTITY,
                                       description="Quantity in `unit`; must be positive."),
                        _BOUNDED_NUMBER]
    unit: Id | None = Field(default=None, description="Unit of `quantity`; base unit if null.")
    quantity_base: int | None = Field(
        default=None, validate_default=True, description="Quantity in base units (derived)."
    )
    requested_date: date | None = None
    unit_price: Money = Decimal(0)

    _sku = field_validator("sku")(_check_sku)
    _unit = field_validator("unit")(_check_unit)

    @field_validator("quantity_base")
    @classmethod
    def _derive_base(cls, v: int | None, info: ValidationInfo) -> int | None:
        item = _item(info)
        qty = info.data.get("quantity")
        if qty is None:
            return v
        if item is not None:
            expected = item.to_base(qty, info.data.get("unit"))
        elif info.data.get("unit") is None and qty == qty.to_integral_value():
            expected = int(qty)
        else:
            return v
        if v is not None and v != expected:
            raise ValueError(f"quantity_base {v} disagrees with quantity: expected {expected}")
        return _bounded(expected)


class SalesOrder(Canonical):
    order_id: Id
    customer_id: Id
    channel: Channel = Channel.WEB
    priority: Annotated[int, Field(ge=1, le=9, description="1 is most urgent.")] = 5
    placed_at: datetime
    requested_date: date | None = None
    ship_from: Id | None = Field(default=None, description="Preferred warehouse, if any.")
    lines: Annotated[tuple[OrderLine, ...], Field(min_length=1)]

    @field_validator("customer_id")
    @classmethod
    def _known_customer(cls, v: str, info: ValidationInfo) -> str:
        cat = _catalog(info)
        if cat is not None and cat.customers and v not in cat.customers:
            raise ValueError(f"unknown customer {v!r}")
        return v

    @field_validator("lines")
    @classmethod
    def _unique_lines(cls, v: tuple[OrderLine, ...]) -> tuple[OrderLine, ...]:
        nos = [line.line_no for line in v]
        if len(set(nos)) != len(nos):
            raise ValueError(f"line numbers must be unique, got {nos}")
        return v

    @property
    def value(self) -> Decimal:
        return sum((line.quantity * line.unit_price for line in self.lines), Decimal(0))


# --- inventory ---------------------------------------------------------------------------------


class MovementKind(StrEnum):
    RECEIPT = "receipt"
    PICK = "pick"
    ADJUSTMENT = "adjustment"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    CYCLE_COUNT = "cycle_count"
    RETURN = "return"
    SCRAP = "scrap"


#: Sign a kind gives to a reported magnitude; 0 means the report carries its own sign (a delta).
MOVEMENT_SIGN: dict[MovementKind, int] = {
    MovementKind.RECEIPT: 1,
    MovementKind.TRANSFER_IN: 1,
    MovementKind.RETURN: 1,
    MovementKind.PICK: -1,
    MovementKind.TRANSFER_OUT: -1,
    MovementKind.SCRAP: -1,
    MovementKind.ADJUSTMENT: 0,
    MovementKind.CYCLE_COUNT: 0,
}


_KIND_VALUE = {k: k.value for k in MovementKind}
"""Each kind's JSON form (`MovementKind.value` is a property: a Python call per read)."""
_JSON_TIME = TypeAdapter(datetime).serializer
"""pydantic's JSON form of a datetime (its own ISO 8601: "Z" for UTC, not "+00:00")."""


class Movement(Canonical):
    """One change of physical stock at a (sku, location, lot), as reported by a WMS."""

    movement_id: Id = Field(description="Unique id; the idempotency key of the movement.")
    kind: MovementKind
    sku: Id
    location: Id
    quantity: Number = Field(
        ge=-MAX_QUANTITY, le=MAX_QUANTITY,
        description="Quantity as reported: a positive magnitude, except for adjustment and "
        "cycle_count, which report a signed delta.",
    )
    unit: Id | None = Field(default=None, description="Unit as reported; base unit if null.")
    quantity_base: int | None = Field(
        default=None,
        validate_default=True,
        description="Signed change of on-hand stock in base units (derived when a catalog "
        "is in context).",
    )
    lot: Id | None = Field(default=None, validate_default=True)
    serials: tuple[Id, ...] = Field(default=(), validate_default=True)
    reason_code: Id | None = None
    occurred_at: datetime
    references: tuple[Reference, ...] = Field(
        default=(), description="Source documents (order, ASN), or the break a repair is for.")

    _sku = field_validator("sku")(_check_sku)
    _unit = field_validator("unit")(_check_unit)

    @field_validator("quantity")
    @classmethod
    def _sign_allowed(cls, v: Decimal, info: ValidationInfo) -> Decimal:
        kind = info.data.get("kind")
        if kind is not None and MOVEMENT_SIGN[kind] != 0 and v <= 0:
            raise ValueError(
                f"quantity must be positive for kind {kind.value!r} (the kind gives the sign), "
                f"got {v}"
            )
        if kind == MovementKind.ADJUSTMENT and v == 0:
            raise ValueError("an adjustment of zero changes nothing")
        return v

    @field_validator("quantity_base")
    @classmethod
    def _derive_base(cls, v: int | None, info: ValidationInfo) -> int:
        data = info.data  # a property of pydantic-core's: read once
        qty, kind = data.get("quantity"), data.get("kind")
        if qty is None or kind is None or "sku" not in data or "unit" not in data:
            return v if v is not None else 0  # an earlier field failed and is reported already
        sign = MOVEMENT_SIGN[kind] or 1
        item, unit = _item(info), data["unit"]
        if item is not None:
            expected: int | None = sign * item.to_base(qty, unit)
        elif unit is None:
            if qty != qty.to_integral_value():
                raise ValueError(f"quantity {qty} is not a whole number of base units")
            expected = sign * int(qty)
        else:
            expected = None
        if v is None:
            if expected is None:
                raise ValueError(
                    f"quantity_base is required when quantity is in {unit!r} and no item master "
                    "is given"
                )
            return _bounded(expected)
        if expected is not None and v != expected:
            raise ValueError(f"quantity_base {v} disagrees with quantity: expected {expected}")
        if MOVEMENT_SIGN[kind] * v < 0:
            raise ValueError(f"quantity_base {v} has the wrong sign for kind {kind.value!r}")
        return _bounded(v)

    @field_validator("lot")
    @classmethod
    def _lot_required(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v:  # a lot is given: nothing to ask the item master
            return v
        item = _item(info)
        if item is not None and item.lot_tracked:
            raise ValueError(f"lot is required: SKU {item.sku!r} is lot-tracked")
        return v

    @field_validator("serials")
    @classmethod
    def _serials_match(cls, v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        item = _item(info)
        must = item is not None and item.serial_tracked
        if not v and not must:  # the common case: nothing to count, nothing to compare
            return v
        base = info.data.get("quantity_base")
        if base is not None and (v or must) and len(v) != abs(base):
            raise ValueError(f"{len(v)} serials for a quantity of {abs(base)} base units")
        if len(set(v)) != len(v):
            raise ValueError("serials must be unique")
        return v

    def json_dict(self) -> dict[str, Any]:
        """``model_dump(mode="json")``, field by field without a second pydantic pass (half
        the cost; the intake makes one per movement). For a validated movement only: each
        field has its validated type (tests/test_models.py compares the two)."""
        d = self.__dict__
        return {"movement_id": d["movement_id"], "kind": _KIND_VALUE[d["kind"]],
                "sku": d["sku"], "location": d["location"], "quantity": str(d["quantity"]),
                "unit": d["unit"], "quantity_base": d["quantity_base"], "lot": d["lot"],
                "serials": list(d["serials"]), "reason_code": d["reason_code"],
                "occurred_at": _JSON_TIME.to_python(d["occurred_at"], mode="json"),
                "references": list(d["references"])}

    @property
    def key(self) -> str:
        """Ordering key: movements of one (sku, location) must apply in order."""
        return f"{self.sku}@{self.location}"

    @property
    def delta(self) -> int:
        assert self.quantity_base is not None  # always set by validation
        return self.quantity_base


class InventoryBalance(Canonical):
    sku: Id
    location: Id
    lot: Id | None = None
    on_hand: int
    allocated: Annotated[int, Field(ge=0)] = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.allocated


# --- shipments, invoices, returns --------------------------------------------------------------


class ShipmentStatus(StrEnum):
    PLANNED = "planned"
    PACKED = "packed"
    SHIPPED = "shipped"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    EXCEPTION = "exception"


class ShipmentLine(Canonical):
    order_line_no: Annotated[int, Field(ge=1)]
    sku: Id = Field(description="SKU shipped; differs from the order line's on a substitution.")
    quantity_base: Annotated[int, Field(gt=0, le=MAX_QUANTITY)]
    lot: Id | None = None
    serials: tuple[Id, ...] = ()

    @model_validator(mode="after")
    def _serials_match(self) -> ShipmentLine:
        if self.serials and len(self.serials) != self.quantity_base:
            raise ValueError(
                f"serials: {len(self.serials)} serials for a quantity of {self.quantity_base}"
            )
        return self


class Shipment(Canonical):
    shipment_id: Id
    order_id: Id
    warehouse_id: Id
    lines: Annotated[tuple[ShipmentLine, ...], Field(min_length=1)]
    carrier: Text = ""
    service: Text = ""
    tracking: Id | None = None
    status: ShipmentStatus = ShipmentStatus.SHIPPED
    shipped_at: datetime


class Milestone(StrEnum):
    LABEL_CREATED = "label_created"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    EXCEPTION = "exception"


class ShipmentMilestone(Canonical):
    shipment_id: Id
    tracking: Id
    milestone: Milestone
    at: datetime
    detail: Text = ""


class InvoiceKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_MEMO = "credit_memo"


class InvoiceLine(Canonical):
    sku: Id
    quantity_base: Annotated[int, Field(gt=0, le=MAX_QUANTITY)]
    unit_price: Money = Decimal(0)


class Invoice(Canonical):
    invoice_id: Id
    kind: InvoiceKind = InvoiceKind.INVOICE
    order_id: Id
    shipment_id: Id | None = Field(default=None, description="Shipment invoiced, if any.")
    customer_id: Id
    lines: Annotated[tuple[InvoiceLine, ...], Field(min_length=1)]
    issued_at: datetime

    @property
    def total(self) -> Decimal:
        return sum((ln.unit_price * ln.quantity_base for ln in self.lines), Decimal(0))


class ReturnLine(Canonical):
    sku: Id
    quantity_base: Annotated[int, Field(gt=0, le=MAX_QUANTITY)]
    reason: Text = ""


class ReturnAuthorization(Canonical):
    rma_id: Id
    order_id: Id
    lines: Annotated[tuple[ReturnLine, ...], Field(min_length=1)]
    authorized_at: datetime
