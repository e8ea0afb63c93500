from __future__ import annotations

import json
from datetime import UTC, timedelta, timezone, tzinfo
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from integration_core.errors import UnknownSku, UnknownUnit
from integration_core.models import (
    ID_PATTERN,
    MAX_QUANTITY,
    MOVEMENT_SIGN,
    TEXT_PATTERN,
    Canonical,
    Catalog,
    Customer,
    InventoryBalance,
    Invoice,
    InvoiceLine,
    Item,
    Location,
    Movement,
    MovementKind,
    OrderLine,
    ReturnAuthorization,
    ReturnLine,
    SalesOrder,
    Shipment,
    ShipmentLine,
    ShipmentMilestone,
    UnitConversion,
    Warehouse,
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


# --- untrusted input: identifiers, free text, numbers -------------------------------------------

VALID: dict[type[Canonical], dict[str, Any]] = {
    UnitConversion: {"unit": "CS", "factor": "12", "of": "EA"},
    Item: {"sku": "BOLT-10", "description": "bolt", "base_uom": "EA", "unit_value": "1.5"},
    Warehouse: {"warehouse_id": "WH1", "name": "North"},
    Location: {"location_id": "WH1-A01", "warehouse_id": "WH1", "zone": "A"},
    Customer: {"customer_id": "C-1", "name": "Acme", "credit_limit": "100", "currency": "EUR"},
    OrderLine: {"line_no": 1, "sku": "BOLT-10", "quantity": "2", "unit_price": "2.50"},
    SalesOrder: {"order_id": "SO-0000001", "customer_id": "C-1", "ship_from": "WH1",
                 "placed_at": "2026-01-05T08:00:00Z",
                 "lines": [{"line_no": 1, "sku": "BOLT-10", "quantity": "2"}]},
    Movement: {"movement_id": "mv-1", "kind": "receipt", "sku": "BOLT-10", "location": "WH1",
               "quantity": "1", "quantity_base": 1, "lot": "L42", "serials": ["S-1"],
               "reason_code": "DMG",
               "references": ["ASN-7"], "occurred_at": "2026-01-05T08:00:00Z"},
    InventoryBalance: {"sku": "BOLT-10", "location": "WH1", "lot": "L42", "on_hand": 3},
    ShipmentLine: {"order_line_no": 1, "sku": "BOLT-10", "quantity_base": 1, "lot": "L42",
                   "serials": ["S-1"]},
    Shipment: {"shipment_id": "SH-1", "order_id": "SO-1", "warehouse_id": "WH1",
               "tracking": "TRK-SO-1-express", "carrier": "DHL Express", "service": "next day",
               "lines": [{"order_line_no": 1, "sku": "BOLT-10", "quantity_base": 1}],
               "shipped_at": "2026-01-05T12:00:00Z"},
    ShipmentMilestone: {"shipment_id": "SH-1", "tracking": "1Z999", "milestone": "delivered",
                        "at": "2026-01-06T12:00:00Z", "detail": "left at the door"},
    InvoiceLine: {"sku": "BOLT-10", "quantity_base": 1, "unit_price": "2.50"},
    Invoice: {"invoice_id": "INV-1", "order_id": "SO-1", "shipment_id": "SH-1",
              "customer_id": "C-1", "lines": [{"sku": "BOLT-10", "quantity_base": 1}],
              "issued_at": "2026-01-06T12:00:00Z"},
    ReturnLine: {"sku": "BOLT-10", "quantity_base": 1, "reason": "damaged"},
    ReturnAuthorization: {"rma_id": "RMA-1", "order_id": "SO-1",
                          "lines": [{"sku": "BOLT-10", "quantity_base": 1}],
                          "authorized_at": "2026-01-07T12:00:00Z"},
}


def _fields_with(pattern: str) -> list[tuple[type[Canonical], str, bool]]:
    """(model, field, is a list) for every field whose schema carries `pattern`."""
    out = []
    for model in VALID:
        for name, prop in model.model_json_schema()["properties"].items():
            text = json.dumps(prop)
            if json.dumps(pattern) in text:
                out.append((model, name, '"array"' in text))
    return out


ID_FIELDS = _fields_with(ID_PATTERN)
TEXT_FIELDS = _fields_with(TEXT_PATTERN)


def _with(model: type[Canonical], field: str, is_list: bool, value: str) -> dict[str, Any]:
    return {**VALID[model], field: [value] if is_list else value}


def test_valid_bodies_are_valid() -> None:
    for model, data in VALID.items():
        model.model_validate(data)


def test_every_identifier_field_follows_the_id_rule() -> None:
    names = {name for _, name, _ in ID_FIELDS}
    assert names >= {"movement_id", "sku", "location", "lot", "order_id", "customer_id",
                     "shipment_id", "warehouse_id", "tracking", "location_id", "invoice_id",
                     "rma_id", "unit", "of", "base_uom", "serials", "references",
                     "reason_code", "ship_from"}
    assert {name for _, name, _ in TEXT_FIELDS} == {
        "description", "name", "zone", "carrier", "service", "detail", "reason"}


BAD_IDS = ["", " ", "a b", "B\x0001", "\x00", "a\tb", "a\nb", "\x7f", "a/b", "/", "O-1/",
           "a?b", "a#b", "a%2Fb", "%", "a\\b", "é", "日本", "\ud800", "a\udfffb", ".", "..",
           "..."]


@pytest.mark.parametrize(("model", "field", "is_list"), ID_FIELDS,
                         ids=[f"{m.__name__}.{f}" for m, f, _ in ID_FIELDS])
def test_an_id_that_a_url_path_cannot_carry_is_refused_naming_the_field(
        model: type[Canonical], field: str, is_list: bool) -> None:
    for bad in [*BAD_IDS, "x" * (513 if field == "references" else 129)]:
        with pytest.raises(ValidationError) as err:
            model.model_validate(_with(model, field, is_list, bad))
        assert err.value.errors()[0]["loc"][0] == field, (bad, err.value.errors())
    for good in ["SKU-00001", "mv-1", "3PL-EAST", "TRK-SO-0000001-express", "recon:0a1b",
                 "a.b", ".a", "W1@L2", "A_B(1)~", "x" * 128, "  padded  "]:
        model.model_validate(_with(model, field, is_list, good))


@pytest.mark.parametrize(("model", "field", "is_list"), TEXT_FIELDS,
                         ids=[f"{m.__name__}.{f}" for m, f, _ in TEXT_FIELDS])
def test_free_text_refuses_control_characters_and_is_bounded(
        model: type[Canonical], field: str, is_list: bool) -> None:
    for bad in ["B\x0001", "\x00", "a\x1bb", "a\x7f", "a\x85b", "\ud800", "x" * 1001]:
        with pytest.raises(ValidationError) as err:
            model.model_validate(_with(model, field, is_list, bad))
        assert err.value.errors()[0]["loc"][0] == field, (bad, err.value.errors())
    for good in ["", "DHL Express", "line 1\nline 2\tend", "Müller & Söhne 日本", "x" * 1000]:
        model.model_validate(_with(model, field, is_list, good))


def test_currency_is_three_capital_letters() -> None:
    for bad in ["eur", "E\x00R", "EURO", "€€€"]:
        with pytest.raises(ValidationError):
            Customer.model_validate({**VALID[Customer], "currency": bad})


NUMBER_FIELDS = [(OrderLine, "quantity"), (OrderLine, "unit_price"), (Movement, "quantity"),
                 (Item, "unit_value"), (Customer, "credit_limit"), (UnitConversion, "factor"),
                 (InvoiceLine, "unit_price")]
BAD_NUMBERS = ["1e-6000000", "1E+999999999", "0e-6000000", "0.1e-2147483648", "9" * 41,
               "0." + "0" * 40 + "1", "1e-41", "NaN", "-Infinity", "sNaN", "1_000", "١٢", "１２",
               "0x10", "1e", ""]


@pytest.mark.parametrize(("model", "field"), NUMBER_FIELDS,
                         ids=[f"{m.__name__}.{f}" for m, f in NUMBER_FIELDS])
def test_numeric_strings_are_bounded_before_any_arithmetic(
        model: type[Canonical], field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each refusal names the field, and comes before a Fraction is built (Fraction of
    "1e-6000000" is a six-million-digit integer: seconds of CPU)."""
    cat = Catalog([Item(sku="BOLT-10", conversions=(UnitConversion(unit="CS", factor=12),))])
    def data(value: str) -> dict[str, Any]:
        if field != "quantity":
            return {**VALID[model], field: value}
        derived = {"quantity_base", "serials"}  # derived from the quantity in cases
        return {**{k: v for k, v in VALID[model].items() if k not in derived},
                field: value, "unit": "CS"}

    for good in ["12", " 12 ", "1.5000", "1e3", "+2"]:
        cat.parse(model, data(good))

    def guarded(*args: Any) -> Fraction:
        if any(isinstance(a, Decimal) and not -40 <= a.adjusted() <= 40 for a in args):
            raise AssertionError(f"a Fraction of {args} was built")
        return Fraction(*args)

    monkeypatch.setattr("integration_core.models.Fraction", guarded)
    for bad in BAD_NUMBERS:
        with pytest.raises(ValidationError) as err:
            cat.parse(model, data(bad))
        assert err.value.errors()[0]["loc"][0] == field, (bad, err.value.errors())
        assert "Fraction" not in str(err.value)


def test_decimals_from_python_callers_are_bounded_too() -> None:
    for bad in [Decimal("1e-6000000"), Decimal("NaN"), Decimal("Infinity")]:
        with pytest.raises(ValidationError) as err:
            OrderLine.model_validate({**VALID[OrderLine], "quantity": bad})
        assert err.value.errors()[0]["loc"] == ("quantity",)
    assert OrderLine.model_validate({**VALID[OrderLine], "quantity": Decimal("1.5")}
                                    ).quantity == Decimal("1.5")


PLAIN = Item(sku="NUT-3", conversions=({"unit": "BX", "factor": 100},))
JSON_CAT = Catalog([ITEM, PHONE, PLAIN])
OFFSETS = st.integers(-23 * 60, 23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
ZONES: st.SearchStrategy[tzinfo | None] = st.none() | st.just(UTC) | OFFSETS
TIMES = st.datetimes(timezones=ZONES)
IDS = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9.:@-]{0,11}\Z")


@st.composite
def movement_data(draw: st.DrawFn) -> dict[str, Any]:
    """A movement of `JSON_CAT` that validates, in the forms a client may write it."""
    item = draw(st.sampled_from([ITEM, PHONE, PLAIN]))
    kind = draw(st.sampled_from(MovementKind))
    least = 0 if kind == MovementKind.CYCLE_COUNT else 1  # a count may find no change
    n = draw(st.integers(least, 4) if item.serial_tracked else st.integers(least, 10**6))
    if MOVEMENT_SIGN[kind] == 0 and draw(st.booleans()):
        n = -n
    unit = None if item.serial_tracked else draw(st.sampled_from([None, *item.units]))
    forms = ["{}", "{}.00", "{}E0", "{}e-0", "int", "Decimal"]
    form = draw(st.sampled_from(forms if item.serial_tracked else [*forms, "{}E3"]))
    quantity = (n if form == "int" else Decimal(n).scaleb(-2) * 100 if form == "Decimal"
                else form.format(n))
    at = draw(TIMES)
    data = {"movement_id": draw(IDS), "kind": kind.value, "sku": item.sku,
            "location": draw(IDS), "quantity": quantity, "unit": unit,
            "lot": draw(IDS) if item.lot_tracked else draw(st.none() | IDS),
            "serials": [f"S{i}" for i in range(abs(n))] if item.serial_tracked else [],
            "reason_code": draw(st.none() | IDS),
            "occurred_at": at.isoformat() if draw(st.booleans()) else at,
            "references": draw(st.lists(IDS, max_size=3))}
    return {k: v for k, v in data.items() if v is not None or draw(st.booleans())}


def _typed(v: Any) -> Any:
    """A JSON value with the type of every part (`==` alone takes "pick" for a MovementKind)."""
    if isinstance(v, dict):
        return [(type(k), k, _typed(x)) for k, x in v.items()]
    if isinstance(v, list | tuple):
        return type(v), [_typed(x) for x in v]
    return type(v), v


@given(movement_data())
def test_a_movements_json_dict_is_its_model_dump(data: dict[str, Any]) -> None:
    m = JSON_CAT.parse(Movement, data)
    assert _typed(m.json_dict()) == _typed(m.model_dump(mode="json"))
