"""Operations: dead letters and their requeue, a reconciliation on demand, and the partner
twins' fault switches."""

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from pydantic import ValidationError

from integration_core.engine import divergence
from integration_core.envelope import Envelope
from integration_core.errors import NotFound
from integration_core.service.auth import Principal
from integration_core.service.intake import parse_body
from integration_core.service.limits import read_json
from integration_core.service.partners import Fault, FaultState, PartnerName
from integration_core.service.problems import (
    FieldError,
    from_validation_error,
    not_found,
    validation_problem,
)
from integration_core.service.routes.context import Context
from integration_core.service.routes.openapi import AUTH, BODY, json_body, problem_responses
from integration_core.service.schemas import (
    BreakView,
    DeadLetterList,
    DeadLetterView,
    ReconcileView,
    RequeueBody,
    Requeued,
)


def add_routes(app: FastAPI, ctx: Context) -> None:
    @app.get("/v1/dead-letters", tags=["operations"], response_model=DeadLetterList,
             responses=problem_responses(*AUTH, 422), summary="Dead letters, oldest first")
    async def get_dead_letters(
        who: Annotated[Principal, Depends(ctx.need("dead_letters:read"))],
        consumer: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> DeadLetterList:
        dls = ctx.engine().dead_letters(consumer)
        return DeadLetterList(total=len(dls), items=[_dead_letter_view(d)
                                                     for d in dls[offset:offset + limit]])

    @app.post("/v1/dead-letters/{dead_letter_id:path}/requeue", status_code=202,
              tags=["operations"], response_model=Requeued,
              responses=problem_responses(*AUTH, *BODY, 404, 422),
              openapi_extra=json_body("RequeueBody", required=False),
              summary="Deliver a dead letter again")
    async def requeue(
        dead_letter_id: str, request: Request,
        who: Annotated[Principal, Depends(ctx.need("dead_letters:write"))],
    ) -> Requeued:
        """A consumer's dead letter is redelivered as it was (fix the cause first); the
        consumer's inbox still guarantees it is applied once. An ingress dead letter needs
        the corrected envelope in the body."""
        raw = await request.body()
        body = parse_body(RequeueBody, read_json(raw, ctx.json_limits)) if raw else None
        engine = ctx.engine()
        fixed = None
        if body is not None and body.envelope is not None:
            try:
                fixed = Envelope.model_validate(body.envelope)
            except ValidationError as exc:
                raise from_validation_error(exc, "envelope") from None
        try:
            engine.requeue(dead_letter_id, fixed)
        except NotFound:
            raise not_found(f"no dead letter {dead_letter_id!r}", "dead_letter_id") from None
        except ValueError as exc:
            raise validation_problem([FieldError(field="envelope", message=str(exc))]) from None
        return Requeued(id=dead_letter_id, status="requeued")

    @app.post("/v1/reconcile", tags=["operations"], response_model=ReconcileView,
              responses=problem_responses(*AUTH, *BODY, 503),
              summary="Reconcile ERP against WMS now")
    async def reconcile(
        who: Annotated[Principal, Depends(ctx.need("reconcile:write"))]
    ) -> ReconcileView:
        """The core's level-triggered reconciler over the ERP's stock (asked over HTTP: 503
        while the ERP does not answer), the WMS view and the movements the ERP has not
        booked. Repairs are proposed; with `repair_after_s` set, the ERP's adjustments for
        breaks that persisted that long are posted."""
        before = ctx.engine().repairs_posted
        result = await ctx.runner().reconcile()
        ordered = sorted(result.breaks, key=lambda b: (b.explained, -abs(b.residual), b.key))
        return ReconcileView(
            **divergence(result),
            breaks=[BreakView(key=b.key, kind=b.kind.value, erp_qty=b.erp_qty,
                              wms_qty=b.wms_qty, in_flight_units=b.in_flight_units,
                              residual=b.residual, severity=b.severity.value, age_s=b.age_s)
                    for b in ordered[:100]],
            proposed_repairs=[a.reason for a in result.audit[:100]],
            repairs_posted=ctx.engine().repairs_posted - before,
        )

    @app.put("/v1/admin/faults/{system}", tags=["operations"], response_model=FaultState,
             responses=problem_responses(*AUTH, *BODY, 422, 503),
             openapi_extra=json_body("Fault"),
             summary="Flip a partner twin's fault switch: up, down, slow, flaky")
    async def put_fault(
        system: Annotated[PartnerName, Path(description="erp or wms")], request: Request,
        who: Annotated[Principal, Depends(ctx.need("faults:write"))],
    ) -> FaultState:
        """Forwarded to the partner (a `twin twins` server, or the twins in process). down:
        every call refused; slow: each call waits latency_s; flaky: a failure_rate share of
        calls fail, half after the work was done. The core keeps accepting, retries with
        backoff, and dead-letters what outlasts its attempts."""
        body = parse_body(Fault, read_json(await request.body(), ctx.json_limits))
        state = await ctx.runner().partners.set_fault(system, body)
        ctx.engine().on_publish()
        return state

    @app.get("/v1/admin/faults/{system}", tags=["operations"], response_model=FaultState,
             responses=problem_responses(*AUTH, 422, 503),
             summary="A partner twin's fault switch and its call counts")
    async def get_fault(
        system: Annotated[PartnerName, Path(description="erp or wms")],
        who: Annotated[Principal, Depends(ctx.need("faults:write"))],
    ) -> FaultState:
        return await ctx.runner().partners.fault(system)



def _dead_letter_view(d: Any) -> DeadLetterView:
    env = d.envelope
    return DeadLetterView(
        id=d.id, consumer=d.consumer, message_id=d.message_id,
        type=None if env is None else env.type,
        correlation_id=None if env is None else env.correlation_id,
        cause_type=d.cause_type, cause_message=d.cause_message, attempts=d.attempts,
        first_failure_at=d.first_failure_at, last_failure_at=d.last_failure_at,
        transient=d.transient,
        envelope=None if env is None else env.model_dump(mode="json"), raw=d.raw,
    )
