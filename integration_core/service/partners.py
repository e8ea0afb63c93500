"""The HTTP adapter of the partner port: the core's calls to the ERP and the WMS over HTTP.

The records it sends and reads are the port's (`integration_core.engine.partners`); `sim.live`
serves them as twins. The fault switch (`Fault`) is the twins' admin surface, not the port.

Errors are classified for the bus: no answer, a timeout, 429 or 5xx are `TransientError`
(retry with backoff); any other 4xx is a `PayloadError` (the partner will never accept it:
dead-letter). The partner's answer body is kept in the message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx
import orjson
from pydantic import Field, ValidationError

from integration_core.engine.partners import (
    OPERATIONS,
    AppliedAnswer,
    AppliedQuery,
    CancelAnswer,
    CancelRelease,
    CreditAnswer,
    CreditCheck,
    CreditMemoAnswer,
    CreditMemoRequest,
    InvoiceAnswer,
    InvoiceRequest,
    Posting,
    PostingResults,
    Release,
    ReleaseAnswer,
    Stock,
    StockQuery,
    Wire,
)
from integration_core.errors import PayloadError, TransientError

Mode = Literal["up", "down", "slow", "flaky"]
PartnerName = Literal["erp", "wms"]
PARTNER_KEY_HEADER = "X-Partner-Key"
_PATHS = {"credit_check": "/credit-checks", "release": "/releases", "invoice": "/invoices",
          "cancel_release": "/release-cancellations", "credit_memo": "/credit-memos"}
"""Where each outbox operation is served (HTTP is this adapter's business, not the port's)."""
assert _PATHS.keys() == OPERATIONS.keys(), "every operation of the port needs its path"


class Fault(Wire):
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
                    body: Wire | bytes | None) -> Any:
        url = self.urls[system] + path
        content = body.model_dump_json().encode() if isinstance(body, Wire) else body
        headers = {"Content-Type": "application/json"} if content is not None else {}
        try:
            r = await self.http.request(method, url, content=content, headers=headers)
        except (httpx.HTTPError, OSError) as exc:  # refused, reset, timed out: it may be back
            raise TransientError(f"{system}: no answer from {method} {path}: "
                                 f"{type(exc).__name__} {exc}") from exc
        except AttributeError as exc:
            # httpcore races a connection reset right after connect: its socket wrapper
            # reads the peer of a socket that is already gone. Seen under the fault proxy's
            # `down` toxic; it is a reset like any other.
            if "getpeername" not in str(exc):
                raise
            raise TransientError(f"{system}: connection reset on connect ({method} {path})"
                                 ) from exc
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
        doc = await self._call("erp", "POST", "/postings", posting_body(postings))
        results: list[str] = PostingResults.model_validate(doc).results  # type: ignore[assignment]
        if len(results) != len(postings):
            raise TransientError(f"erp: {len(results)} results for {len(postings)} postings")
        return results

    async def stock(self, sku: str | None, pending: Sequence[str]) -> Stock:
        doc = await self._call("erp", "POST", "/stock", StockQuery(sku=sku, pending=list(pending)))
        return Stock.model_validate(doc)

    async def perform(self, op: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """An outbox call (`OPERATIONS[op]`): the request validated, posted to its partner,
        the answer validated; a PayloadError for an op or a body the port does not know."""
        operation = OPERATIONS.get(op)
        if operation is None:
            raise PayloadError("op", f"unknown outbox call {op!r}")
        try:
            request = operation.request.model_validate(body)
        except ValidationError as exc:
            raise PayloadError("body", f"{op}: {exc}") from None
        doc = await self._call(operation.system, "POST", _PATHS[op], request)
        return operation.answer.model_validate(doc).model_dump()

    async def credit_check(self, body: CreditCheck) -> CreditAnswer:
        return CreditAnswer.model_validate(await self.perform("credit_check", body.model_dump()))

    async def invoice(self, body: InvoiceRequest) -> InvoiceAnswer:
        return InvoiceAnswer.model_validate(await self.perform("invoice", body.model_dump()))

    async def release(self, body: Release) -> ReleaseAnswer:
        return ReleaseAnswer.model_validate(await self.perform("release", body.model_dump()))

    async def cancel_release(self, body: CancelRelease) -> CancelAnswer:
        return CancelAnswer.model_validate(await self.perform("cancel_release",
                                                              body.model_dump()))

    async def credit_memo(self, body: CreditMemoRequest) -> CreditMemoAnswer:
        return CreditMemoAnswer.model_validate(await self.perform("credit_memo",
                                                                  body.model_dump()))

    async def applied(self, movement_ids: Sequence[str]) -> AppliedAnswer:
        doc = await self._call("erp", "POST", "/applied-counts",
                               AppliedQuery(movement_ids=list(movement_ids)))
        return AppliedAnswer.model_validate(doc)

    async def set_fault(self, system: PartnerName, fault: Fault) -> FaultState:
        return FaultState.model_validate(await self._call(system, "PUT", "/fault", fault))

    async def fault(self, system: PartnerName) -> FaultState:
        return FaultState.model_validate(await self._call(system, "GET", "/fault", None))


def posting_body(postings: Sequence[Posting | Mapping[str, Any]]) -> bytes:
    """The ERP's ``POST /postings`` body."""
    flat = [p.model_dump() if isinstance(p, Posting) else p for p in postings]
    return orjson.dumps({"postings": flat})
