"""Available-to-promise and allocation: partial, multi-location, units of measure."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integration_core.atp import AtpRow, AtpTable, LineAllocation, Pick, allocate
from integration_core.errors import UnknownSku, UnknownUnit
from integration_core.models import Catalog, InventoryBalance, Item, OrderLine, UnitConversion

CATALOG = Catalog([
    Item(sku="A", conversions=(UnitConversion(unit="CS", factor=Decimal(12)),
                               UnitConversion(unit="PL", factor=Decimal(40), of="CS"))),
    Item(sku="B", base_uom="KG", conversions=(UnitConversion(unit="G", factor=Decimal("0.001")),)),
])


def line(no: int, sku: str, qty: str | int, unit: str | None = None) -> OrderLine:
    return OrderLine(line_no=no, sku=sku, quantity=Decimal(qty), unit=unit)


def table(*rows: tuple[str, str, int]) -> AtpTable:
    return AtpTable(AtpRow(sku, loc, on_hand, 0) for sku, loc, on_hand in rows)


def test_atp_is_on_hand_minus_allocated_minus_safety_stock_summed_over_lots() -> None:
    t = AtpTable.from_balances(
        [InventoryBalance(sku="A", location="W1", lot="x", on_hand=10, allocated=2),
         InventoryBalance(sku="A", location="W1", lot="y", on_hand=5, allocated=1),
         InventoryBalance(sku="A", location="W2", on_hand=3, allocated=0),
         InventoryBalance(sku="B", location="W1", on_hand=4, allocated=5)],
        safety_stock={("A", "W1"): 4, ("A", "W2"): 5},
    )
    assert t.atp("A", "W1") == 15 - 3 - 4
    assert t.atp("A", "W2") == -2 and t.atp("B", "W1") == -1 and t.atp("A", "W9") == 0
    assert t.available("A") == {"W1": 8}  # nothing is promised from a negative ATP
    assert [(r.sku, r.location) for r in t.rows] == [("A", "W1"), ("A", "W2"), ("B", "W1")]
    with pytest.raises(ValueError, match="twice"):
        AtpTable([AtpRow("A", "W1", 1, 0), AtpRow("A", "W1", 2, 0)])


def test_full_allocation_from_one_location() -> None:
    (a,) = allocate([line(1, "A", 5)], table(("A", "W1", 10)), CATALOG)
    assert a == LineAllocation(1, "A", 5, (Pick("W1", 5),), 0)
    assert a.allocated_base == 5


def test_partial_allocation_backorders_the_rest() -> None:
    (a,) = allocate([line(1, "A", 25)], table(("A", "W1", 10), ("A", "W2", 6)), CATALOG)
    assert a.picks == (Pick("W1", 10), Pick("W2", 6)) and a.backordered_base == 9
    (none,) = allocate([line(1, "A", 3)], AtpTable(), CATALOG)
    assert none.picks == () and none.backordered_base == 3


def test_multi_location_preferred_first_then_most_available_then_by_id() -> None:
    t = table(("A", "W1", 4), ("A", "W2", 9), ("A", "W3", 4), ("A", "W4", 9))
    (a,) = allocate([line(1, "A", 20)], t, CATALOG, preferred_location="W3")
    assert a.picks == (Pick("W3", 4), Pick("W2", 9), Pick("W4", 7))
    (b,) = allocate([line(1, "A", 20)], t, CATALOG)
    assert b.picks == (Pick("W2", 9), Pick("W4", 9), Pick("W1", 2))
    (c,) = allocate([line(1, "A", 3)], t, CATALOG, preferred_location="W9")  # no stock there
    assert c.picks == (Pick("W2", 3),)


def test_lines_of_one_sku_share_its_atp() -> None:
    t = table(("A", "W1", 10), ("B", "W1", 5))
    a1, b1, a2 = allocate([line(1, "A", 7), line(2, "B", 2), line(3, "A", 7)], t, CATALOG)
    assert (a1.allocated_base, b1.allocated_base, a2.allocated_base) == (7, 2, 3)
    assert a2.backordered_base == 4
    after = t.after([a1, b1, a2])
    assert (after.atp("A", "W1"), after.atp("B", "W1")) == (0, 3)
    assert t.atp("A", "W1") == 10  # the original is unchanged


def test_quantities_are_converted_to_base_units_exactly() -> None:
    t = table(("A", "W1", 1000), ("B", "W1", 10))
    cs, pl, grams = allocate(
        [line(1, "A", 2, "CS"), line(2, "A", 1, "PL"), line(3, "B", "2000", "G")], t, CATALOG
    )
    assert (cs.requested_base, pl.requested_base, grams.requested_base) == (24, 480, 2)
    assert pl.picks == (Pick("W1", 480),) and grams.picks == (Pick("W1", 2),)


def test_unknown_sku_unknown_unit_and_fractions_are_errors() -> None:
    t = table(("A", "W1", 10))
    with pytest.raises(UnknownSku):
        allocate([line(1, "X", 1)], t, CATALOG)
    with pytest.raises(UnknownUnit):
        allocate([line(1, "A", 1, "BOX")], t, CATALOG)
    with pytest.raises(ValueError, match="not a whole number"):
        allocate([line(1, "B", "1500", "G")], table(("B", "W1", 5)), CATALOG)


@settings(max_examples=100, deadline=None)
@given(
    stock=st.dictionaries(st.tuples(st.sampled_from("AB"), st.sampled_from(["W1", "W2", "W3"])),
                          st.tuples(st.integers(0, 50), st.integers(0, 20), st.integers(0, 10))),
    orders=st.lists(st.tuples(st.sampled_from("AB"), st.integers(1, 60)), min_size=1,
                    max_size=6),
    preferred=st.sampled_from([None, "W1", "W2", "W3"]),
)
def test_never_allocates_more_than_atp(
    stock: dict[tuple[str, str], tuple[int, int, int]], orders: list[tuple[str, int]],
    preferred: str | None,
) -> None:
    t = AtpTable(AtpRow(s, loc, oh, al, ss) for (s, loc), (oh, al, ss) in stock.items())
    lines = [line(i + 1, sku, q) for i, (sku, q) in enumerate(orders)]
    out = allocate(lines, t, CATALOG, preferred)
    taken: dict[tuple[str, str], int] = {}
    for ln, a in zip(lines, out, strict=True):
        assert a.allocated_base + a.backordered_base == a.requested_base == int(ln.quantity)
        assert all(p.quantity_base > 0 for p in a.picks)
        for p in a.picks:
            taken[(a.sku, p.location)] = taken.get((a.sku, p.location), 0) + p.quantity_base
    for (sku, loc), n in taken.items():
        assert n <= max(t.atp(sku, loc), 0)
    for sku in "AB":  # backorders only when the SKU's ATP is used up
        short = any(a.backordered_base for a in out if a.sku == sku)
        left = sum(max(t.atp(sku, loc), 0) for loc in ("W1", "W2", "W3"))
        assert not short or sum(n for (s, _), n in taken.items() if s == sku) == left
