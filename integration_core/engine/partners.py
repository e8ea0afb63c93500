"""The partner port's records: what the core asks the ERP and the WMS, and what they answer.

The records are the contract. Drivers carry them to partners through adapters: the live
service over HTTP (`integration_core.service.partners`, served by `sim.live`'s twins; a real
ERP or WMS would sit behind an adapter serving the same). Every request carries an idempotency
handle (a message id, an order id, a shipment id): the core delivers at least once, the partner
applies once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Wire(BaseModel):
    """Strict: an unknown field is an error, and a record never changes once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Posting(Wire):
    """One inventory movement as the ERP books it: a signed delta on one stock row."""

    message_id: str = Field(description="Idempotency key: the ERP books a message id once.")
    movement_id: str
    sku: str
    location: str
    lot: str | None = None
    delta: int = Field(description="Signed quantity in the item's base unit.")


class Postings(Wire):
    postings: list[Posting]


class PostingResults(Wire):
    results: list[Literal["applied", "duplicate"]]


class StockQuery(Wire):
    sku: str | None = Field(None, description="One SKU, or every row when absent.")
    pending: list[str] = Field(default_factory=list, description="Movement ids the caller "
                               "has not seen acknowledged: the answer says which are booked.")


class Stock(Wire):
    rows: list[tuple[str, str, str | None, int]] = Field(description="[sku, location, lot, "
                                                         "on_hand] per row.")
    booked: list[str] = Field(description="The pending movement ids already booked.")

    def table(self) -> dict[tuple[str, str, str | None], int]:
        """On-hand by (sku, location, lot)."""
        return {(s, loc, lot): q for s, loc, lot, q in self.rows}


class CreditCheck(Wire):
    order_id: str
    customer_id: str
    amount: str


class CreditAnswer(Wire):
    approved: bool
    reason: str = ""


class InvoiceLine(Wire):
    sku: str
    quantity_base: int
    unit_price: str


class InvoiceRequest(Wire):
    shipment_id: str = Field(description="Idempotency key: one invoice per shipment.")
    order_id: str
    lines: list[InvoiceLine]


class InvoiceAnswer(Wire):
    invoice_id: str


class ReleaseLine(Wire):
    line_no: int
    sku: str
    quantity_base: int


class Release(Wire):
    order_id: str = Field(description="Idempotency key: an order is released once.")
    lines: list[ReleaseLine]


class ReleaseAnswer(Wire):
    accepted: bool
    reason: str = ""


class CancelRelease(Wire):
    """Take back an order's release (the customer cancelled): the WMS stops the order if
    it can and gives its stock back to the shelf, or refuses once picking has begun."""

    order_id: str = Field(description="Idempotency key: an order's release is cancelled "
                          "once; asked again, the WMS gives the same answer.")
    reason: str = ""


class CancelAnswer(Wire):
    cancelled: bool
    reason: str = Field("", description="Why the WMS refused (too far along), if it did.")


class CreditMemoRequest(Wire):
    """The ERP's side of a return: a credit note for what came back, at the invoiced price."""

    rma_id: str = Field(description="Idempotency key: one credit memo per return.")
    order_id: str
    customer_id: str
    lines: list[InvoiceLine]


class CreditMemoAnswer(Wire):
    credit_memo_id: str


class AppliedQuery(Wire):
    movement_ids: list[str]


class AppliedAnswer(Wire):
    counts: dict[str, int] = Field(description="Times each movement was booked (1 = once).")
    received: dict[str, int] = Field(description="Times each was delivered, duplicates "
                                     "included.")


@dataclass(frozen=True, slots=True)
class Operation:
    """A call the order desk writes to its outbox, as data: which partner answers it, with
    which records. Drivers look the op up here; none interprets it on its own."""

    name: str
    system: Literal["erp", "wms"]
    request: type[Wire]
    answer: type[Wire]


OPERATIONS: dict[str, Operation] = {op.name: op for op in (
    Operation("credit_check", "erp", CreditCheck, CreditAnswer),
    Operation("release", "wms", Release, ReleaseAnswer),
    Operation("invoice", "erp", InvoiceRequest, InvoiceAnswer),
    Operation("cancel_release", "wms", CancelRelease, CancelAnswer),
    Operation("credit_memo", "erp", CreditMemoRequest, CreditMemoAnswer),
)}
