from __future__ import annotations

from decimal import Decimal

from integration_core.edi import (
    AppCode,
    Gateway,
    Limits,
    MemorySeen,
    NoteCode,
    OrderRelease,
    ReleaseAction,
    parse,
    release_to_940,
    serialize,
)
from integration_core.edi.envelope import wrap
from integration_core.models import InventoryBalance, Movement
from tests.edi.conftest import fixture

T = 1_772_355_600.0  # 2026-03-01 09:00 UTC


def acked(ack: bytes | None) -> list[str]:
    assert ack is not None
    ic = parse(ack).interchange
    assert ic is not None
    return [f"{s.tag}*{'*'.join(s.elements)}" for s in ic.notes] + [
        f"{s.tag}*{'*'.join(s.elements)}" for g in ic.groups for t in g.sets for s in t.segments
        if s.tag.startswith("AK")
    ]  # fmt: skip


def test_846_becomes_inventory_balances_and_a_clean_997() -> None:
    r = Gateway(MemorySeen()).receive(fixture("846_snapshot.edi"), T)
    assert r.errors == () and r.dead_letters == ()
    assert r.messages == (
        InventoryBalance(sku="SKU-100", location="WH1-001", on_hand=120),
        InventoryBalance(sku="SKU-200", location="WH1-001", on_hand=0),
        InventoryBalance(sku="SKU-300", location="WH1-001", on_hand=45),
    )
    assert acked(r.ack) == ["AK1*IB*846", "AK2*846*0001", "AK5*A", "AK9*A*1*1*1"]


def test_947_becomes_signed_adjustments() -> None:
    r = Gateway(MemorySeen()).receive(fixture("947_adjustments.edi"), T)
    assert r.errors == ()
    moves = [m for m in r.messages if isinstance(m, Movement)]
    assert [(m.sku, m.delta, m.reason_code, m.lot) for m in moves] == [
        ("SKU-100", -3, "AA", None),
        ("SKU-200", 5, "56", "LOT-9"),
    ]
    assert len({m.movement_id for m in moves}) == 2


def test_005010_940_is_read_and_answered_in_005010_with_a_ta1_when_asked() -> None:
    r = Gateway(MemorySeen()).receive(fixture("940_005010.edi"), T)
    assert r.errors == ()
    (release,) = r.messages
    assert isinstance(release, OrderRelease) and release.action is ReleaseAction.NEW
    assert release.order.ship_from == "WH1-001" and release.order.customer_id == "CUST-9"
    assert [ln.quantity for ln in release.order.lines] == [Decimal(4), Decimal("2.5")]
    assert acked(r.ack) == ["TA1*000005010*260301*0800*A*000", "AK1*OW*5010*005010",
                            "AK2*940*0001*005010", "AK5*A", "AK9*A*1*1*1"]  # fmt: skip
    assert r.ack is not None and b"*00501*" in r.ack[:110]


def test_total_mismatch_is_an_error_and_a_dead_letter_not_a_message() -> None:
    raw = fixture("945_total_mismatch.edi")
    r = Gateway(MemorySeen()).receive(raw, T)
    assert r.messages == ()
    ((code, seg, msg),) = [(e.code, e.segment_id, e.message) for e in r.errors]
    assert code is AppCode.TOTAL_MISMATCH and seg == "W03" and "6" in msg and "5" in msg
    (dead,) = r.dead_letters
    assert dead.raw == raw and dead.set_code == "945" and dead.cause == msg
    assert acked(r.ack)[-2:] == ["AK5*R", "AK9*R*1*1*0"]


def test_duplicate_interchange_is_recognised_and_not_mapped_twice() -> None:
    seen = MemorySeen()
    gw = Gateway(seen)
    first = gw.receive(fixture("947_adjustments.edi"), T)
    again = Gateway(seen).receive(fixture("947_adjustments.edi").replace(b"\n", b"\r\n"), T + 60)
    assert len(first.messages) == 2 and not first.duplicate
    assert again.duplicate and again.messages == () and again.dead_letters == ()
    assert [e.code for e in again.errors] == [NoteCode.DUPLICATE]
    assert acked(again.ack) == ["TA1*000000947*260301*1015*R*025"]
    other_sender = fixture("947_adjustments.edi").replace(b"THREEPL  ", b"OTHER3PL ")
    assert not gw.receive(other_sender, T).duplicate


def test_rejected_interchange_is_not_remembered_so_a_fixed_resend_goes_through() -> None:
    seen = MemorySeen()
    broken = fixture("846_snapshot.edi").replace(b"IEA*1*000000846", b"IEA*1*000000999")
    r = Gateway(seen).receive(broken, T)
    assert acked(r.ack) == ["TA1*000000846*260301*0930*R*001"] and r.messages == ()
    assert len(r.dead_letters) == 1 and r.dead_letters[0].raw == broken
    assert len(Gateway(seen).receive(fixture("846_snapshot.edi"), T).messages) == 3


def test_our_control_numbers_increase_per_reply() -> None:
    seen = MemorySeen()
    gw = Gateway(seen)
    controls = []
    for name in ("846_snapshot.edi", "947_adjustments.edi"):
        ack = gw.receive(fixture(name), T).ack
        assert ack is not None
        ic = parse(ack).interchange
        assert ic is not None
        controls.append(ic.control)
    assert controls == ["000000001", "000000002"]


def test_bad_input_never_raises_and_is_dead_lettered() -> None:
    gw = Gateway(MemorySeen(), limits=Limits(max_bytes=2000))
    for junk in (b"", b"not edi", b"ISA*00*", fixture("846_snapshot.edi") * 10):
        r = gw.receive(junk, T)
        assert r.messages == () and r.errors
        assert [d.raw for d in r.dead_letters] == [junk]


def test_outbound_940_reads_back_as_the_same_release() -> None:
    r = Gateway(MemorySeen()).receive(fixture("940_005010.edi"), T)
    (release,) = r.messages
    assert isinstance(release, OrderRelease)
    cancel = OrderRelease(ReleaseAction.CANCEL, release.order, "PO-1")
    ts = release_to_940(cancel, "0042")
    ic = wrap([ts], functional_id="OW", sender=("ZZ", "TWIN"), receiver=("ZZ", "THREEPL"),
              control=42, when=release.order.placed_at)  # fmt: skip
    back = Gateway(MemorySeen()).receive(serialize(ic), T)
    assert back.errors == ()
    assert back.messages == (cancel,)
