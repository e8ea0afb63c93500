"""HTTP face of the live twins: ``/erp/...`` and ``/wms/...``, each behind its fault switch,
and the EDI 3PL (``/3pl/x12`` takes 940s and answers 997s; ``/3pl/ship`` ships and posts 945s
to the core), behind the WMS's switch.

Callers authenticate with the partner key (header ``X-Partner-Key``). ``PUT /{system}/fault``
flips the switch; ``POST /erp/applied-counts`` is the auditor's window and never faulted.
Refusals are 503 problem documents, which the core treats as retryable.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from integration_core.engine.partners import (
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
    PostingResults,
    Postings,
    Release,
    ReleaseAnswer,
    Stock,
    StockQuery,
)
from integration_core.service.partners import Fault, FaultState, PartnerName
from sim.live.edi_3pl import LiveEdi3pl
from sim.live.erp import LiveErp
from sim.live.faults import FaultSwitch, Verdict
from sim.live.wms import LiveWms

T = TypeVar("T", bound=BaseModel)
PROBLEM = "application/problem+json"
X12 = "application/edi-x12"


class ShipRequest(BaseModel):
    order_id: str | None = None


class _Forbidden(Exception):
    pass


class _Unavailable(Exception):
    def __init__(self, system: str, why: str) -> None:
        self.system, self.why = system, why


def create_twins_app(db: str | Path, key: str, seed: int = 0,
                     synchronous: str = "NORMAL", core_url: str | None = None,
                     core_key: str = "") -> FastAPI:
    """The ERP and WMS twins over one SQLite file `db`; `key`: the partner key callers send.
    The EDI 3PL (``/3pl``) posts its 945s to the core at `core_url` with `core_key` (its
    X-API-Key; edi:write), or through ``app.state.core``, an httpx client set by the caller."""
    erp, wms = LiveErp(db, synchronous), LiveWms(db, synchronous)
    edi_3pl = LiveEdi3pl(db, synchronous)
    switches: dict[PartnerName, FaultSwitch] = {s: FaultSwitch(s, seed) for s in ("erp", "wms")}
    app = FastAPI(title="interop-twin partner twins (ERP, WMS)", version="1")
    app.state.erp, app.state.wms, app.state.switches = erp, wms, switches
    app.state.edi_3pl = edi_3pl
    app.state.core = None if core_url is None else httpx.AsyncClient(
        base_url=core_url, headers={"X-API-Key": core_key})

    @app.exception_handler(_Unavailable)
    async def unavailable(_: Any, exc: _Unavailable) -> JSONResponse:
        return JSONResponse(
            {"type": "about:blank", "title": "Service Unavailable", "status": 503,
             "detail": f"{exc.system}: {exc.why}"}, status_code=503, media_type=PROBLEM)

    async def caller(x_partner_key: Annotated[str, Header()] = "") -> None:
        if not secrets.compare_digest(x_partner_key.encode(), key.encode()):
            raise _Forbidden()

    @app.exception_handler(_Forbidden)
    async def forbidden(_: Any, __: _Forbidden) -> JSONResponse:
        return JSONResponse({"type": "about:blank", "title": "Unauthorized", "status": 401,
                             "detail": "X-Partner-Key missing or wrong"}, status_code=401,
                            media_type=PROBLEM)

    Auth = Depends(caller)

    async def through(system: PartnerName, work: Callable[[], T]) -> T:
        """Run `work` as the switch decides: delayed, refused, or done with the answer lost."""
        switch = switches[system]
        delay = switch.delay_s()
        if delay:
            await asyncio.sleep(delay)
        verdict = switch.decide()
        if verdict is Verdict.REFUSE:
            raise _Unavailable(system, f"{switch.fault.mode} (fault switch)")
        answer = work()
        if verdict is Verdict.LOSE_ANSWER:
            raise _Unavailable(system, "the answer was lost (flaky; the work was done)")
        return answer

    @app.post("/erp/postings", response_model=PostingResults, dependencies=[Auth])
    async def postings(body: Postings) -> PostingResults:
        return await through("erp", lambda: PostingResults(
            results=erp.post(body.postings)))

    @app.post("/erp/stock", response_model=Stock, dependencies=[Auth])
    async def stock(body: StockQuery) -> Stock:
        return await through("erp", lambda: erp.stock(body.sku, body.pending))

    @app.post("/erp/credit-checks", response_model=CreditAnswer, dependencies=[Auth])
    async def credit(body: CreditCheck) -> CreditAnswer:
        return await through("erp", lambda: erp.credit_check(body))

    @app.post("/erp/invoices", response_model=InvoiceAnswer, dependencies=[Auth])
    async def invoice(body: InvoiceRequest) -> InvoiceAnswer:
        return await through("erp", lambda: erp.invoice(body))

    @app.post("/erp/credit-memos", response_model=CreditMemoAnswer, dependencies=[Auth])
    async def credit_memo(body: CreditMemoRequest) -> CreditMemoAnswer:
        return await through("erp", lambda: erp.credit_memo(body))

    @app.post("/erp/applied-counts", response_model=AppliedAnswer, dependencies=[Auth])
    async def applied(body: AppliedQuery) -> AppliedAnswer:
        return erp.applied(body.movement_ids)

    @app.post("/wms/releases", response_model=ReleaseAnswer, dependencies=[Auth])
    async def release(body: Release) -> ReleaseAnswer:
        return await through("wms", lambda: wms.release(body))

    @app.post("/wms/release-cancellations", response_model=CancelAnswer, dependencies=[Auth])
    async def cancel_release(body: CancelRelease) -> CancelAnswer:
        return await through("wms", lambda: wms.cancel_release(body))

    @app.post("/3pl/x12", dependencies=[Auth], response_class=Response,
              responses={200: {"content": {X12: {}}}, 400: {"content": {X12: {}}}})
    async def edi_3pl_x12(request: Request) -> Response:
        """An X12 interchange (the core's 940s), answered with its 997 / TA1; behind the
        WMS's fault switch (the 3PL is the warehouse)."""
        if request.headers.get("content-type", "").split(";")[0].strip() != X12:
            return JSONResponse({"type": "about:blank", "title": "Unsupported Media Type",
                                 "status": 415, "detail": f"send {X12}"}, status_code=415,
                                media_type=PROBLEM)
        body = await request.body()
        reply = await through("wms", lambda: edi_3pl.receive(body))
        status = 200 if reply.accepted else 400
        if reply.ack is None:
            return Response(status_code=204 if reply.accepted else status)
        return Response(reply.ack, status, media_type=X12)

    @app.post("/3pl/ship", dependencies=[Auth])
    async def edi_3pl_ship(body: ShipRequest) -> dict[str, Any]:
        """Ship `order_id` (or every released order) and post the 945s not yet taken to the
        core's POST /v1/edi/x12; a 945 the core did not take (no answer, not 2xx) stays in
        the outbox and goes again, the same bytes, on the next call."""
        shipped = edi_3pl.ship(body.order_id)
        core: httpx.AsyncClient | None = app.state.core
        posted: dict[str, int | str] = {}
        for oid, raw in edi_3pl.outbox().items():
            if core is None:
                posted[oid] = "no core configured"
                continue
            try:
                r = await core.post("/v1/edi/x12", content=raw, headers={"Content-Type": X12})
            except httpx.HTTPError as exc:
                posted[oid] = f"no answer: {type(exc).__name__}"
                continue
            posted[oid] = r.status_code
            if r.is_success:
                edi_3pl.delivered(oid)
        return {"shipped": shipped, "posted": posted}

    def fault_routes(system: PartnerName) -> None:
        async def put_fault(body: Fault) -> FaultState:
            switches[system].set(body)
            return switches[system].state()

        async def get_fault() -> FaultState:
            return switches[system].state()

        app.put(f"/{system}/fault", response_model=FaultState, dependencies=[Auth])(put_fault)
        app.get(f"/{system}/fault", response_model=FaultState, dependencies=[Auth])(get_fault)

    fault_routes("erp")
    fault_routes("wms")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    def close() -> None:
        erp.close()
        wms.close()
        edi_3pl.close()
        # app.state.core (an httpx client) is the caller's to close, or closes with the
        # process: close() is synchronous.

    app.state.close = close
    return app

