"""The answer to a posted message: 202 accepted, 200 duplicate, 409 when its business id was
stored before with different content."""

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request, Response
from pydantic import BaseModel

from integration_core.engine import Accepted
from integration_core.models import Canonical
from integration_core.service.auth import Principal
from integration_core.service.intake import parse_model
from integration_core.service.limits import read_json
from integration_core.service.live import LiveEngine
from integration_core.service.problems import Problem, conflict
from integration_core.service.routes.context import Context
from integration_core.service.routes.idempotent import idempotent
from integration_core.service.routes.openapi import AUTH, BODY, problem_responses
from integration_core.service.schemas import Acknowledgement

_M = TypeVar("_M", bound=Canonical)

ACK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Acknowledgement, "description": "A duplicate: already stored."},
    202: {"model": Acknowledgement, "description": "Stored durably and queued."},
    **problem_responses(*AUTH, *BODY, 409, 422),
}


async def post_one(ctx: Context, request: Request, who: Principal, model: type[_M],
                   accept: Callable[[LiveEngine, _M, str], Accepted], id_field: str) -> Response:
    """One canonical message in the body: validated against the item master, accepted by
    `accept(engine, message, system)` and acknowledged under its `id_field` (or the answer
    to the request's Idempotency-Key replayed)."""
    body = await request.body()

    def run() -> tuple[int, BaseModel]:
        engine = ctx.engine()
        m = parse_model(engine.catalog, model, read_json(body, ctx.json_limits))
        return _ack(accept(engine, m, who.system), getattr(m, id_field), id_field)

    return idempotent(ctx, request, who, body, run)


def _ack(a: Accepted, business_id: str, field: str) -> tuple[int, BaseModel]:
    if a.conflict:
        raise conflicting(business_id, field)
    body = Acknowledgement(status="duplicate" if a.duplicate else "accepted", id=business_id,
                           message_id=a.message_id, position=a.position)
    return (200 if a.duplicate else 202), body


def conflicting(business_id: str, field: str) -> Problem:
    return conflict(f"{field} {business_id!r} was stored before with different content; "
                    "nothing was changed (use a new id for a new fact)", field)
