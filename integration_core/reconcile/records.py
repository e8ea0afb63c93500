"""Flat records the reconciler hands out: breaks, repairs, audit entries, severity rules."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from integration_core.models import Movement

System = Literal["erp", "wms"]


class BreakKind(StrEnum):
    MISSING_IN_ERP = "missing_in_erp"
    MISSING_IN_WMS = "missing_in_wms"
    QUANTITY_MISMATCH = "quantity_mismatch"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class SeverityThresholds:
    """A break is at least `medium` (`high`) when its unexplained units or their value reach
    the matching threshold; a fully explained break is always `low`."""

    medium_units: int = 10
    high_units: int = 100
    medium_value: Decimal = Decimal(100)
    high_value: Decimal = Decimal(1000)

    def __post_init__(self) -> None:
        if not (0 <= self.medium_units <= self.high_units):
            raise ValueError("thresholds: need 0 <= medium_units <= high_units")
        if not (0 <= self.medium_value <= self.high_value):
            raise ValueError("thresholds: need 0 <= medium_value <= high_value")

    def classify(self, units: int, value: Decimal) -> Severity:
        units = abs(units)
        if units == 0:
            return Severity.LOW
        if units >= self.high_units or value >= self.high_value:
            return Severity.HIGH
        if units >= self.medium_units or value >= self.medium_value:
            return Severity.MEDIUM
        return Severity.LOW


def break_key(sku: str, location: str, lot: str | None) -> str:
    """Stable text id of a (sku, location, lot) row: `sku@location` plus `:lot` when lotted."""
    return f"{sku}@{location}" if lot is None else f"{sku}@{location}:{lot}"


@dataclass(frozen=True, slots=True)
class Break:
    """One (sku, location, lot) whose ERP and WMS on-hand differ, base units throughout."""

    kind: BreakKind
    sku: str
    location: str
    lot: str | None
    erp_qty: int
    wms_qty: int
    delta: int
    """wms_qty - erp_qty."""
    in_flight_units: int
    """Net units of the in-flight movements on this row, signed like `delta`."""
    residual: int
    """delta - in_flight_units: what remains different once those movements are applied."""
    explained: bool
    """In-flight movements fully explain the difference: erp + in_flight == wms."""
    value: Decimal
    """|residual| x the item's unit value (0 for an item unknown to the catalog)."""
    severity: Severity
    first_seen: float
    age_s: float

    @property
    def key(self) -> str:
        return break_key(self.sku, self.location, self.lot)


@dataclass(frozen=True, slots=True)
class ReplayRepair:
    """Redeliver these logged movements to the ERP consumer (`Bus.replay(..., only=...)`)."""

    break_key: str
    message_ids: tuple[str, ...]
    units: int
    """Net delta the replayed movements carry."""


@dataclass(frozen=True, slots=True)
class AdjustmentRepair:
    """Apply this adjustment movement to `target`, the system that is not the record."""

    break_key: str
    target: System
    movement: Movement


Repair = ReplayRepair | AdjustmentRepair


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One proposed repair: what, why, when, for which break."""

    at: float
    run_id: str
    break_key: str
    action: Literal["replay", "adjust"]
    target: System
    units: int
    """Signed change the repair makes to `target`'s on-hand."""
    reference: str
    """The adjustment's movement id, or the replayed message ids joined by commas."""
    reason: str
    erp_qty: int
    wms_qty: int
    in_flight_units: int
    system_of_record: System
