"""Flat records the gateway emits besides the canonical models themselves."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from integration_core.models import InventoryBalance, Movement, SalesOrder, Shipment


class ReleaseAction(StrEnum):
    """What a 940 asks of the warehouse (W05-01: N original, R change, F cancel)."""

    NEW = "new"
    CHANGE = "change"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class OrderRelease:
    action: ReleaseAction
    order: SalesOrder
    purchase_order: str = ""


@dataclass(frozen=True, slots=True)
class AsnLine:
    """One item of an 856, with the pack and order it travels in (flat: one row per item)."""

    asn_id: str
    shipped_on: date | None
    ship_from: str
    ship_to: str
    order_ref: str
    package: str
    sku: str
    quantity: Decimal
    unit: str


@dataclass(frozen=True, slots=True)
class AckRecord:
    """An acknowledgment received: a TA1, or one group (set_control "") or set of a 997."""

    kind: str
    control: str
    code: str
    set_control: str = ""
    detail: str = ""


Message = OrderRelease | Shipment | Movement | InventoryBalance | AsnLine | AckRecord
