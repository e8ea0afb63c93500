"""The FastAPI app: HTTP API v1 over the engine, with keys, scopes, rate limits, idempotency,
problem details and Prometheus metrics.

Every endpoint is `async def` and calls the engine synchronously, without awaiting in
between: requests are handled one at a time on the event loop's thread, which is what the
single SQLite connection needs and what makes an idempotency check-then-write atomic. An
acknowledgement (202) is sent only after the message's transaction committed.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at
run time, and the dependencies they name are local to `create_app`.
"""

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration_core.clock import Clock
from integration_core.engine import Accepted, divergence
from integration_core.envelope import Envelope
from integration_core.errors import InteropError, NotFound, PayloadError, StorageError
from integration_core.models import (
    ID_PATTERN,
    Movement,
    SalesOrder,
    Shipment,
    ShipmentMilestone,
)
from integration_core.service.auth import Gatekeeper, Principal
from integration_core.service.config import Settings
from integration_core.service.idempotency import MAX_KEY_LENGTH, fingerprint
from integration_core.service.intake import Intake, parse_body, parse_model
from integration_core.service.limits import BodyLimit, read_json
from integration_core.service.live import LiveEngine
from integration_core.service.metrics import CONTENT_TYPE, Labels, Registry
from integration_core.service.partners import Fault, FaultState, PartnerName, Partners
from integration_core.service.problems import (
    MEDIA_TYPE,
    FieldError,
    Problem,
    ProblemBody,
    conflict,
    field_errors,
    from_validation_error,
    not_found,
    validation_problem,
)
from integration_core.service.runner import Runner
from integration_core.service.schemas import (
    Acknowledgement,
    AppliedCounts,
    AppliedCountsBody,
    BatchResult,
    BreakView,
    DeadLetterList,
    DeadLetterView,
    Health,
    InventoryView,
    OrderView,
    ReconcileView,
    RequeueBody,
    Requeued,
)

log = logging.getLogger("interop_twin.service")
RETRY_AFTER_S = 1
"""Seconds a client is asked to wait after a 503 (the store or a partner failing)."""
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.\[\]]*): ")


@dataclass
class _Holder:
    engine: LiveEngine | None = None
    runner: Runner | None = None
    intake: Intake | None = None
    ready: bool = False


# -- request metrics ----------------------------------------------------------------------------


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (bounded label values)."""

    def __init__(self, app: ASGIApp, registry: Registry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = str(scope.get("method", ""))
            self.registry.inc("twin_http_requests_total",
                              (("method", method), ("route", route), ("status", str(status))))
            self.registry.observe("twin_http_request_duration_seconds",
                                  (("method", method), ("route", route)),
                                  time.perf_counter() - start)


# -- helpers ------------------------------------------------------------------------------------


def _problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    ref = {"$ref": "#/components/schemas/ProblemBody"}
    titles = {400: "Bad request", 401: "Missing or unknown API key",
              403: "Outside the key's scopes", 404: "Not found",
              409: "Conflict: an Idempotency-Key or a business id reused for different "
                   "content",
              413: "Request body over the size limit (refused before it is read whole)",
              415: "Request body is not application/json (UTF-8)",
              422: "Invalid request: the problem names the field", 429: "Rate limited",
              503: "Not ready"}
    out: dict[int | str, dict[str, Any]] = {}
    for c in codes:
        entry: dict[str, Any] = {"description": titles[c],
                                 "content": {MEDIA_TYPE: {"schema": ref}}}
        if c == 429:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                "description": "Seconds to wait."}}
        out[c] = entry
    return out


_AUTH = (401, 403, 429)
_BODY = (413, 415)
"""What `BodyLimit` may answer on any POST or PUT."""


def _json_body(model_name: str, required: bool = True) -> dict[str, Any]:
    return {"requestBody": {"required": required, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model_name}"}}}}}


_PATH_ID = {"max_length": 128, "pattern": ID_PATTERN}
"""A canonical id in a path: one that cannot exist is a 422 naming it, not a 404."""


def _json(body: BaseModel | bytes) -> bytes:
    return body if isinstance(body, bytes) else body.model_dump_json().encode()


def _ack(a: Accepted, business_id: str, field: str) -> tuple[int, BaseModel]:
    if a.conflict:
        raise _conflicting(business_id, field)
    body = Acknowledgement(status="duplicate" if a.duplicate else "accepted", id=business_id,
                           message_id=a.message_id, position=a.position)
    return (200 if a.duplicate else 202), body


def _conflicting(business_id: str, field: str) -> Problem:
    return conflict(f"{field} {business_id!r} was stored before with different content; "
                    "nothing was changed (use a new id for a new fact)", field)


def _interop_problem(exc: InteropError) -> Problem:
    text = str(exc)
    field = exc.field if isinstance(exc, PayloadError) else None
    if field is None:
        match = _FIELD_PREFIX.match(text)
        if match:
            field, text = match.group(1), text[match.end():]
    if isinstance(exc, NotFound):
        return not_found(text, field)
    status = exc.status_hint if 400 <= exc.status_hint < 600 else 500
    errors = [FieldError(field=field, message=text)] if field else []
    slug = {409: "conflict", 422: "validation", 503: "unavailable"}.get(status, "error")
    # 503: our store or a partner is away for now; the client's retry is safe (deduped).
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return Problem(status, slug, type(exc).__name__, text, errors, headers)


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


# -- the app ------------------------------------------------------------------------------------


def create_app(settings: Settings, clock: Clock | None = None,
               partner_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The service. Opening the store, recovering the bus and starting the background tasks
    happen in the app's lifespan, so nothing is opened until a server (or test) starts it.

    The ERP and WMS are called over HTTP at `settings.erp_url` / `wms_url`;
    `partner_transport` (e.g. an `httpx.ASGITransport` of `sim.live`'s twins) carries those
    calls in process instead of over a socket."""
    gate = Gatekeeper(settings.keys)
    registry = Registry()
    registry.counter("twin_http_requests_total", "HTTP requests by method, route and status.")
    registry.histogram("twin_http_request_duration_seconds",
                       "HTTP request latency in seconds, by method and route.")
    held = _Holder()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = LiveEngine(settings, clock)
        partners = Partners(settings.erp_url, settings.wms_url,
                            settings.partner_key.get_secret_value(),
                            settings.partner_timeout_s, partner_transport)
        runner = Runner(engine, partners)
        intake = Intake(settings, engine.catalog)
        try:
            await intake.start()
        except BaseException:
            intake.close()
            await partners.close()
            engine.close()
            raise
        held.engine, held.runner, held.intake = engine, runner, intake
        runner.start()
        held.ready = True
        try:
            yield
        finally:
            held.ready = False
            await runner.stop()
            intake.close()
            await partners.close()
            engine.close()
            held.engine = held.runner = held.intake = None

    app = FastAPI(
        title="interop-twin live service",
        version="1",
        summary="The integration core in real time: durable bus, ERP twin, order-to-ship saga.",
        lifespan=lifespan,
        redirect_slashes=False,  # a 4xx is a problem, never a bare 307 to another path
    )
    json_limits = settings.json_limits()
    # Added first, so it runs inside the metrics middleware: its refusals are counted too.
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes,
                       by_path={"/v1/movements:batch": settings.batch_body_limit})
    app.add_middleware(MetricsMiddleware, registry=registry)

    def run_() -> Runner:
        eng()
        assert held.runner is not None  # set together with the engine
        return held.runner

    def eng() -> LiveEngine:
        if held.engine is None:
            raise Problem(503, "unavailable", "Not ready", "the service is starting or "
                          "stopping")
        return held.engine

    # -- errors ------------------------------------------------------------------------------

    @app.exception_handler(Problem)
    async def on_problem(request: Request, exc: Problem) -> Response:
        return exc.response(request.url.path)

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        return validation_problem(field_errors(exc.errors())).response(request.url.path)

    @app.exception_handler(InteropError)
    async def on_interop(request: Request, exc: InteropError) -> Response:
        return _interop_problem(exc).response(request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI's "error parsing the body": a bad body, say so
            problem = validation_problem([FieldError(field="body", message=str(exc.detail))],
                                         "Request body is not JSON")
            return problem.response(request.url.path)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette's Allow names one route's methods; a path can
            # have several routes (GET and PUT /v1/admin/faults/{system}): name all of theirs
            allowed = {m for r in app.routes if r.matches(request.scope)[0] is Match.PARTIAL
                       for m in getattr(r, "methods", None) or ()}
            if allowed:
                headers["Allow"] = ", ".join(sorted(allowed))
        problem = Problem(exc.status_code, slug, str(exc.detail), str(exc.detail),
                          headers=headers)
        return problem.response(request.url.path)

    # -- security ----------------------------------------------------------------------------

    bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <key>")
    api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <key>")

    def need(scope: str) -> Callable[..., Any]:
        async def admit(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
            key: Annotated[str | None, Depends(api_key)],
        ) -> Principal:
            secret = key or (credentials.credentials if credentials is not None else None)
            return gate.admit(secret, scope)

        return admit

    Wms = Annotated[Principal, Depends(need("movements:write"))]

    # -- idempotency -------------------------------------------------------------------------

    def idempotent(request: Request, who: Principal, body: bytes,
                   run: Callable[[], tuple[int, BaseModel | bytes]]) -> Response:
        engine = eng()
        key = request.headers.get("idempotency-key")
        if key is None:
            status, model = run()
            return Response(_json(model), status, media_type="application/json")
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise validation_problem([FieldError(
                field="Idempotency-Key",
                message=f"must be 1 to {MAX_KEY_LENGTH} printable characters")],
                "Idempotency-Key is invalid")
        fp = fingerprint(request.method, request.url.path, body)
        known = engine.idempotency.get(who.system, key)
        if known is not None:
            if known.fingerprint != fp:
                engine.idempotency.conflicts += 1
                raise conflict("this Idempotency-Key was used with a different request; use a "
                               "new key for a new request", "Idempotency-Key")
            engine.idempotency.replays += 1
            return Response(known.body, known.status, media_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
        status, model = run()
        payload = _json(model)
        if 200 <= status < 300:  # after the effect committed: see idempotency.py
            try:
                engine.idempotency.put(who.system, key, fp, status, payload,
                                       engine.clock.now())
            except StorageError:  # the effect stands; a retry is deduped by message id
                log.warning("idempotency record for %s not written", who.system,
                            exc_info=True)
        return Response(payload, status, media_type="application/json")

    ack_responses: dict[int | str, dict[str, Any]] = {
        200: {"model": Acknowledgement, "description": "A duplicate: already stored."},
        202: {"model": Acknowledgement, "description": "Stored durably and queued."},
        **_problem_responses(*_AUTH, *_BODY, 409, 422),
    }

    # -- WMS ---------------------------------------------------------------------------------

    @app.post("/v1/movements", status_code=202, tags=["wms"], responses=ack_responses,
              openapi_extra=_json_body("Movement"), summary="Post one inventory movement")
    async def post_movement(request: Request, who: Wms) -> Response:
        """A canonical Movement, validated against the item master. 202 once it is durably in
        the bus store; the same movement_id again is a duplicate (200) and applied once."""
        body = await request.body()

        def run() -> tuple[int, BaseModel]:
            engine = eng()
            m = parse_model(engine.catalog, Movement, read_json(body, json_limits))
            (a,) = engine.accept_movements([m], who.system)
            return _ack(a, m.movement_id, "movement_id")

        return idempotent(request, who, body, run)

    @app.post(
        "/v1/movements:batch", status_code=202, tags=["wms"],
        responses={202: {"model": BatchResult,
                         "description": "Per-item results; the accepted ones are durable."},
                   **_problem_responses(*_AUTH, *_BODY, 409, 422)},
        openapi_extra=_json_body("MovementBatch"),
        summary=f"Post up to {settings.batch_max} movements in one transaction",
    )
    async def post_movements_batch(request: Request, who: Wms) -> Response:
        """Items are validated one by one; the valid ones are stored in one SQLite
        transaction (all or none of them), the invalid ones rejected with a problem naming
        `movements[i].field`. 422 when no item is valid."""
        body = await request.body()
        eng()
        assert held.intake is not None  # set together with the engine
        read = await held.intake.read_batch(body)  # off the loop, in a worker process

        def run() -> tuple[int, BaseModel | bytes]:
            engine = eng()
            read.raise_problem()
            accepted = engine.accept_movements([r for _, r in read.valid], who.system)
            # A BatchResult, written as plain dicts: our own values, up to batch_max of them,
            # and pydantic would spend more time on them than the store does.
            rows = read.rejected + [
                {"index": i, "movement_id": r.movement_id,
                 "status": "duplicate" if a.duplicate else "accepted",
                 "message_id": a.message_id, "problem": None} if not a.conflict else
                {"index": i, "movement_id": r.movement_id, "status": "rejected",
                 "message_id": None, "problem": _conflicting(
                     r.movement_id, f"movements[{i}].movement_id").body()}
                for (i, r), a in zip(read.valid, accepted, strict=True)]
            rows.sort(key=lambda r: r["index"])
            n_conflict = sum(a.conflict for a in accepted)
            n_dup = sum(a.duplicate for a in accepted) - n_conflict
            return 202, json.dumps({"accepted": len(accepted) - n_dup - n_conflict,
                                    "duplicates": n_dup,
                                    "rejected": len(read.rejected) + n_conflict,
                                    "items": rows}, separators=(",", ":")).encode()

        return idempotent(request, who, body, run)

    @app.post("/v1/shipments/confirmations", status_code=202, tags=["wms"],
              responses=ack_responses, openapi_extra=_json_body("Shipment"),
              summary="Confirm a shipment (WMS)")
    async def post_shipment(
        request: Request, who: Annotated[Principal, Depends(need("shipments:write"))]
    ) -> Response:
        """A canonical Shipment. The order desk feeds it to the order's saga: the invoice is
        posted by the ERP twin; an unknown order dead-letters it until requeued."""
        body = await request.body()

        def run() -> tuple[int, BaseModel]:
            engine = eng()
            s = parse_model(engine.catalog, Shipment, read_json(body, json_limits))
            return _ack(engine.accept_shipment(s, who.system), s.shipment_id, "shipment_id")

        return idempotent(request, who, body, run)

    # -- shop --------------------------------------------------------------------------------

    @app.post("/v1/orders", status_code=202, tags=["shop"], responses=ack_responses,
              openapi_extra=_json_body("SalesOrder"), summary="Place an order (shop)")
    async def post_order(
        request: Request, who: Annotated[Principal, Depends(need("orders:write"))]
    ) -> Response:
        """A canonical SalesOrder; SKUs and units are checked against the item master."""
        body = await request.body()

        def run() -> tuple[int, BaseModel]:
            engine = eng()
            o = parse_model(engine.catalog, SalesOrder, read_json(body, json_limits))
            return _ack(engine.accept_order(o, who.system), o.order_id, "order_id")

        return idempotent(request, who, body, run)

    @app.get("/v1/orders/{order_id}", tags=["shop"], response_model=OrderView,
             responses=_problem_responses(*_AUTH, 404, 422), summary="Order status and trace")
    async def get_order(
        order_id: Annotated[str, Path(**_PATH_ID)],
        who: Annotated[Principal, Depends(need("orders:read"))],
    ) -> OrderView:
        """Status in the saga, who it waits on, and its trace: every message (with its
        correlation id and times), every command the saga issued and every event it got."""
        return OrderView.model_validate(eng().order(order_id))

    # -- carrier -----------------------------------------------------------------------------

    @app.post("/v1/carrier/milestones", status_code=202, tags=["carrier"],
              responses=ack_responses, openapi_extra=_json_body("ShipmentMilestone"),
              summary="Report a tracking milestone (carrier)")
    async def post_milestone(
        request: Request, who: Annotated[Principal, Depends(need("milestones:write"))]
    ) -> Response:
        body = await request.body()

        def run() -> tuple[int, BaseModel]:
            engine = eng()
            m = parse_model(engine.catalog, ShipmentMilestone, read_json(body, json_limits))
            return _ack(engine.accept_milestone(m, who.system), m.shipment_id,
                        "shipment_id")

        return idempotent(request, who, body, run)

    # -- reads -------------------------------------------------------------------------------

    @app.get("/v1/inventory/{sku}", tags=["inventory"], response_model=InventoryView,
             responses=_problem_responses(*_AUTH, 404, 422, 503),
             summary="ERP view, WMS view, in flight")
    async def get_inventory(
        sku: Annotated[str, Path(**_PATH_ID)],
        who: Annotated[Principal, Depends(need("inventory:read"))],
    ) -> InventoryView:
        """ERP: the ERP's stock, asked over HTTP (503 while the ERP does not answer). WMS:
        the sum of acknowledged movements. In flight: movements the ERP has not booked."""
        return InventoryView.model_validate(await run_().inventory(sku))

    # The bodies below are read like the others (read_json's limits), not by FastAPI.

    @app.post("/v1/erp/applied-counts", tags=["audit"], response_model=AppliedCounts,
              responses=_problem_responses(*_AUTH, *_BODY, 422, 503),
              openapi_extra=_json_body("AppliedCountsBody"),
              summary="How many times the ERP applied each movement")
    async def applied_counts(
        request: Request, who: Annotated[Principal, Depends(need("audit:read"))]
    ) -> AppliedCounts:
        """For checkers: asked of the ERP itself (its bookings, 0 for never booked, and its
        deliveries received, redeliveries included)."""
        body = parse_body(AppliedCountsBody, read_json(await request.body(), json_limits))
        answer = await run_().partners.applied(body.movement_ids)
        return AppliedCounts(counts=answer.counts, received=answer.received)

    @app.get("/v1/status", tags=["audit"], responses=_problem_responses(*_AUTH),
             summary="Backlog, lag and dead letters per consumer; bus counters")
    async def get_status(
        who: Annotated[Principal, Depends(need("audit:read"))]
    ) -> dict[str, Any]:
        engine, runner = eng(), run_()
        doc = engine.status()
        doc["background_failures"] = runner.failures
        doc["erp_posting"] = {"calls": runner.erp_posts, "failed_calls": runner.erp_post_failures}
        doc["outbox"]["failed_calls"] = runner.call_failures
        doc["reconcile_skipped"] = runner.reconcile_skipped
        doc["event_loop_lag_s"] = runner.loop_lag_s
        return doc

    # -- operations --------------------------------------------------------------------------

    @app.get("/v1/dead-letters", tags=["operations"], response_model=DeadLetterList,
             responses=_problem_responses(*_AUTH, 422), summary="Dead letters, oldest first")
    async def get_dead_letters(
        who: Annotated[Principal, Depends(need("dead_letters:read"))],
        consumer: Annotated[str | None, Query(max_length=64)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> DeadLetterList:
        dls = eng().dead_letters(consumer)
        return DeadLetterList(total=len(dls), items=[_dead_letter_view(d)
                                                     for d in dls[offset:offset + limit]])

    @app.post("/v1/dead-letters/{dead_letter_id:path}/requeue", status_code=202,
              tags=["operations"], response_model=Requeued,
              responses=_problem_responses(*_AUTH, *_BODY, 404, 422),
              openapi_extra=_json_body("RequeueBody", required=False),
              summary="Deliver a dead letter again")
    async def requeue(
        dead_letter_id: str, request: Request,
        who: Annotated[Principal, Depends(need("dead_letters:write"))],
    ) -> Requeued:
        """A consumer's dead letter is redelivered as it was (fix the cause first); the
        consumer's inbox still guarantees it is applied once. An ingress dead letter needs
        the corrected envelope in the body."""
        raw = await request.body()
        body = parse_body(RequeueBody, read_json(raw, json_limits)) if raw else None
        engine = eng()
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
              responses=_problem_responses(*_AUTH, *_BODY, 503),
              summary="Reconcile ERP against WMS now")
    async def reconcile(
        who: Annotated[Principal, Depends(need("reconcile:write"))]
    ) -> ReconcileView:
        """The core's level-triggered reconciler over the ERP's stock (asked over HTTP: 503
        while the ERP does not answer), the WMS view and the movements the ERP has not
        booked. Repairs are proposed, not applied."""
        result = await run_().reconcile()
        ordered = sorted(result.breaks, key=lambda b: (b.explained, -abs(b.residual), b.key))
        return ReconcileView(
            **divergence(result),
            breaks=[BreakView(key=b.key, kind=b.kind.value, erp_qty=b.erp_qty,
                              wms_qty=b.wms_qty, in_flight_units=b.in_flight_units,
                              residual=b.residual, severity=b.severity.value, age_s=b.age_s)
                    for b in ordered[:100]],
            proposed_repairs=[a.reason for a in result.audit[:100]],
        )

    @app.put("/v1/admin/faults/{system}", tags=["operations"], response_model=FaultState,
             responses=_problem_responses(*_AUTH, *_BODY, 422, 503),
             openapi_extra=_json_body("Fault"),
             summary="Flip a partner twin's fault switch: up, down, slow, flaky")
    async def put_fault(
        system: Annotated[PartnerName, Path(description="erp or wms")], request: Request,
        who: Annotated[Principal, Depends(need("faults:write"))],
    ) -> FaultState:
        """Forwarded to the partner (a `twin twins` server, or the twins in process). down:
        every call refused; slow: each call waits latency_s; flaky: a failure_rate share of
        calls fail, half after the work was done. The core keeps accepting, retries with
        backoff, and dead-letters what outlasts its attempts."""
        body = parse_body(Fault, read_json(await request.body(), json_limits))
        state = await run_().partners.set_fault(system, body)
        eng().on_publish()
        return state

    @app.get("/v1/admin/faults/{system}", tags=["operations"], response_model=FaultState,
             responses=_problem_responses(*_AUTH, 422, 503),
             summary="A partner twin's fault switch and its call counts")
    async def get_fault(
        system: Annotated[PartnerName, Path(description="erp or wms")],
        who: Annotated[Principal, Depends(need("faults:write"))],
    ) -> FaultState:
        return await run_().partners.fault(system)

    # -- probes and metrics ------------------------------------------------------------------

    @app.get("/healthz", tags=["probes"], response_model=Health)
    async def healthz() -> Health:
        """The process is alive and serving."""
        return Health(status="ok")

    @app.get("/readyz", tags=["probes"], response_model=Health,
             responses={503: {"model": Health, "description": "Not ready (a Health body)"}})
    async def readyz() -> Response:
        """The store is open, the bus recovered and the delivery loop healthy."""
        runner = held.runner
        if not held.ready or runner is None:
            return JSONResponse(Health(status="not ready", detail="starting or stopping")
                                .model_dump(), status_code=503)
        if runner.storage_error is not None:
            return JSONResponse(Health(status="not ready", detail="the store is failing "
                                       f"({runner.storage_error}); retrying, nothing "
                                       "acknowledged is lost").model_dump(),
                                status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})
        return JSONResponse(Health(status="ok").model_dump())

    @app.get("/metrics", tags=["probes"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus "
                              "text format"}})
    async def metrics() -> Response:
        return Response(_render_metrics(registry, held, gate), media_type=CONTENT_TYPE)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, summary=app.summary,
                              routes=app.routes)
            schemas = doc.setdefault("components", {}).setdefault("schemas", {})
            for model in (Movement, SalesOrder, Shipment, ShipmentMilestone, ProblemBody,
                          AppliedCountsBody, RequeueBody, Fault):
                js = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(js.pop("$defs", {}))
                schemas[model.__name__] = js
            schemas["MovementBatch"] = {
                "type": "object", "required": ["movements"], "additionalProperties": False,
                "properties": {"movements": {
                    "type": "array", "minItems": 1, "maxItems": settings.batch_max,
                    "items": {"$ref": "#/components/schemas/Movement"}}},
            }
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _by(label: str, values: Mapping[str, float]) -> dict[Labels, float]:
    return {((label, k),): float(v) for k, v in values.items()}


def _render_metrics(registry: Registry, held: _Holder, gate: Gatekeeper) -> str:
    engine, runner = held.engine, held.runner
    gauges: list[tuple[str, str, dict[Labels, float]]] = [
        ("twin_ready", "1 when /readyz answers 200.",
         {(): float(held.ready and runner is not None and runner.storage_error is None)}),
    ]
    counters: list[tuple[str, str, dict[Labels, float]]] = [
        ("twin_auth_rejections_total", "Requests refused by status (401, 403, 429).",
         _by("status", gate.rejected)),
        ("twin_rate_limited_total", "Requests refused with 429, by calling system.",
         _by("system", gate.limited)),
    ]
    if engine is not None:
        now = engine.clock.now()
        status = engine.status()
        consumers = status["consumers"]
        gauges += [
            ("twin_consumer_backlog", "Messages queued for a consumer, not yet done.",
             _by("consumer", {c: v["backlog"] for c, v in consumers.items()})),
            ("twin_consumer_lag_seconds", "Age of a consumer's oldest unfinished message.",
             _by("consumer", {c: v["lag_s"] for c, v in consumers.items()})),
            ("twin_dead_letters", "Dead letters waiting, by consumer.",
             _by("consumer", {**{c: v["dead_letters"] for c, v in consumers.items()},
                              "ingress": status["ingress_dead_letters"]})),
            ("twin_outbox_open_calls", "Partner calls written to the outbox and not yet "
             "answered.", {(): float(len(engine.desk.open_calls))}),
            ("twin_event_loop_lag_seconds", "Worst event-loop lag over the last 5 s: how "
             "long a ready request waits for the loop.",
             {(): runner.loop_lag_s if runner else 0.0}),
            ("twin_uptime_seconds", "Seconds since the engine started.",
             {(): now - engine.started_at}),
        ]
        last = engine.last_reconcile
        if last is not None:
            d = last.divergence
            gauges += [
                ("twin_divergence_units", "Sum over rows of |ERP - WMS| at the last "
                 "reconciliation.", {(): float(d.divergence_units)}),
                ("twin_divergence_in_flight_units", "Part of the divergence that movements "
                 "in flight explain.", {(): float(d.in_flight_units)}),
                ("twin_divergence_unexplained_units", "Part no movement in flight explains.",
                 {(): float(d.unexplained_units)}),
                ("twin_skus_out_of_sync", "Rows whose ERP and WMS on-hand differ.",
                 {(): float(d.skus_out_of_sync)}),
            ]
        counters += [
            ("twin_bus_events_total", "Bus counters since the process started, by event.",
             _by("event", status["counters"])),
            ("twin_bus_outcomes_total", "Delivery outcomes since start (applied, skipped, "
             "retry, dead).", _by("outcome", status["outcomes"])),
            ("twin_reconcile_runs_total", "Reconciliation runs since start.",
             {(): float(engine.reconcile_runs)}),
            ("twin_idempotent_replays_total", "Responses replayed for a repeated "
             "Idempotency-Key.", {(): float(engine.idempotency.replays)}),
            ("twin_idempotency_conflicts_total", "Idempotency-Key reused with another body.",
             {(): float(engine.idempotency.conflicts)}),
            ("twin_background_failures_total", "Background steps that raised.",
             {(): float(runner.failures if runner else 0)}),
            ("twin_erp_posting_calls_total", "Posting calls to the ERP, by result.",
             {(("result", "ok"),): float(runner.erp_posts if runner else 0),
              (("result", "failed"),): float(runner.erp_post_failures if runner else 0)}),
        ]
        wal = status["wal_checkpoints"]
        if wal is not None:
            gauges.append(("twin_sqlite_wal_frames", "Pages in the SQLite write-ahead log at "
                           "the last background checkpoint.", {(): float(wal["log_frames"])}))
            counters.append(("twin_sqlite_wal_checkpoints_total", "Background WAL checkpoint "
                             "rounds, by result.",
                             {(("result", "ok"),): float(wal["checkpoints"]),
                              (("result", "failed"),): float(wal["failures"])}))
    return registry.render(gauges=gauges, counters=counters)
