"""Interchanges written for tests from the set definitions: a 940 of a canonical order, a
945 confirming it, a 944 receipt and an 846 snapshot, addressed from a 3PL to the twin."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from integration_core.edi import OrderRelease, ReleaseAction, Segment, release_to_940, serialize
from integration_core.edi.envelope import make_set, wrap
from integration_core.models import OrderLine, SalesOrder

WHEN = datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
PARTNER = ("ZZ", "THREEPL")
US = ("ZZ", "TWIN")


def _ic(code: str, fid: str, body: list[Segment], control: int) -> bytes:
    ts = make_set(code, "0001", body)
    return serialize(wrap([ts], functional_id=fid, sender=PARTNER, receiver=US,
                          control=control, when=WHEN))


def x940(order_id: str, sku: str, quantity: int = 3, control: int = 940,
         action: ReleaseAction = ReleaseAction.NEW) -> bytes:
    order = SalesOrder(order_id=order_id, customer_id="C-1", placed_at=WHEN,
                       lines=(OrderLine(line_no=1, sku=sku, quantity=Decimal(quantity)),))
    ts = release_to_940(OrderRelease(action, order, "PO-1"), "0001")
    return serialize(wrap([ts], functional_id="OW", sender=PARTNER, receiver=US,
                          control=control, when=WHEN))


def x945(order_id: str, shipment_id: str, sku: str, quantity: int = 3, control: int = 945,
         total: int | None = None) -> bytes:
    body = [
        Segment("W06", ("N", order_id, "20260301", shipment_id)),
        Segment("N1", ("SF", "THREEPL EAST", "91", "WH1")),
        Segment("LX", ("1",)),
        Segment("W12", ("CC", str(quantity), str(quantity), "", "EA", "", "VN", sku)),
        Segment("W03", (str(quantity if total is None else total),)),
    ]
    return _ic("945", "SW", body, control)


def x944(receipt: str, lines: list[tuple[str, int]], control: int = 944,
         location: str = "A-01") -> bytes:
    body = [Segment("W17", ("F", "20260301", receipt)),
            Segment("N1", ("WH", "THREEPL EAST", "91", location))]
    for n, (sku, q) in enumerate(lines, 1):
        body += [Segment("LX", (str(n),)), Segment("W07", (str(q), "EA", "", "VN", sku))]
    body.append(Segment("W14", (str(sum(q for _, q in lines)),)))
    return _ic("944", "RE", body, control)


def x846(rows: list[tuple[str, int]], control: int = 846, location: str = "A-01") -> bytes:
    body = [Segment("BIA", ("00", "MM", "SNAP-1", "20260301")),
            Segment("N1", ("WH", "THREEPL EAST", "91", location))]
    for sku, q in rows:
        body += [Segment("LIN", ("", "VN", sku)), Segment("QTY", ("17", str(q), "EA"))]
    body.append(Segment("CTT", (str(len(rows)),)))
    return _ic("846", "IB", body, control)
