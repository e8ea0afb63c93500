"""Probes: liveness, readiness, and the Prometheus metrics."""

from collections.abc import Mapping

from fastapi import FastAPI, Response
from starlette.responses import JSONResponse

from integration_core.service.metrics import CONTENT_TYPE, Labels
from integration_core.service.routes.context import RETRY_AFTER_S, Context
from integration_core.service.schemas import Health


def add_routes(app: FastAPI, ctx: Context) -> None:
    held = ctx.held

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
        return Response(_render_metrics(ctx), media_type=CONTENT_TYPE)



def _by(label: str, values: Mapping[str, float]) -> dict[Labels, float]:
    return {((label, k),): float(v) for k, v in values.items()}


def _render_metrics(ctx: Context) -> str:
    held, gate = ctx.held, ctx.gate
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
    return ctx.registry.render(gauges=gauges, counters=counters)
