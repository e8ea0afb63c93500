from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from integration_core.edi import (
    AppCode,
    Context,
    Gateway,
    MemorySeen,
    OrderRelease,
    ReleaseAction,
    map_set,
    parse,
    serialize,
    shipment_to_945,
)
from integration_core.edi.document import TransactionSet
from integration_core.edi.envelope import wrap
from integration_core.models import Catalog, Item, Shipment, ShipmentLine, UnitConversion

ISA = ("ISA*00*          *00*          *ZZ*S              *ZZ*R              *260301*0930*U*"
       "00401*000000001*0*P*>~")  # fmt: skip


def one(gs: str, body: str, catalog: Catalog | None = None) -> tuple[list[object], list[str]]:
    n = body.count("~") + 1  # the leading "940~" names the set; ST and SE are added
    ic = parse(f"{ISA}{gs}~ST*{body[:3]}*0001~{body[4:]}SE*{n}*0001~GE*1*1~IEA*1*000000001~")
    assert ic.interchange is not None and ic.errors == ()
    group = ic.interchange.groups[0]
    ts: TransactionSet = group.sets[0]
    messages, errors = map_set(ts, Context("S", "000000001", group, catalog))
    return list(messages), [e.code.value for e in errors]


GS940 = "GS*OW*S*R*20260301*0930*1*X*004010"
W01 = "LX*1~W01*2*EA**SK*A~"


@pytest.mark.parametrize(("code", "action"), [("N", ReleaseAction.NEW),
                                              ("R", ReleaseAction.CHANGE),
                                              ("F", ReleaseAction.CANCEL)])  # fmt: skip
def test_w05_status_gives_the_release_action(code: str, action: ReleaseAction) -> None:
    (release,), errors = one(GS940, f"940~W05*{code}*O1~{W01}")
    assert errors == [] and isinstance(release, OrderRelease) and release.action is action
    assert release.order.customer_id == "S"  # no N1*ST: the depositor's GS02


def test_unknown_w05_status_and_w76_mismatch_map_nothing() -> None:
    assert one(GS940, f"940~W05*X*O1~{W01}") == ([], [AppCode.INVALID_CONTENT.value])
    assert one(GS940, f"940~W05*N*O1~{W01}W76*3~") == ([], [AppCode.TOTAL_MISMATCH.value])
    assert one(GS940, f"940~W05*N*O1~{W01}W76*2~")[1] == []


def test_945_converts_units_with_the_item_master() -> None:
    cat = Catalog([Item(sku="A", conversions=(UnitConversion(unit="CS", factor=Decimal(12)),))])
    body = "945~W06*F*O1*20260302~LX*1~W12*CC*2*2**CS**SK*A~W03*2~"
    (shipment,), errors = one("GS*SW*S*R*20260301*0930*1*X*004010", body, cat)
    assert errors == [] and isinstance(shipment, Shipment)
    assert shipment.lines[0].quantity_base == 24
    assert one("GS*SW*S*R*20260301*0930*1*X*004010", body)[1] == [
        AppCode.INVALID_CONTENT.value
    ]  # CS without an item master: unknown base quantity


def test_846_counts_are_checked() -> None:
    gs = "GS*IB*S*R*20260301*0930*1*X*004010"
    base = "846~BIA*00*MM*R1*20260301~LIN*1*SK*A~QTY*17*4~LIN*2*SK*B~QTY*33*6~"
    assert len(one(gs, base + "CTT*2*10~")[0]) == 2
    assert one(gs, base + "CTT*3~")[1] == [AppCode.TOTAL_MISMATCH.value]
    assert one(gs, base + "CTT*2*11~")[1] == [AppCode.TOTAL_MISMATCH.value]


def test_shipment_to_945_is_read_back_as_the_same_shipment() -> None:
    catalog = Catalog([Item(sku="A", conversions=(UnitConversion(unit="CS", factor=12),),
                            lot_tracked=True), Item(sku="B")])
    sent = Shipment(shipment_id="S-1", order_id="O-1", warehouse_id="WH9", carrier="UPS",
                    shipped_at=datetime(2026, 3, 2, tzinfo=UTC),
                    lines=(ShipmentLine(order_line_no=1, sku="A", quantity_base=24, lot="L7"),
                           ShipmentLine(order_line_no=3, sku="B", quantity_base=2)))
    raw = serialize(wrap([shipment_to_945(sent, "0001")], functional_id="SW",
                         sender=("ZZ", "WH"), receiver=("ZZ", "US"), control=5,
                         when=datetime(2026, 3, 2, 9, 0, tzinfo=UTC)))
    receipt = Gateway(MemorySeen(), catalog=catalog).receive(raw, 0.0)
    assert receipt.errors == ()
    (back,) = receipt.messages
    assert isinstance(back, Shipment)
    assert back.model_dump() == sent.model_dump()
    assert b"W03*26~" in raw
