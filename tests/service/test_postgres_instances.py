"""Two service instances sharing one PostgreSQL schema (`Settings.instance_id`), in process,
calling one ERP and WMS twin: each accepts posts, the owner of a key's partition delivers it,
every movement is booked once, an order placed on one instance runs its saga wherever its
partition lives, reconciliation finds no divergence, and when one instance stops the other
takes its partitions at once (a clean stop gives them up). Process kills, pauses and a
database restart under load are `loadtests/pg_faults.py`'s (``make loadtest-pg``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from integration_core.service import Settings, create_app
from loadtests.pg import PgServer
from sim.live import create_twins_app
from tests.service.helpers import PARTNER_KEY, Api, make_settings, movement, order

pytestmark = pytest.mark.anyio


def shared(tmp_path: Path, server: PgServer, schema: str, name: str) -> Settings:
    return make_settings(tmp_path / f"{name}.db", store=server.url, store_schema=schema,
                         instance_id=name, lease_ttl_s=1.0)


@asynccontextmanager
async def instances(settings: list[Settings]) -> AsyncIterator[tuple[list[Api],
                                                                       AsyncExitStack]]:
    """Apps started on one twins app (one ERP for all); the exit stack stops them."""
    twins = create_twins_app(settings[0].db.with_name("twins.db"), PARTNER_KEY)
    try:
        async with AsyncExitStack() as stack:
            apis = []
            for s in settings:
                app = create_app(s, partner_transport=httpx.ASGITransport(app=twins))
                inner = AsyncExitStack()
                await inner.enter_async_context(app.router.lifespan_context(app))
                http = await inner.enter_async_context(httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://twin"))
                stack.push_async_callback(inner.aclose)
                apis.append(Api(http))
                apis[-1].stop = inner.aclose  # type: ignore[attr-defined]
            yield apis, stack
    finally:
        twins.state.close()


async def drained(apis: list[Api], timeout_s: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        docs = [await a.status() for a in apis]
        if all(d["drained"] for d in docs):
            return docs
        if time.monotonic() > deadline:
            raise AssertionError(f"not drained: {[d.get('instance') for d in docs]}")
        await asyncio.sleep(0.05)


async def owned(api: Api) -> list[int]:
    parts: list[int] = (await api.status())["instance"]["owned"]
    return parts


async def until(check: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_two_instances_split_the_work_and_book_every_movement_once(
        tmp_path: Path, pg_server: PgServer, pg_schema: str) -> None:
    names = ["a", "b"]
    async with instances([shared(tmp_path, pg_server, pg_schema, n) for n in names]) as (
            apis, _):
        a, b = apis

        async def split() -> bool:
            pa, pb = await owned(a), await owned(b)
            return len(pa) == len(pb) == 32 and not set(pa) & set(pb)

        await until(split)
        ids = [f"m{i}" for i in range(200)]
        for i, mid in enumerate(ids):  # every SKU's movements through both instances
            r = await apis[i % 2].post("/v1/movements", movement(
                mid, sku=f"SKU-{i % 20:05d}", quantity=1 + i % 3))
            assert r.status_code == 202, r.text
        r = await b.post("/v1/movements:batch", {"movements": [
            movement(f"n{i}", sku=f"SKU-{i % 20:05d}") for i in range(100)]})
        assert r.status_code == 202 and r.json()["accepted"] == 100
        placed = await a.post("/v1/orders", order("o-1"), as_="shop")
        assert placed.status_code == 202, placed.text
        docs = await drained(apis)
        assert sum(d["instance"]["tail_behind"] for d in docs) <= 0
        counts = await a.applied(ids + [f"n{i}" for i in range(100)])
        assert set(counts.values()) == {1}, counts
        # The order's saga ran on its partition's owner; both instances can read it.
        views = [(await x.get("/v1/orders/o-1")).json() for x in apis]
        assert views[0]["status"] == views[1]["status"] != "placed", views[0]
        rec = (await b.post("/v1/reconcile", as_="admin")).json()
        assert rec["divergence_units"] == 0 and rec["unexplained_units"] == 0, rec
        # A clean stop gives the leases up: the other owns everything at its next heartbeat.
        await b.stop()  # type: ignore[attr-defined]
        await until(lambda: _all(a), timeout_s=5.0)
        r = await a.post("/v1/movements", movement("last", sku="SKU-00003"))
        assert r.status_code == 202
        await drained([a])
        assert (await a.applied(["last"])) == {"last": 1}


async def _all(api: Api) -> bool:
    return len(await owned(api)) == 64


def test_the_instance_settings_come_from_env_and_need_a_store() -> None:
    env = {"TWIN_API_KEY_ADMIN": "a" * 20, "TWIN_STORE": "postgresql://twin@db:5432/twin",
           "TWIN_INSTANCE_ID": "east-1", "TWIN_LEASE_TTL_S": "2.5"}
    s = Settings.from_env(env)
    assert (s.instance_id, s.lease_ttl_s) == ("east-1", 2.5)
    assert Settings.from_env({**env, "TWIN_INSTANCE_ID": ""}).instance_id is None
    with pytest.raises(ValueError, match="instance_id: several instances share"):
        Settings.from_env({k: v for k, v in env.items() if k != "TWIN_STORE"})
    with pytest.raises(ValueError, match="instance_id"):
        Settings.from_env({**env, "TWIN_INSTANCE_ID": "no spaces"})
    with pytest.raises(ValueError, match="lease_ttl_s"):
        Settings.from_env({**env, "TWIN_LEASE_TTL_S": "0.1"})
