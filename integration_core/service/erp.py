"""The ERP twin the core delivers to: a financial stock ledger, invoices, and a fault switch.

Its state is consumer state in the bus store, written only by durable-inbox effects:

- ``erp_on_hand`` / SKU: the ERP's on-hand rows (see `ledger`);
- ``erp_applied`` / movement id: how many times the ERP applied that movement. The inbox makes
  it 1; the checker verifies it from the store, so "applied exactly once" is a fact read back,
  not an assumption;
- ``erp_invoices`` / shipment id: invoices posted.

`mode` "down" makes every call fail with a retryable `TransientError`: the bus retries with
backoff and, past its attempts, dead-letters the message for a requeue.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from integration_core.bus import Store, Tx
from integration_core.envelope import Envelope
from integration_core.errors import TransientError
from integration_core.orchestrator import PostInvoice
from integration_core.service.ledger import Ledger, RowKey, movement_fields

ON_HAND = "erp_on_hand"
APPLIED = "erp_applied"
INVOICES = "erp_invoices"
Mode = Literal["up", "down"]


class ErpTwin:
    def __init__(self) -> None:
        self.ledger = Ledger(ON_HAND)
        self.mode: Mode = "up"
        self.calls = 0
        self.refused = 0

    def _call(self) -> None:
        self.calls += 1
        if self.mode == "down":
            self.refused += 1
            raise TransientError("ERP is down (fault switch)")

    # -- consumer handlers (run inside the durable inbox) ------------------------------------

    def apply_movement(self, envelope: Envelope, tx: Tx) -> None:
        self._call()
        movement_id, sku, location, lot, delta = movement_fields(envelope)
        self.ledger.apply(tx, sku, location, lot, delta)
        tx.put(APPLIED, movement_id, int(tx.get(APPLIED, movement_id) or 0) + 1)

    def credit_check(self) -> bool:
        """Credit is always approved: the twin has no credit model yet."""
        self._call()
        return True

    def post_invoice(self, tx: Tx, command: PostInvoice, now: float) -> str:
        """Post the invoice of one shipment; idempotent per shipment id."""
        self._call()
        known = tx.get(INVOICES, command.shipment_id)
        if known is not None:
            return str(known["invoice_id"])
        invoice_id = f"INV-{command.shipment_id}"
        tx.put(INVOICES, command.shipment_id, {
            "invoice_id": invoice_id, "order_id": command.order_id, "at": now,
            "lines": [[ln.sku, ln.quantity_base, str(ln.unit_price)] for ln in command.lines],
        })
        return invoice_id

    # -- reads -------------------------------------------------------------------------------

    def rows(self, store: Store, sku: str) -> dict[RowKey, int]:
        return self.ledger.rows(store, sku)

    def table(self, store: Store) -> dict[RowKey, int]:
        return self.ledger.table(store)

    @staticmethod
    def applied_counts(store: Store, movement_ids: Iterable[str]) -> dict[str, int]:
        return {mid: int(store.get_state(APPLIED, mid) or 0) for mid in movement_ids}

    @staticmethod
    def all_applied(store: Store) -> dict[str, int]:
        return {k: int(v) for k, v in store.state(APPLIED).items()}
