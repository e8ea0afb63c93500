"""Carrier: tracking milestones of a shipment."""

from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from pydantic import BaseModel

from integration_core.models import ShipmentMilestone
from integration_core.service.auth import Principal
from integration_core.service.intake import parse_model
from integration_core.service.limits import read_json
from integration_core.service.routes.acks import ACK_RESPONSES, ack
from integration_core.service.routes.context import Context
from integration_core.service.routes.idempotent import idempotent
from integration_core.service.routes.openapi import json_body


def add_routes(app: FastAPI, ctx: Context) -> None:

    @app.post("/v1/carrier/milestones", status_code=202, tags=["carrier"],
              responses=ACK_RESPONSES, openapi_extra=json_body("ShipmentMilestone"),
              summary="Report a tracking milestone (carrier)")
    async def post_milestone(
        request: Request, who: Annotated[Principal, Depends(ctx.need("milestones:write"))]
    ) -> Response:
        body = await request.body()

        def run() -> tuple[int, BaseModel]:
            engine = ctx.engine()
            m = parse_model(engine.catalog, ShipmentMilestone, read_json(body, ctx.json_limits))
            return ack(engine.accept_milestone(m, who.system), m.shipment_id, "shipment_id")

        return idempotent(ctx, request, who, body, run)

