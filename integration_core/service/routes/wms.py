"""WMS ingress: inventory movements, one at a time or in batches, and shipment confirmations."""

from typing import Annotated

import orjson
from fastapi import Depends, FastAPI, Request, Response
from pydantic import BaseModel

from integration_core.engine import Accepted
from integration_core.models import Movement, Shipment
from integration_core.service.auth import Principal
from integration_core.service.intake import BatchRead
from integration_core.service.live import LiveEngine
from integration_core.service.routes.acks import ACK_RESPONSES, conflicting, post_one
from integration_core.service.routes.context import Context
from integration_core.service.routes.idempotent import idempotent
from integration_core.service.routes.openapi import AUTH, BODY, json_body, problem_responses
from integration_core.service.schemas import BatchResult


def add_routes(app: FastAPI, ctx: Context) -> None:
    Wms = Annotated[Principal, Depends(ctx.need("movements:write"))]

    @app.post("/v1/movements", status_code=202, tags=["wms"], responses=ACK_RESPONSES,
              openapi_extra=json_body("Movement"), summary="Post one inventory movement")
    async def post_movement(request: Request, who: Wms) -> Response:
        """A canonical Movement, validated against the item master. 202 once it is durably in
        the bus store; the same movement_id again is a duplicate (200) and applied once."""
        return await post_one(ctx, request, who, Movement, _accept_movement, "movement_id")

    @app.post(
        "/v1/movements:batch", status_code=202, tags=["wms"],
        responses={202: {"model": BatchResult,
                         "description": "Per-item results; the accepted ones are durable."},
                   **problem_responses(*AUTH, *BODY, 409, 422)},
        openapi_extra=json_body("MovementBatch"),
        summary=f"Post up to {ctx.settings.batch_max} movements in one transaction",
    )
    async def post_movements_batch(request: Request, who: Wms) -> Response:
        """Items are validated one by one; the valid ones are stored in one SQLite
        transaction (all or none of them), the invalid ones rejected with a problem naming
        `movements[i].field`. 422 when no item is valid."""
        body = await request.body()
        read = await ctx.intake().read_batch(body)  # off the loop, in a worker process

        def run() -> tuple[int, BaseModel | bytes]:
            engine = ctx.engine()
            read.raise_problem()
            accepted = engine.accept_movements([r for _, r in read.valid], who.system)
            return 202, batch_answer(read, accepted)

        return idempotent(ctx, request, who, body, run)

    @app.post("/v1/shipments/confirmations", status_code=202, tags=["wms"],
              responses=ACK_RESPONSES, openapi_extra=json_body("Shipment"),
              summary="Confirm a shipment (WMS)")
    async def post_shipment(
        request: Request, who: Annotated[Principal, Depends(ctx.need("shipments:write"))]
    ) -> Response:
        """A canonical Shipment. The order desk feeds it to the order's saga: the invoice is
        posted by the ERP twin; an unknown order dead-letters it until requeued."""
        return await post_one(ctx, request, who, Shipment, LiveEngine.accept_shipment,
                              "shipment_id")


def batch_answer(read: BatchRead, accepted: list[Accepted]) -> bytes:
    """The BatchResult of a stored batch, written as plain dicts: our own values, up to
    batch_max of them, and pydantic would spend more time on them than the store does."""
    rows = read.rejected + [
        {"index": i, "movement_id": r.movement_id,
         "status": "duplicate" if a.duplicate else "accepted",
         "message_id": a.message_id, "problem": None} if not a.conflict else
        {"index": i, "movement_id": r.movement_id, "status": "rejected",
         "message_id": None, "problem": conflicting(
             r.movement_id, f"movements[{i}].movement_id").body()}
        for (i, r), a in zip(read.valid, accepted, strict=True)]
    rows.sort(key=lambda r: r["index"])
    n_conflict = sum(a.conflict for a in accepted)
    n_dup = sum(a.duplicate for a in accepted) - n_conflict
    return orjson.dumps({"accepted": len(accepted) - n_dup - n_conflict, "duplicates": n_dup,
                         "rejected": len(read.rejected) + n_conflict, "items": rows})


def _accept_movement(engine: LiveEngine, m: Movement, system: str) -> Accepted:
    (a,) = engine.accept_movements([m], system)
    return a
