"""The live ERP twin: a financial stock ledger booked by idempotent postings, credit checks,
invoices and credit memos (one per shipment, one per return), over a SQLite store of its own.

A posting's message id goes through the store's inbox, so a redelivered posting is a
duplicate, not a second booking. ``erp_applied`` counts bookings per movement id (durable: the
checker reads it, it must be 1); `received` counts deliveries in memory, to show how often the
core had to deliver again (it restarts from 0 with the twin).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sized
from functools import partial
from pathlib import Path

from integration_core.bus import SQLiteStore, Tx
from integration_core.engine.ledger import Ledger
from integration_core.engine.partners import (
    AppliedAnswer,
    CreditAnswer,
    CreditCheck,
    CreditMemoAnswer,
    CreditMemoRequest,
    InvoiceAnswer,
    InvoiceRequest,
    Posting,
    Stock,
)
from sim.live.call_log import served

ON_HAND = "erp_on_hand"
APPLIED = "erp_applied"
INVOICES = "erp_invoices"
CREDIT_MEMOS = "erp_credit_memos"


class LiveErp:
    def __init__(self, path: str | Path, synchronous: str = "NORMAL") -> None:
        self.store = SQLiteStore(path, synchronous)
        self.ledger = Ledger(ON_HAND)
        self.received: Counter[str] = Counter()

    def close(self) -> None:
        self.store.close()

    def _book(self, p: Posting, tx: Tx) -> None:
        self.ledger.apply(tx, p.sku, p.location, p.lot, p.delta)
        tx.put(APPLIED, p.movement_id, int(tx.get(APPLIED, p.movement_id) or 0) + 1)

    @served("erp", "postings", lambda p: len(p) if isinstance(p, Sized) else 1)
    def post(self, postings: Iterable[Posting]) -> list[str]:
        postings = list(postings)
        self.received.update(p.movement_id for p in postings)
        results = self.store.apply_many(
            "erp", [(p.message_id, partial(self._book, p)) for p in postings])
        out = []
        for r in results:
            if isinstance(r, Exception):  # a booking cannot fail but on a bug: say so loudly
                raise r
            out.append("applied" if r else "duplicate")
        return out

    @served("erp", "stock")
    def stock(self, sku: str | None, pending: Iterable[str]) -> Stock:
        ledger, store = self.ledger, self.store
        table = ledger.table(store) if sku is None else ledger.rows(store, sku)
        booked = [mid for mid in pending if self.store.get_state(APPLIED, mid)]
        return Stock(rows=[(s, loc, lot, q) for (s, loc, lot), q in sorted(
            table.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or ""))], booked=booked)

    @served("erp", "credit_check")
    def credit_check(self, body: CreditCheck) -> CreditAnswer:
        return CreditAnswer(approved=True)  # no credit model: every customer is good

    @served("erp", "invoice")
    def invoice(self, body: InvoiceRequest) -> InvoiceAnswer:
        known = self.store.get_state(INVOICES, body.shipment_id)
        if known is not None:
            return InvoiceAnswer(invoice_id=str(known["invoice_id"]))
        invoice_id = f"INV-{body.shipment_id}"

        def post(tx: Tx) -> None:
            tx.put(INVOICES, body.shipment_id, {"invoice_id": invoice_id,
                                                "order_id": body.order_id,
                                                "lines": body.model_dump(mode="json")["lines"]})
        self.store.apply("erp-invoices", body.shipment_id, post)
        return InvoiceAnswer(invoice_id=invoice_id)

    @served("erp", "credit_memo")
    def credit_memo(self, body: CreditMemoRequest) -> CreditMemoAnswer:
        known = self.store.get_state(CREDIT_MEMOS, body.rma_id)
        if known is not None:
            return CreditMemoAnswer(credit_memo_id=str(known["credit_memo_id"]))
        memo_id = f"CM-{body.rma_id}"

        def post(tx: Tx) -> None:
            tx.put(CREDIT_MEMOS, body.rma_id, {"credit_memo_id": memo_id, **body.model_dump(
                mode="json", exclude={"rma_id"})})
        self.store.apply("erp-credit-memos", body.rma_id, post)
        return CreditMemoAnswer(credit_memo_id=memo_id)

    def applied(self, movement_ids: Iterable[str]) -> AppliedAnswer:
        ids = list(movement_ids)
        return AppliedAnswer(
            counts={m: int(self.store.get_state(APPLIED, m) or 0) for m in ids},
            received={m: self.received[m] for m in ids},
        )
