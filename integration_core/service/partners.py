"""The port to the partner systems the core calls over HTTP: the ERP and the WMS.

The wire records below are the contract; `sim.live` serves them as twins, a real ERP/WMS would
sit behind an adapter serving the same. Every call carries an idempotency handle (a message
id, an order id, a shipment id): the core delivers at least once, the partner applies once.

Errors are classified for the bus: no answer, a timeout, 429 or 5xx are `TransientError`
(retry with backoff); any other 4xx is a `PayloadError` (the partner will never accept it:
dead-letter). The partner's answer body is kept in the message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field

from integration_core.errors import PayloadError, TransientError

Mode = Literal["up", "down", "slow", "flaky"]
PartnerName = Literal["erp", "wms"]
PARTNER_KEY_HEADER = "X-Partner-Key"


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Posting(_Wire):
    """One inventory movement as the ERP books it: a signed delta on one stock row."""

    message_id: str = Field(description="Idempotency key: the ERP books a message id once.")
    movement_id: str
    sku: str
    location: str
    lot: str | None = None
    delta: int = Field(description="Signed quantity in the item's base unit.")


class Postings(_Wire):
    postings: list[Posting]


class PostingResults(_Wire):
    results: list[Literal["applied", "duplicate"]]


class StockQuery(_Wire):
    sku: str | None = Field(None, description="One SKU, or every row when absent.")
    pending: list[str] = Field(default_factory=list, description="Movement ids the caller "
                               "has not seen acknowledged: the answer says which are booked.")


class Stock(_Wire):
    rows: list[tuple[str, str, str | None, int]] = Field(description="[sku, location, lot, "
                                                         "on_hand] per row.")
    booked: list[str] = Field(description="The pending movement ids already booked.")

    def table(self) -> dict[tuple[str, str, str | None], int]:
        """On-hand by (sku, location, lot)."""
        return {(s, loc, lot): q for s, loc, lot, q in self.rows}


class CreditCheck(_Wire):
    order_id: str
    customer_id: str
    amount: str


class CreditAnswer(_Wire):
    approved: bool
    reason: str = ""


class InvoiceLine(_Wire):
    sku: str
    quantity_base: int
    unit_price: str


class InvoiceRequest(_Wire):
    shipment_id: str = Field(description="Idempotency key: one invoice per shipment.")
    order_id: str
    lines: list[InvoiceLine]


class InvoiceAnswer(_Wire):
    invoice_id: str


class ReleaseLine(_Wire):
    line_no: int
    sku: str
    quantity_base: int


class Release(_Wire):
    order_id: str = Field(description="Idempotency key: an order is released once.")
    lines: list[ReleaseLine]


class ReleaseAnswer(_Wire):
    accepted: bool
    reason: str = ""


class AppliedQuery(_Wire):
    movement_ids: list[str]


class AppliedAnswer(_Wire):
    counts: dict[str, int] = Field(description="Times each movement was booked (1 = once).")
    received: dict[str, int] = Field(description="Times each was delivered, duplicates "
                                     "included.")


class Fault(_Wire):
    mode: Mode = Field(description="up; down: every call refused; slow: every call waits "
                       "latency_s; flaky: a failure_rate share of calls fail, half of them "
                       "after the work was done (the answer is lost).")
    latency_s: float = Field(1.0, ge=0, le=60)
    failure_rate: float = Field(0.3, ge=0, le=1)


class FaultState(Fault):
    system: PartnerName
    calls: int = 0
    refused: int = 0
    lost_answers: int = 0


class Partners:
    """HTTP client of the ERP and WMS. `transport` lets the twins run in process."""

    def __init__(self, erp_url: str, wms_url: str, key: str, timeout_s: float = 5.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.urls: dict[PartnerName, str] = {"erp": erp_url.rstrip("/"),
                                             "wms": wms_url.rstrip("/")}
        self.http = httpx.AsyncClient(
            transport=transport, timeout=timeout_s, headers={PARTNER_KEY_HEADER: key},
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )

    async def close(self) -> None:
        await self.http.aclose()

    async def _call(self, system: PartnerName, method: str, path: str,
                    body: _Wire | bytes | None) -> Any:
        url = self.urls[system] + path
        content = body.model_dump_json().encode() if isinstance(body, _Wire) else body
        headers = {"Content-Type": "application/json"} if content is not None else {}
        try:
            r = await self.http.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:  # refused, reset, timed out: the partner may be back
            raise TransientError(f"{system}: no answer from {method} {path}: "
                                 f"{type(exc).__name__} {exc}") from exc
        if r.status_code == 429 or r.status_code >= 500:
            raise TransientError(f"{system}: {method} {path} answered {r.status_code}: "
                                 f"{r.text[:200]}")
        if r.status_code >= 400:
            raise PayloadError(system, f"{method} {path} answered {r.status_code}: "
                                       f"{r.text[:500]}")
        return r.json()

    async def post_movements(self, postings: Sequence[Posting | Mapping[str, Any]]) -> list[str]:
        """Book `postings` (records with `Posting`'s fields; plain dicts on the hot path,
        the ERP validates them)."""
        flat = [p.model_dump() if isinstance(p, Posting) else p for p in postings]
        doc = await self._call("erp", "POST", "/postings", json.dumps({"postings": flat}).encode())
        results: list[str] = PostingResults.model_validate(doc).results  # type: ignore[assignment]
        if len(results) != len(postings):
            raise TransientError(f"erp: {len(results)} results for {len(postings)} postings")
        return results

    async def stock(self, sku: str | None, pending: Sequence[str]) -> Stock:
        doc = await self._call("erp", "POST", "/stock", StockQuery(sku=sku, pending=list(pending)))
        return Stock.model_validate(doc)

    async def credit_check(self, body: CreditCheck) -> CreditAnswer:
        return CreditAnswer.model_validate(await self._call("erp", "POST", "/credit-checks", body))

    async def invoice(self, body: InvoiceRequest) -> InvoiceAnswer:
        return InvoiceAnswer.model_validate(await self._call("erp", "POST", "/invoices", body))

    async def release(self, body: Release) -> ReleaseAnswer:
        return ReleaseAnswer.model_validate(await self._call("wms", "POST", "/releases", body))

    async def applied(self, movement_ids: Sequence[str]) -> AppliedAnswer:
        doc = await self._call("erp", "POST", "/applied-counts",
                               AppliedQuery(movement_ids=list(movement_ids)))
        return AppliedAnswer.model_validate(doc)

    async def set_fault(self, system: PartnerName, fault: Fault) -> FaultState:
        return FaultState.model_validate(await self._call(system, "PUT", "/fault", fault))

    async def fault(self, system: PartnerName) -> FaultState:
        return FaultState.model_validate(await self._call(system, "GET", "/fault", None))
