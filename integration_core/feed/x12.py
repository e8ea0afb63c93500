"""An X12 interchange received by the core: the gateway's receipt carried out on the engine.

`EdiInbox.receive` runs the gateway (with a durable `StoreSeen`), then, in one bus
transaction: publishes the canonical messages through the engine's own ingress (a 940's new
order as `accept_order`, a 945 as `accept_shipment`, 943/944/947 movements as
`accept_movements`), records what has no engine path yet (846 snapshots, compared with the
core's WMS view; 856 ASN lines; 997/TA1 received), dead-letters what cannot be processed
(consumer "ingress", the raw interchange and the cause), records the interchange as seen and
keeps the reply sent, so a duplicate is answered with the original acknowledgement and
publishes nothing again. Sans-I/O: the caller passes the bytes and reads the outcome.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from integration_core.bus import INGRESS, Tx
from integration_core.bus import DeadLetter as BusDeadLetter
from integration_core.edi import (
    AckRecord,
    AsnLine,
    EdiError,
    Gateway,
    Limits,
    OrderRelease,
    Receipt,
    ReleaseAction,
)
from integration_core.engine import Engine
from integration_core.feed.seen import StoreSeen
from integration_core.models import InventoryBalance, Movement, Shipment

EDI_CONSUMER = "edi"
"""The inbox the interchanges' records are written under (not a bus subscriber)."""
REPLY_NS = "edi.reply"
"""Interchange key -> the reply sent for it (for duplicates) and the verdict."""
SNAPSHOT_NS = "edi.inventory_snapshot"
ASN_NS = "edi.asn"
ACK_NS = "edi.ack_received"
_MAX_LISTED = 20
Record = tuple[str, str, Any]
"""(namespace, key, JSON value) written in the receipt's transaction."""


class Verdict(StrEnum):
    ACCEPTED = "accepted"
    """Every transaction set was accepted (perhaps with errors noted: AK5 E)."""
    PARTIAL = "partial"
    """Some sets were accepted and carried out, others rejected and dead-lettered."""
    REJECTED = "rejected"
    """Nothing was accepted: the envelope (TA1 R) or every set (AK5 R) was rejected."""
    UNREADABLE = "unreadable"
    """No ISA could be read: there is no one to address a TA1 to."""
    DUPLICATE = "duplicate"
    """Same sender and ISA13 as an interchange accepted before: nothing published again."""


@dataclass(frozen=True, slots=True)
class EdiOutcome:
    verdict: Verdict
    ack: bytes | None
    """The reply (a 997 and/or a TA1); for a duplicate, the one sent the first time."""
    errors: tuple[EdiError, ...] = ()
    interchange: str = ""
    """sender|control, when the ISA was readable."""
    published: dict[str, int] = field(default_factory=dict)
    """Canonical messages handed to the engine, by kind (order, shipment, movement), new
    ones and duplicates of earlier ones alike."""
    recorded: dict[str, int] = field(default_factory=dict)
    """Records kept without an engine path, by kind (inventory_balance, asn_line, ack)."""
    dead_letters: tuple[str, ...] = ()
    """Ids of the dead letters written (see GET /v1/dead-letters)."""
    snapshot_differences: int = 0
    """Rows of an 846 whose on-hand differs from the core's WMS view at that instant."""
    original: Verdict | None = None
    """For a duplicate: the verdict of the interchange received first."""


def describe(e: EdiError) -> str:
    where = [f"{e.level} {e.code.value}"]
    if e.segment_id:
        where.append(f"{e.segment_id} at {e.segment_position}")
    if e.element_position:
        where.append(f"element {e.element_position}")
    return f"[{', '.join(where)}] {e.message}"


def _raw_text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # latin-1 maps every byte: nothing is lost
        return raw.decode("latin-1")


class EdiInbox:
    def __init__(self, engine: Engine, limits: Limits | None = None) -> None:
        self.engine = engine
        self.limits = limits or Limits()
        self._seq = itertools.count(1)

    def receive(self, raw: bytes, source: str, now: float | None = None, origin: str = "",
                also: Callable[[Verdict, bytes | None, tuple[EdiError, ...]], list[Record]]
                | None = None) -> EdiOutcome:
        """`source`: the system the messages are published as (the caller's key);
        `origin`: where the bytes came from, for the dead letters' causes (a file name);
        `also(verdict, reply, errors)`: more (namespace, key, value) records to write in the
        same transaction (the file feed's ledger)."""
        engine = self.engine
        now = engine.clock.now() if now is None else now
        seen = StoreSeen(engine.store)
        receipt = Gateway(seen, limits=self.limits, catalog=engine.catalog).receive(raw, now)
        if receipt.duplicate:
            key = seen.found or ""
            prior = engine.store.get_state(REPLY_NS, key) or {}
            ack, was = prior.get("ack"), prior.get("verdict")
            return EdiOutcome(Verdict.DUPLICATE, None if ack is None else ack.encode("latin-1"),
                              receipt.errors, key, original=None if was is None else Verdict(was))
        digest = hashlib.sha256(raw).hexdigest()
        text = _raw_text(raw)
        key = seen.recorded or next((d.interchange for d in receipt.dead_letters), "")
        dead: list[BusDeadLetter] = []

        def bury(cause_type: str, cause: str, message_id: str | None = None) -> None:
            n = len(dead) + 1
            prefix = f"{origin}: " if origin else ""
            dead.append(BusDeadLetter(
                id=f"{INGRESS}/edi/{digest[:16]}/{now:.6f}/{n}", consumer=INGRESS,
                position=None, message_id=message_id, envelope=None, raw=text,
                cause_type=cause_type, cause_message=prefix + cause, attempts=1,
                first_failure_at=now, last_failure_at=now))

        for d in receipt.dead_letters:
            what = f"{d.set_code} {d.set_control}: " if d.set_code else ""
            listed = "; ".join(describe(e) for e in d.errors[:_MAX_LISTED])
            bury("EdiRejected", f"{what}{d.cause}" + (f" ({listed})" if listed else ""),
                 f"edi:{key}:{d.set_code}:{d.set_control}" if d.set_code else None)
        verdict = _verdict(receipt, bool(receipt.ack))
        published: Counter[str] = Counter()
        recorded: Counter[str] = Counter()
        records: list[Record] = []
        differences = 0
        movements = [m for m in receipt.messages if isinstance(m, Movement)]
        balances = [m for m in receipt.messages if isinstance(m, InventoryBalance)]
        if balances:
            rows, differences = self._compare(balances)
            records.append((SNAPSHOT_NS, key, {"received_at": now, "source": source,
                                               "rows": rows, "differences": differences}))
            recorded["inventory_balance"] += len(balances)
        asn = [m for m in receipt.messages if isinstance(m, AsnLine)]
        if asn:
            records.append((ASN_NS, key, [_asn_row(a) for a in asn]))
            recorded["asn_line"] += len(asn)
        acks = [m for m in receipt.messages if isinstance(m, AckRecord)]
        if acks:
            records.append((ACK_NS, key, [{"kind": a.kind, "control": a.control, "code": a.code,
                                           "set_control": a.set_control, "detail": a.detail}
                                          for a in acks]))
            recorded["ack"] += len(acks)
        with engine.bus.transaction(now):
            if movements:
                for mv, a in zip(movements, engine.accept_movements(movements, source),
                                 strict=True):
                    if a.conflict:
                        bury("EdiConflict", f"movement_id {mv.movement_id!r} was stored before "
                             "with different content", a.message_id)
                    else:
                        published["movement"] += 1
            for m in receipt.messages:
                if isinstance(m, OrderRelease):
                    if m.action is not ReleaseAction.NEW:
                        bury("EdiNotCarriedOut", f"940 W0501 {m.action.value} of order "
                             f"{m.order.order_id!r}: the order desk carries out new orders "
                             "only (changes and cancellations are not supported yet)",
                             f"edi:{key}:940:{m.order.order_id}")
                        continue
                    a = engine.accept_order(m.order, source)
                    if a.conflict:
                        bury("EdiConflict", f"order_id {m.order.order_id!r} was stored before "
                             "with different content", a.message_id)
                    else:
                        published["order"] += 1
                elif isinstance(m, Shipment):
                    a = engine.accept_shipment(m, source)
                    if a.conflict:
                        bury("EdiConflict", f"shipment_id {m.shipment_id!r} was stored before "
                             "with different content", a.message_id)
                    else:
                        published["shipment"] += 1
            for dl in dead:
                engine.store.put_dead_letter(dl)
            if seen.recorded is not None:
                records.append((REPLY_NS, seen.recorded, {
                    "ack": None if receipt.ack is None else receipt.ack.decode("latin-1"),
                    "verdict": verdict.value, "received_at": now}))
            if also is not None:
                records += also(verdict, receipt.ack, receipt.errors)

            def write(tx: Tx) -> None:
                seen.write(tx)
                for ns, k, value in records:
                    tx.put(ns, k, value)

            if seen.staged or records:
                engine.store.apply(EDI_CONSUMER, f"edi.receipt:{digest[:32]}:{now!r}:"
                                   f"{next(self._seq)}", write)
        return EdiOutcome(verdict, receipt.ack, receipt.errors, key, dict(published),
                          dict(recorded), tuple(d.id for d in dead), differences)

    def _compare(self, balances: list[InventoryBalance]) -> tuple[list[dict[str, Any]], int]:
        """The 846's rows beside the core's WMS view (applied plus queued) of the same key."""
        views = {sku: self.engine.snapshot(sku)[0] for sku in {b.sku for b in balances}}
        rows, differences = [], 0
        for b in balances:
            core = views[b.sku].get((b.sku, b.location, b.lot), 0)
            differences += core != b.on_hand
            rows.append({"sku": b.sku, "location": b.location, "lot": b.lot,
                         "on_hand": b.on_hand, "core_wms_on_hand": core,
                         "difference": b.on_hand - core})
        return rows, differences


def _verdict(receipt: Receipt, answered: bool) -> Verdict:
    if not receipt.dead_letters:
        return Verdict.ACCEPTED
    if not answered and not receipt.messages:
        return Verdict.UNREADABLE
    if any(not d.set_code for d in receipt.dead_letters) or not receipt.messages:
        return Verdict.REJECTED
    return Verdict.PARTIAL


def _asn_row(a: AsnLine) -> dict[str, Any]:
    return {"asn_id": a.asn_id, "shipped_on": None if a.shipped_on is None
            else a.shipped_on.isoformat(), "ship_from": a.ship_from, "ship_to": a.ship_to,
            "order_ref": a.order_ref, "package": a.package, "sku": a.sku,
            "quantity": str(a.quantity), "unit": a.unit}
