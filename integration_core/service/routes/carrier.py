"""Carrier: tracking milestones of a shipment."""

from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response

from integration_core.models import ShipmentMilestone
from integration_core.service.auth import Principal
from integration_core.service.live import LiveEngine
from integration_core.service.routes.acks import ACK_RESPONSES, post_one
from integration_core.service.routes.context import Context
from integration_core.service.routes.openapi import json_body


def add_routes(app: FastAPI, ctx: Context) -> None:
    @app.post("/v1/carrier/milestones", status_code=202, tags=["carrier"],
              responses=ACK_RESPONSES, openapi_extra=json_body("ShipmentMilestone"),
              summary="Report a tracking milestone (carrier)")
    async def post_milestone(
        request: Request, who: Annotated[Principal, Depends(ctx.need("milestones:write"))]
    ) -> Response:
        return await post_one(ctx, request, who, ShipmentMilestone,
                              LiveEngine.accept_milestone, "shipment_id")
