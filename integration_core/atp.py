"""Available-to-promise and allocation of order lines across locations.

ATP per (sku, location) = on hand - allocated - safety stock, summed over lots. Allocation
never promises more than the ATP; what it cannot place is backordered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from integration_core.models import Catalog, InventoryBalance, OrderLine


@dataclass(frozen=True, slots=True)
class AtpRow:
    sku: str
    location: str
    on_hand: int
    allocated: int
    safety_stock: int = 0

    @property
    def atp(self) -> int:
        """May be negative (over-allocated or below safety stock); nothing is promised then."""
        return self.on_hand - self.allocated - self.safety_stock


@dataclass(frozen=True, slots=True)
class Pick:
    location: str
    quantity_base: int


@dataclass(frozen=True, slots=True)
class LineAllocation:
    line_no: int
    sku: str
    requested_base: int
    picks: tuple[Pick, ...]
    """Where the allocated quantity comes from, in allocation order."""
    backordered_base: int

    @property
    def allocated_base(self) -> int:
        return sum(p.quantity_base for p in self.picks)


class AtpTable:
    """Immutable ATP rows, indexed by SKU then location."""

    def __init__(self, rows: Iterable[AtpRow] = ()) -> None:
        self._by_sku: dict[str, dict[str, AtpRow]] = {}
        for r in rows:
            at = self._by_sku.setdefault(r.sku, {})
            if r.location in at:
                raise ValueError(f"ATP row ({r.sku}, {r.location}) appears twice")
            at[r.location] = r

    @classmethod
    def from_balances(
        cls,
        balances: Iterable[InventoryBalance],
        safety_stock: Mapping[tuple[str, str], int] | None = None,
    ) -> AtpTable:
        """Sum lots per (sku, location); `safety_stock` is keyed by (sku, location)."""
        totals: dict[tuple[str, str], tuple[int, int]] = {}
        for b in balances:
            on_hand, allocated = totals.get((b.sku, b.location), (0, 0))
            totals[(b.sku, b.location)] = (on_hand + b.on_hand, allocated + b.allocated)
        safety = safety_stock or {}
        return cls(
            AtpRow(sku, loc, on_hand, allocated, safety.get((sku, loc), 0))
            for (sku, loc), (on_hand, allocated) in totals.items()
        )

    @property
    def rows(self) -> tuple[AtpRow, ...]:
        """All rows, sorted by (sku, location)."""
        return tuple(
            at[loc] for sku, at in sorted(self._by_sku.items()) for loc in sorted(at)
        )

    def atp(self, sku: str, location: str) -> int:
        row = self._by_sku.get(sku, {}).get(location)
        return row.atp if row is not None else 0

    def available(self, sku: str) -> dict[str, int]:
        """Location -> quantity that can be promised, for locations with a positive ATP."""
        return {loc: r.atp for loc, r in self._by_sku.get(sku, {}).items() if r.atp > 0}

    def after(self, allocations: Iterable[LineAllocation]) -> AtpTable:
        """The table once these allocations are reserved (their picks added to `allocated`)."""
        rows = {(r.sku, r.location): r for r in self.rows}
        for a in allocations:
            for p in a.picks:
                r = rows[(a.sku, p.location)]
                rows[(a.sku, p.location)] = replace(r, allocated=r.allocated + p.quantity_base)
        return AtpTable(rows.values())


def allocate(
    lines: Iterable[OrderLine],
    atp_table: AtpTable,
    catalog: Catalog,
    preferred_location: str | None = None,
) -> list[LineAllocation]:
    """Allocate each line, in order, from the preferred location first, then from the locations
    with the most left (ties by location id). Lines of one SKU share its ATP.

    Quantities are converted to base units with the item's exact factors: UnknownSku or
    UnknownUnit if the catalog cannot, ValueError for a fraction of a base unit."""
    return allocate_base(
        ((ln.line_no, ln.sku, catalog.item(ln.sku).to_base(ln.quantity, ln.unit)) for ln in lines),
        atp_table, preferred_location,
    )


def allocate_base(
    lines: Iterable[tuple[int, str, int]],
    atp_table: AtpTable,
    preferred_location: str | None = None,
) -> list[LineAllocation]:
    """`allocate` for lines already in base units: (line_no, sku, quantity_base)."""
    left: dict[str, dict[str, int]] = {}
    out = []
    for line_no, sku, requested in lines:
        stock = left.get(sku)
        if stock is None:
            stock = left[sku] = atp_table.available(sku)
        picks = []
        need = requested
        for loc in sorted(stock, key=lambda loc: (loc != preferred_location, -stock[loc], loc)):
            if need == 0:
                break
            take = min(need, stock[loc])
            if take > 0:
                picks.append(Pick(loc, take))
                stock[loc] -= take
                need -= take
        out.append(LineAllocation(line_no, sku, requested, tuple(picks), need))
    return out
