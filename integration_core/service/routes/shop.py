"""Shop: orders placed, and an order's status and trace read back."""

from typing import Annotated

from fastapi import Depends, FastAPI, Path, Request, Response

from integration_core.models import SalesOrder
from integration_core.service.auth import Principal
from integration_core.service.live import LiveEngine
from integration_core.service.routes.acks import ACK_RESPONSES, post_one
from integration_core.service.routes.context import Context
from integration_core.service.routes.openapi import AUTH, PATH_ID, json_body, problem_responses
from integration_core.service.schemas import OrderView


def add_routes(app: FastAPI, ctx: Context) -> None:
    @app.post("/v1/orders", status_code=202, tags=["shop"], responses=ACK_RESPONSES,
              openapi_extra=json_body("SalesOrder"), summary="Place an order (shop)")
    async def post_order(
        request: Request, who: Annotated[Principal, Depends(ctx.need("orders:write"))]
    ) -> Response:
        """A canonical SalesOrder; SKUs and units are checked against the item master."""
        return await post_one(ctx, request, who, SalesOrder, LiveEngine.accept_order,
                              "order_id")

    @app.get("/v1/orders/{order_id}", tags=["shop"], response_model=OrderView,
             responses=problem_responses(*AUTH, 404, 422), summary="Order status and trace")
    async def get_order(
        order_id: Annotated[str, Path(**PATH_ID)],
        who: Annotated[Principal, Depends(ctx.need("orders:read"))],
    ) -> OrderView:
        """Status in the saga, who it waits on, and its trace: every message (with its
        correlation id and times), every command the saga issued and every event it got."""
        return OrderView.model_validate(ctx.engine().order(order_id))

