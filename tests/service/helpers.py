"""In-process harness for the live service: the app's lifespan and an httpx ASGI client.

Starlette's TestClient is not used: with this starlette it warns that it wants `httpx2`, and
pytest runs with warnings as errors. httpx's own ASGITransport plus the app's lifespan context
does the same job, in the test's event loop, so background tasks run while the test awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from integration_core.clock import Clock
from integration_core.service import SYSTEMS, ApiKey, Settings, create_app
from integration_core.service.config import DEFAULT_SCOPES
from sim.live import create_twins_app

KEYS: dict[str, str] = {s: f"test-{s}-key-0123456789abcdef" for s in SYSTEMS}
PARTNER_KEY = "test-partner-key-0123456789abcdef"
SKU = "SKU-00001"


def make_settings(db: Path, rates: dict[str, tuple[float, int]] | None = None,
                  **overrides: Any) -> Settings:
    keys = tuple(
        ApiKey(system=s, key=SecretStr(KEYS[s]), scopes=DEFAULT_SCOPES[s],
               **({} if rates is None or s not in rates else
                  {"rate_per_s": rates[s][0], "burst": rates[s][1]}))
        for s in SYSTEMS
    )
    fields: dict[str, Any] = {
        "db": db, "keys": keys, "catalog_skus": 50, "coalesce_s": 0.0, "idle_poll_s": 0.05,
        "intake_workers": 0,  # in the loop: no process to spawn per test (test_intake has one)
        "reconcile_interval_s": 3600.0, "retry_max_attempts": 3,
        "retry_initial_delay_s": 0.01, "retry_max_delay_s": 0.05,
        "partner_key": SecretStr(PARTNER_KEY),
    }
    fields.update(overrides)
    return Settings(**fields)


def movement(mid: str, kind: str = "receipt", quantity: int | str = 1, sku: str = SKU,
             location: str = "A-01", **extra: Any) -> dict[str, Any]:
    return {"movement_id": mid, "kind": kind, "sku": sku, "location": location,
            "quantity": str(quantity), "occurred_at": "2026-01-05T08:00:00Z", **extra}


def order(oid: str, sku: str = SKU, quantity: int = 3) -> dict[str, Any]:
    return {"order_id": oid, "customer_id": "C-1", "placed_at": "2026-01-05T08:00:00Z",
            "lines": [{"line_no": 1, "sku": sku, "quantity": str(quantity),
                       "unit_price": "2.50"}]}


def shipment(sid: str, oid: str, sku: str = SKU, quantity: int = 3) -> dict[str, Any]:
    return {"shipment_id": sid, "order_id": oid, "warehouse_id": "WH1", "tracking": f"T-{sid}",
            "lines": [{"order_line_no": 1, "sku": sku, "quantity_base": quantity}],
            "shipped_at": "2026-01-05T12:00:00Z"}


class Api:
    """Calls as one of the systems (`as_`), with its key."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def post(self, path: str, body: Any = None, as_: str = "wms",
                   headers: dict[str, str] | None = None) -> httpx.Response:
        h = {"X-API-Key": KEYS[as_], **(headers or {})}
        return await self.http.post(path, json=body, headers=h)

    async def put(self, path: str, body: Any, as_: str = "admin") -> httpx.Response:
        return await self.http.put(path, json=body, headers={"X-API-Key": KEYS[as_]})

    async def get(self, path: str, as_: str = "admin", **params: Any) -> httpx.Response:
        return await self.http.get(path, headers={"X-API-Key": KEYS[as_]}, params=params)

    async def status(self) -> dict[str, Any]:
        r = await self.get("/v1/status")
        assert r.status_code == 200, r.text
        doc: dict[str, Any] = r.json()
        return doc

    async def stock(self, quantity: int = 100, sku: str = SKU, location: str = "A-01") -> None:
        """Receive `quantity` units, so that orders find stock to allocate: the WMS view holds
        them once its consumer applied the receipt (the ERP need not be up)."""
        r = await self.post("/v1/movements", movement(f"stock-{sku}-{location}-{quantity}",
                                                      quantity=quantity, sku=sku,
                                                      location=location))
        assert r.status_code in (200, 202), r.text
        deadline = time.monotonic() + 5.0
        while (await self.status())["consumers"]["wms"]["backlog"]:
            assert time.monotonic() < deadline, "the receipt was not applied within 5 s"
            await asyncio.sleep(0.01)

    async def drain(self, timeout_s: float = 5.0) -> dict[str, Any]:
        """Wait until every consumer's backlog and the outbox are empty (bounded)."""
        deadline = time.monotonic() + timeout_s
        while True:
            doc = await self.status()
            if doc["drained"]:
                return doc
            if time.monotonic() > deadline:
                raise AssertionError(f"not drained after {timeout_s} s: {doc['consumers']}")
            await asyncio.sleep(0.01)

    async def applied(self, ids: list[str]) -> dict[str, int]:
        r = await self.post("/v1/erp/applied-counts", {"movement_ids": ids}, as_="admin")
        assert r.status_code == 200, r.text
        counts: dict[str, int] = r.json()["counts"]
        return counts


def twins_db(settings: Settings) -> Path:
    return settings.db.with_name(settings.db.name + ".twins.db")


@asynccontextmanager
async def running(settings: Settings, clock: Clock | None = None) -> AsyncIterator[Api]:
    """The app started (store opened, bus recovered, background tasks running) until exit,
    calling the ERP and WMS twins in process (their state next to the service's file)."""
    twins = create_twins_app(twins_db(settings), PARTNER_KEY)
    app = create_app(settings, clock, partner_transport=httpx.ASGITransport(app=twins))
    transport = httpx.ASGITransport(app=app)
    try:
        async with (app.router.lifespan_context(app),
                    httpx.AsyncClient(transport=transport, base_url="http://twin") as http):
            yield Api(http)
    finally:
        twins.state.close()


def expand(counts: dict[str, int]) -> list[str]:
    """Applied counts as the checker's history: an id applied twice appears twice."""
    return [mid for mid, n in counts.items() for _ in range(n)]
