"""Audit: how many times the ERP applied each movement; backlog, lag and bus counters."""

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from integration_core.service.auth import Principal
from integration_core.service.intake import parse_body
from integration_core.service.limits import read_json
from integration_core.service.routes.context import Context
from integration_core.service.routes.openapi import AUTH, BODY, json_body, problem_responses
from integration_core.service.schemas import AppliedCounts, AppliedCountsBody


def add_routes(app: FastAPI, ctx: Context) -> None:
    # The body is read like the others (read_json's limits), not by FastAPI.

    @app.post("/v1/erp/applied-counts", tags=["audit"], response_model=AppliedCounts,
              responses=problem_responses(*AUTH, *BODY, 422, 503),
              openapi_extra=json_body("AppliedCountsBody"),
              summary="How many times the ERP applied each movement")
    async def applied_counts(
        request: Request, who: Annotated[Principal, Depends(ctx.need("audit:read"))]
    ) -> AppliedCounts:
        """For checkers: asked of the ERP itself (its bookings, 0 for never booked, and its
        deliveries received, redeliveries included)."""
        body = parse_body(AppliedCountsBody, read_json(await request.body(), ctx.json_limits))
        answer = await ctx.runner().partners.applied(body.movement_ids)
        return AppliedCounts(counts=answer.counts, received=answer.received)

    @app.get("/v1/status", tags=["audit"], responses=problem_responses(*AUTH),
             summary="Backlog, lag and dead letters per consumer; bus counters")
    async def get_status(
        who: Annotated[Principal, Depends(ctx.need("audit:read"))]
    ) -> dict[str, Any]:
        engine, runner = ctx.engine(), ctx.runner()
        doc = engine.status()
        doc["background_failures"] = runner.failures
        doc["erp_posting"] = {"calls": runner.erp_posts, "failed_calls": runner.erp_post_failures}
        doc["outbox"]["failed_calls"] = runner.call_failures
        doc["reconcile_skipped"] = runner.reconcile_skipped
        doc["event_loop_lag_s"] = runner.loop_lag_s
        # What the twin calls inventory_sync: occurred -> booked in the ERP (this process).
        doc["inventory_sync_lag_s"] = runner.sync_lag.as_dict()
        return doc

