from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from integration_core.errors import UnknownSku, UnknownUnit
from integration_core.models import (
    MAX_QUANTITY,
    Catalog,
    InventoryBalance,
    Item,
    Movement,
    MovementKind,
    OrderLine,
    SalesOrder,
    ShipmentLine,
    UnitConversion,
)

ITEM = Item(
    sku="BOLT-10",
    conversions=(
        {"unit": "CS", "factor": 12},
        {"unit": "PL", "factor": 40, "of": "CS"},
        {"unit": "HALF", "factor": Decimal("0.5"), "of": "CS"},
    ),
    lot_tracked=True,
)
PHONE = Item(sku="PHONE-1", serial_tracked=True)
CAT = Catalog([ITEM, PHONE])
BASE: dict[str, Any] = {
    "movement_id": "mv-1", "kind": "pick", "sku": "BOLT-10", "location": "WH1-A01",
    "quantity": "2", "unit": "CS", "lot": "L42", "occurred_at": "2026-01-05T08:00:00Z",
}


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        CAT.parse(Movement, data)
    return {".".join(map(str, e["loc"])): e["msg"] for e in info.value.errors()}


def test_conversions_chain_exactly_to_base_units() -> None:
    assert ITEM.units == ["CS", "EA", "HALF", "PL"]
    assert ITEM.to_base(1, "PL") == 480
    assert ITEM.to_base(Decimal("2.5"), "CS") == 30
    assert ITEM.to_base(3, "HALF") == 18
    assert ITEM.to_base(7, None) == 7
    assert ITEM.from_base(30, "CS") == Decimal("2.5")


@given(st.integers(0, 10**9), st.sampled_from(["EA", "CS", "PL", "HALF"]))
def test_to_base_and_back_is_exact(n: int, unit: str) -> None:
    assert ITEM.to_base(ITEM.from_base(n * 480, unit), unit) == n * 480


def test_movement_from_reported_unit_is_signed_by_kind() -> None:
    m = CAT.parse(Movement, BASE)
    assert m.quantity_base == -24 and m.delta == -24 and m.key == "BOLT-10@WH1-A01"
    receipt = CAT.parse(Movement, {**BASE, "kind": "receipt"})
    assert receipt.quantity_base == 24
    adj = CAT.parse(Movement, {**BASE, "kind": "adjustment", "quantity": "-1"})
    assert adj.quantity_base == -12


def test_unknown_unit_names_the_field() -> None:
    errs = errors_of({**BASE, "unit": "BOX"})
    assert list(errs) == ["unit"] and "unknown unit 'BOX'" in errs["unit"]


def test_unknown_sku_names_the_field() -> None:
    errs = errors_of({**BASE, "sku": "NOPE"})
    assert list(errs) == ["sku"] and "unknown SKU 'NOPE'" in errs["sku"]
    with pytest.raises(UnknownSku):
        CAT.item("NOPE")
    with pytest.raises(UnknownUnit, match="known units: CS, EA, HALF, PL"):
        ITEM.factor("BOX")


def test_fraction_of_a_base_unit_is_rejected() -> None:
    errs = errors_of({**BASE, "quantity": "0.05"})
    assert "not a whole number of base units" in errs["quantity_base"]
    assert "0.05 CS" in errs["quantity_base"]
    no_catalog = {**BASE, "unit": None, "quantity": "1.5"}
    with pytest.raises(ValidationError, match="not a whole number"):
        Movement.model_validate(no_catalog)


def test_lot_required_on_lot_tracked_item() -> None:
    errs = errors_of({**BASE, "lot": None})
    assert list(errs) == ["lot"] and "lot-tracked" in errs["lot"]


def test_serial_count_must_equal_quantity() -> None:
    phone = {**BASE, "sku": "PHONE-1", "unit": None, "lot": None, "quantity": "2"}
    errs = errors_of({**phone, "serials": ["S1"]})
    assert list(errs) == ["serials"] and "1 serials for a quantity of 2" in errs["serials"]
    assert "serials" in errors_of(phone)  # serial-tracked: serials are mandatory
    assert CAT.parse(Movement, {**phone, "serials": ["S1", "S2"]}).serials == ("S1", "S2")
    with pytest.raises(ValidationError, match="serials"):
        ShipmentLine(order_line_no=1, sku="PHONE-1", quantity_base=2, serials=("S1",))


@pytest.mark.parametrize("kind", ["receipt", "pick", "transfer_in", "transfer_out", "scrap",
                                  "return"])
def test_negative_quantity_not_allowed_where_the_kind_gives_the_sign(kind: str) -> None:
    errs = errors_of({**BASE, "kind": kind, "quantity": "-3"})
    assert list(errs) == ["quantity"] and "must be positive" in errs["quantity"]


def test_explicit_base_quantity_must_agree() -> None:
    errs = errors_of({**BASE, "quantity_base": -23})
    assert "expected -24" in errs["quantity_base"]
    with pytest.raises(ValidationError, match="wrong sign"):
        Movement.model_validate({**BASE, "unit": "CS", "quantity_base": 24})


def test_movement_without_catalog_needs_base_quantity_for_other_units() -> None:
    with pytest.raises(ValidationError, match="quantity_base is required"):
        Movement.model_validate(BASE)
    m = Movement.model_validate({**BASE, "quantity_base": -24})
    assert m.kind is MovementKind.PICK


def test_models_are_frozen_and_reject_unknown_fields() -> None:
    m = CAT.parse(Movement, BASE)
    with pytest.raises(ValidationError):
        m.quantity = Decimal(1)  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        CAT.parse(Movement, {**BASE, "colour": "red"})


def test_order_lines_convert_and_reject_non_positive() -> None:
    line = CAT.parse(OrderLine, {"line_no": 1, "sku": "BOLT-10", "quantity": "1", "unit": "PL"})
    assert line.quantity_base == 480
    with pytest.raises(ValidationError, match="greater than 0"):
        OrderLine(line_no=1, sku="BOLT-10", quantity=Decimal(-1))
    with pytest.raises(ValidationError) as info:
        CAT.parse(SalesOrder, {
            "order_id": "o1", "customer_id": "c1", "placed_at": "2026-01-05T08:00:00Z",
            "lines": [{"line_no": 1, "sku": "BOLT-10", "quantity": 1, "unit": "XX"},
                      {"line_no": 1, "sku": "BOLT-10", "quantity": 1}],
        })
    assert {e["loc"] for e in info.value.errors()} == {("lines", 0, "unit")}
    with pytest.raises(ValidationError, match="line numbers must be unique"):
        CAT.parse(SalesOrder, {
            "order_id": "o1", "customer_id": "c1", "placed_at": "2026-01-05T08:00:00Z",
            "lines": [{"line_no": 1, "sku": "BOLT-10", "quantity": 1},
                      {"line_no": 1, "sku": "BOLT-10", "quantity": 1}],
        })


def test_item_conversion_errors() -> None:
    with pytest.raises(ValidationError, match="refer to unknown units"):
        Item(sku="X", conversions=({"unit": "CS", "factor": 2, "of": "BOX"},))
    with pytest.raises(ValidationError, match="defined twice"):
        Item(sku="X", conversions=({"unit": "CS", "factor": 2}, {"unit": "CS", "factor": 3}))
    with pytest.raises(ValidationError, match="greater than 0"):
        Item(sku="X", conversions=({"unit": "CS", "factor": 0},))


def test_balance_available() -> None:
    assert InventoryBalance(sku="A", location="L", on_hand=10, allocated=4).available == 6


@pytest.mark.parametrize("quantity, unit", [("1e400", None), ("1e13", None), ("1e11", "CS")])
def test_absurd_quantities_are_refused_by_field(quantity: str, unit: str | None) -> None:
    # 1e11 cases = 1.2e12 base units: fine as reported, too large once converted.
    cat = Catalog([Item(sku="S1", conversions=(UnitConversion(unit="CS", factor=12),))])
    with pytest.raises(ValidationError) as err:
        cat.parse(Movement, {"movement_id": "m", "kind": "receipt", "sku": "S1",
                             "location": "A", "quantity": quantity, "unit": unit,
                             "occurred_at": "2026-01-01T00:00:00Z"})
    assert {e["loc"][0] for e in err.value.errors()} <= {"quantity", "quantity_base"}
    m = cat.parse(Movement, {"movement_id": "m", "kind": "receipt", "sku": "S1", "location": "A",
                             "quantity": "1e12", "occurred_at": "2026-01-01T00:00:00Z"})
    assert m.quantity_base == MAX_QUANTITY
