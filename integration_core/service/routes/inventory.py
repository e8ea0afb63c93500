"""Inventory: one SKU as the ERP sees it, as the WMS sees it, and what is in flight."""

from typing import Annotated

from fastapi import Depends, FastAPI, Path

from integration_core.service.auth import Principal
from integration_core.service.routes.context import Context
from integration_core.service.routes.openapi import AUTH, PATH_ID, problem_responses
from integration_core.service.schemas import InventoryView


def add_routes(app: FastAPI, ctx: Context) -> None:
    @app.get("/v1/inventory/{sku}", tags=["inventory"], response_model=InventoryView,
             responses=problem_responses(*AUTH, 404, 422, 503),
             summary="ERP view, WMS view, in flight")
    async def get_inventory(
        sku: Annotated[str, Path(**PATH_ID)],
        who: Annotated[Principal, Depends(ctx.need("inventory:read"))],
    ) -> InventoryView:
        """ERP: the ERP's stock, asked over HTTP (503 while the ERP does not answer). WMS:
        the sum of acknowledged movements. In flight: movements the ERP has not booked."""
        return InventoryView.model_validate(await ctx.runner().inventory(sku))

