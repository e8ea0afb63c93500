"""Shop: orders placed, cancelled and returned, and an order's status and trace read back."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request, Response
from pydantic import BaseModel

from integration_core.engine import Accepted
from integration_core.envelope import OrderCancellation
from integration_core.models import Canonical, ReturnAuthorization, SalesOrder
from integration_core.service.auth import Principal
from integration_core.service.intake import parse_model
from integration_core.service.limits import read_json
from integration_core.service.live import LiveEngine
from integration_core.service.problems import FieldError, validation_problem
from integration_core.service.routes.acks import ACK_RESPONSES, conflicting, post_one
from integration_core.service.routes.context import Context
from integration_core.service.routes.idempotent import idempotent
from integration_core.service.routes.openapi import (
    AUTH,
    BODY,
    PATH_ID,
    json_body,
    problem_responses,
)
from integration_core.service.schemas import Acknowledgement, OrderView

_FOR_ORDER = {**ACK_RESPONSES, **problem_responses(*AUTH, *BODY, 404, 409, 422)}


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON Schema with its ``$defs`` written in place (the body is documented
    inline: these models are not among the document's components)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.removeprefix("#/$defs/")]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return dict(walk(schema))


def _body(model: type[BaseModel], optional: tuple[str, ...], required: bool
          ) -> dict[str, Any]:
    """`openapi_extra` for a body read by hand: the model, with the path's order id and
    the time (default: now) optional."""
    schema = _inline(model.model_json_schema())
    schema["required"] = [f for f in schema.get("required", []) if f not in optional]
    return {"requestBody": {"required": required,
                            "content": {"application/json": {"schema": schema}}}}


def add_routes(app: FastAPI, ctx: Context) -> None:
    @app.post("/v1/orders", status_code=202, tags=["shop"], responses=ACK_RESPONSES,
              openapi_extra=json_body("SalesOrder"), summary="Place an order (shop)")
    async def post_order(
        request: Request, who: Annotated[Principal, Depends(ctx.need("orders:write"))]
    ) -> Response:
        """A canonical SalesOrder; SKUs and units are checked against the item master."""
        return await post_one(ctx, request, who, SalesOrder, LiveEngine.accept_order,
                              "order_id")

    @app.post("/v1/orders/{order_id}/cancel", status_code=202, tags=["shop"],
              responses=_FOR_ORDER, summary="Cancel an order (shop)",
              openapi_extra=_body(OrderCancellation, ("order_id", "requested_at"), False))
    async def cancel_order(
        order_id: Annotated[str, Path(**PATH_ID)], request: Request,
        who: Annotated[Principal, Depends(ctx.need("orders:write"))],
    ) -> Response:
        """The customer cancels (body optional: a `reason`). The saga decides: before the
        release at once, after it through the WMS, once packed not at all (the order's trace
        says "cancel refused"). One cancel per order: a second is answered as a duplicate."""
        return await _for_order(ctx, request, who, order_id, OrderCancellation,
                                LiveEngine.accept_cancellation, "order_id", "requested_at",
                                conflict_is_duplicate=True)

    @app.post("/v1/orders/{order_id}/returns", status_code=202, tags=["shop"],
              responses=_FOR_ORDER, summary="Authorize a return (shop)",
              openapi_extra=_body(ReturnAuthorization, ("order_id", "authorized_at"), True))
    async def return_order(
        order_id: Annotated[str, Path(**PATH_ID)], request: Request,
        who: Annotated[Principal, Depends(ctx.need("orders:write"))],
    ) -> Response:
        """A return (RMA: `rma_id` and the `lines` coming back). Once the order is completed
        the saga has the ERP post a credit memo for it; the goods' receipt is the WMS's
        `return` movement. One RMA id is one return (send an Idempotency-Key to resend one
        without `authorized_at`: each send would otherwise be another time, a 409)."""
        return await _for_order(ctx, request, who, order_id, ReturnAuthorization,
                                LiveEngine.accept_return, "rma_id", "authorized_at")

    @app.get("/v1/orders/{order_id}", tags=["shop"], response_model=OrderView,
             responses=problem_responses(*AUTH, 404, 422), summary="Order status and trace")
    async def get_order(
        order_id: Annotated[str, Path(**PATH_ID)],
        who: Annotated[Principal, Depends(ctx.need("orders:read"))],
    ) -> OrderView:
        """Status in the saga, who it waits on, and its trace: every message (with its
        correlation id and times), every command the saga issued and every event it got."""
        return OrderView.model_validate(ctx.engine().order(order_id))


async def _for_order(ctx: Context, request: Request, who: Principal, order_id: str,
                     model: type[Canonical], accept: Callable[[LiveEngine, Any, str], Accepted],
                     id_field: str, time_field: str, conflict_is_duplicate: bool = False
                     ) -> Response:
    """A message about the order in the path: its id filled in (or checked), its time now
    unless given, the order known (404 otherwise: it would only be dead-lettered)."""
    body = await request.body()

    def run() -> tuple[int, BaseModel]:
        engine = ctx.engine()
        doc = read_json(body, ctx.json_limits) if body.strip() else {}
        if not isinstance(doc, dict):
            raise validation_problem([FieldError(field="body", message="expected a JSON "
                                                 "object")])
        if doc.get("order_id", order_id) != order_id:
            raise validation_problem([FieldError(
                field="order_id", message=f"is {doc['order_id']!r} in the body and "
                f"{order_id!r} in the path")])
        doc = {**doc, "order_id": order_id}
        doc.setdefault(time_field, datetime.fromtimestamp(engine.clock.now(), UTC)
                       .isoformat())
        m = parse_model(engine.catalog, model, doc)
        engine.order(order_id)  # NotFound (404) for an order neither stored nor queued
        a = accept(engine, m, who.system)
        business_id = str(getattr(m, id_field))
        if a.conflict and not conflict_is_duplicate:
            raise conflicting(business_id, id_field)
        duplicate = a.duplicate or a.conflict
        return (200 if duplicate else 202), Acknowledgement(
            status="duplicate" if duplicate else "accepted", id=business_id,
            message_id=a.message_id, position=a.position)

    return idempotent(ctx, request, who, body, run)
