"""The FastAPI app: HTTP API v1 over the engine, with keys, scopes, rate limits, idempotency,
problem details and Prometheus metrics.

`create_app` builds the app, its lifespan, middleware and exception handlers, and includes
the route groups of `integration_core.service.routes`, one module each.

Every endpoint is `async def` and calls the engine synchronously, without awaiting in
between: requests are handled one at a time on the event loop's thread, which is what the
single SQLite connection needs and what makes an idempotency check-then-write atomic. An
acknowledgement (202) is sent only after the message's transaction committed.
"""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from integration_core.clock import Clock
from integration_core.errors import InteropError, NotFound
from integration_core.service.auth import Gatekeeper
from integration_core.service.config import Settings
from integration_core.service.edi import EdiBodyLimit
from integration_core.service.feed import FeedWatcher
from integration_core.service.intake import Intake
from integration_core.service.live import LiveEngine
from integration_core.service.metrics import Registry
from integration_core.service.partners_x12 import partners_for
from integration_core.service.problems import (
    FieldError,
    Problem,
    field_errors,
    not_found,
    validation_problem,
)
from integration_core.service.routes import (
    audit,
    carrier,
    dashboard,
    edi,
    inventory,
    operations,
    probes,
    shop,
    wms,
)
from integration_core.service.routes.context import RETRY_AFTER_S, Context, Holder
from integration_core.service.routes.openapi import schema_builder
from integration_core.service.runner import Runner

_GROUPS = (wms, edi, shop, carrier, inventory, audit, operations, probes, dashboard)
"""The route groups, in the order the OpenAPI document lists them."""


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


# -- the core's errors as problems --------------------------------------------------------------


def _interop_problem(exc: InteropError) -> Problem:
    """`exc.field`, when the core set it, is the field the problem names. A 404's detail is
    the bare message (the field is named beside it); other statuses keep the whole text."""
    field, message = exc.field, exc.message or str(exc)
    if isinstance(exc, NotFound):
        return not_found(message, field)
    status = exc.status_hint if 400 <= exc.status_hint < 600 else 500
    errors = [FieldError(field=field, message=message)] if field else []
    slug = {409: "conflict", 422: "validation", 503: "unavailable"}.get(status, "error")
    # 503: our store or a partner is away for now; the client's retry is safe (deduped).
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return Problem(status, slug, type(exc).__name__, str(exc), errors, headers)


# -- the app ------------------------------------------------------------------------------------


def create_app(settings: Settings, clock: Clock | None = None,
               partner_transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    """The service. Opening the store, recovering the bus and starting the background tasks
    happen in the app's lifespan, so nothing is opened until a server (or test) starts it.

    The ERP and WMS are called over HTTP at `settings.erp_url` / `wms_url`;
    `partner_transport` (e.g. an `httpx.ASGITransport` of `sim.live`'s twins) carries those
    calls in process instead of over a socket."""
    registry = Registry()
    registry.counter("twin_http_requests_total", "HTTP requests by method, route and status.")
    registry.histogram("twin_http_request_duration_seconds",
                       "HTTP request latency in seconds, by method and route.")
    held = Holder()
    ctx = Context(settings, held, Gatekeeper(settings.keys), registry, settings.json_limits())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = LiveEngine(settings, clock)
        partners = partners_for(settings, engine.store, engine.catalog, partner_transport)
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
        feed = None if settings.feed_dir is None else FeedWatcher(engine, settings,
                                                                  settings.feed_dir)
        if feed is not None:
            feed.start()
        app.state.feed = feed
        held.ready = True
        try:
            yield
        finally:
            held.ready = False
            if feed is not None:
                await feed.stop()
            await app.state.dashboard_hub.close()  # its streams end; its ticker stops
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
    # Added first, so it runs inside the metrics middleware: its refusals are counted too.
    app.add_middleware(EdiBodyLimit, limit=settings.max_body_bytes,
                       edi_limit=settings.max_edi_bytes,
                       by_path={"/v1/movements:batch": settings.batch_body_limit})
    app.add_middleware(MetricsMiddleware, registry=registry)

    # -- errors --------------------------------------------------------------------------------

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

    for group in _GROUPS:
        group.add_routes(app, ctx)
    app.openapi = schema_builder(app, settings.batch_max)  # type: ignore[method-assign]
    return app
