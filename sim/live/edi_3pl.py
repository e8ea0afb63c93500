"""The live EDI 3PL twin: a warehouse that speaks X12, over a SQLite store of its own.

It takes 940s (the core's releases) and answers each interchange with its 997, through the
same gateway the core uses (`integration_core.edi`; its duplicate check and its own control
numbers in this twin's store). An order id is released once: a 940 for an order it holds
already is acknowledged and changes nothing (the core sends a new interchange when it calls
again after a lost answer). A 940 cancel (W05 F) of an order not shipped yet cancels it.

`ship` ships released orders in full and writes one 945 each; the 945 is kept, so the same
bytes (the same ISA13) go out again until the core has taken them (`outbox`, `delivered`):
the core recognises a resend as a duplicate interchange.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from integration_core.bus import SQLiteStore, Tx
from integration_core.edi import (
    Gateway,
    OrderRelease,
    ReleaseAction,
    serialize,
    shipment_to_945,
)
from integration_core.edi.envelope import wrap
from integration_core.edi.gateway import CONTROL_NS
from integration_core.feed import StoreSeen
from integration_core.models import Shipment, ShipmentLine

ORDERS = "edi3pl_orders"
"""Order id -> the release as received, and its state (released, cancelled, shipped)."""
REPLIES = "edi3pl_replies"
"""Interchange key -> the 997 / TA1 sent for it (a resend gets the same answer)."""
OUTBOX = "edi3pl_outbox"
"""Order id -> the 945 interchange to post to the core, until it took it."""
_MAX_CONTROL = 999_999_999


class X12Reply(BaseModel):
    accepted: bool
    """Every set of the interchange accepted (AK5 A or E) and its envelope too."""
    ack: bytes | None


class LiveEdi3pl:
    def __init__(self, path: str | Path, synchronous: str = "NORMAL", *,
                 our_id: str = "THREEPL", warehouse_id: str = "3PL-EDI") -> None:
        self.store = SQLiteStore(path, synchronous)
        self.our_id = our_id
        self.warehouse_id = warehouse_id

    def close(self) -> None:
        self.store.close()

    # -- inbound: 940s ------------------------------------------------------------------------

    def receive(self, raw: bytes, now: float | None = None) -> X12Reply:
        """The 997 / TA1 for the interchange (the same one again for a resend)."""
        now = datetime.now(UTC).timestamp() if now is None else now
        seen = StoreSeen(self.store)
        receipt = Gateway(seen).receive(raw, now)
        if receipt.duplicate:
            prior = self.store.get_state(REPLIES, seen.found or "") or {}
            ack = prior.get("ack")
            return X12Reply(accepted=bool(prior.get("accepted")),
                            ack=None if ack is None else ack.encode("latin-1"))
        accepted = not receipt.dead_letters
        releases = [m for m in receipt.messages if isinstance(m, OrderRelease)]
        partner = (seen.recorded or "").split("|")[0]  # ISA06 of the 940: where 945s go

        def write(tx: Tx) -> None:
            seen.write(tx)
            for r in releases:
                self._apply(tx, r, partner, now)
            if seen.recorded is not None:
                tx.put(REPLIES, seen.recorded, {
                    "accepted": accepted,
                    "ack": None if receipt.ack is None else receipt.ack.decode("latin-1")})

        self.store.apply("edi3pl", f"receipt:{seen.recorded or ''}:{now!r}", write)
        return X12Reply(accepted=accepted, ack=receipt.ack)

    def _apply(self, tx: Tx, r: OrderRelease, partner: str, now: float) -> None:
        oid = r.order.order_id
        known: dict[str, Any] | None = tx.get(ORDERS, oid)
        if r.action is ReleaseAction.CANCEL:
            if known is not None and known["state"] == "released":
                tx.put(ORDERS, oid, {**known, "state": "cancelled"})
            return
        if known is not None:  # released once; a change (W05 R) is not carried out here
            return
        tx.put(ORDERS, oid, {
            "state": "released", "received_at": now, "partner": partner,
            "customer_id": r.order.customer_id,
            "lines": [{"line_no": ln.line_no, "sku": ln.sku, "quantity": str(ln.quantity),
                       "unit": ln.unit or "EA"} for ln in r.order.lines]})

    def order(self, order_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self.store.get_state(ORDERS, order_id)
        return found

    # -- outbound: 945s -----------------------------------------------------------------------

    def ship(self, order_id: str | None = None, now: float | None = None) -> list[str]:
        """Ship `order_id` (or every released order) in full: one 945 each, kept in the
        outbox until `delivered`. Returns the order ids shipped now."""
        now = datetime.now(UTC).timestamp() if now is None else now
        when = datetime.fromtimestamp(now, UTC)
        ids = [order_id] if order_id is not None else sorted(self.store.state(ORDERS))
        shipped = []
        for oid in ids:
            record = self.store.get_state(ORDERS, oid)
            if record is None or record["state"] != "released":
                continue
            shipment = Shipment(
                shipment_id=f"SHP-{oid}", order_id=oid, warehouse_id=self.warehouse_id,
                shipped_at=when, lines=tuple(
                    ShipmentLine(order_line_no=ln["line_no"], sku=ln["sku"],
                                 quantity_base=int(float(ln["quantity"])))
                    for ln in record["lines"]))
            control = int(self.store.get_state(CONTROL_NS, "isa13") or 0) % _MAX_CONTROL + 1
            units = {ln["sku"]: ln["unit"] for ln in record["lines"]}
            raw = serialize(wrap([shipment_to_945(shipment, "0001", units)],
                                 functional_id="SW", sender=("ZZ", self.our_id),
                                 receiver=("ZZ", record["partner"]), control=control,
                                 when=when))

            def write(tx: Tx, oid: str = oid, record: dict[str, Any] = record,
                      raw: bytes = raw, control: int = control) -> None:
                tx.put(CONTROL_NS, "isa13", control)
                tx.put(ORDERS, oid, {**record, "state": "shipped", "shipped_at": now})
                tx.put(OUTBOX, oid, {"raw": raw.decode("latin-1"), "delivered": False})

            if self.store.apply("edi3pl-ship", oid, write):
                shipped.append(oid)
        return shipped

    def outbox(self) -> dict[str, bytes]:
        """The 945s not yet taken by the core, by order id."""
        return {k: v["raw"].encode("latin-1") for k, v in sorted(self.store.state(OUTBOX).items())
                if not v["delivered"]}

    def delivered(self, order_id: str) -> None:
        def write(tx: Tx) -> None:
            entry = tx.get(OUTBOX, order_id)
            if entry is not None:
                tx.put(OUTBOX, order_id, {**entry, "delivered": True})

        self.store.apply("edi3pl-delivered", order_id, write)
