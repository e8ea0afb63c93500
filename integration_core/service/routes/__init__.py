"""The HTTP API's route groups, one module each; `create_app` includes them in this order.

- `wms`: movements (one, a batch) and shipment confirmations
- `shop`: orders placed and read back
- `carrier`: tracking milestones
- `inventory`: the ERP view, the WMS view and what is in flight, for one SKU
- `audit`: what the ERP applied; backlog and counters
- `operations`: dead letters, requeue, reconcile, the partners' fault switches
- `probes`: liveness, readiness, Prometheus metrics

Each exposes `add_routes(app, ctx)`, which declares its endpoints on the app; `ctx` (a
`context.Context`) holds what they need: the engine holder, the settings, the scope checks.
`openapi`, `acks` and `idempotent` hold what several groups share: the documented responses,
the acknowledgement of a posted message, and the Idempotency-Key replay.
"""

__all__: list[str] = []
