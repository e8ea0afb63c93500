"""The live service on PostgreSQL (`Settings.store`): the bus and the Idempotency-Key records
in one schema of a throwaway server (tests/conftest.py `pg_server`), nothing in the SQLite file.

The key behaviours of the SQLite path, on PostgreSQL: a movement accepted and booked once by
the ERP twin, the same id again a duplicate, other content under it a 409; Idempotency-Key
replays and conflicts; a restart of the service keeping everything; and a database restart
ridden out: 503 problem+json with Retry-After while it is away, then recovery without
restarting the service, and nothing acknowledged lost or applied twice.

In process (the app's lifespan and an httpx ASGI client, `tests.service.helpers.running`);
`test_postgres_serve.py` runs `twin serve --store` as a process.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from integration_core.envelope import MOVEMENT
from integration_core.service import Settings
from loadtests.pg import PgServer
from tests.service.helpers import Api, make_settings, movement, order, running

pytestmark = pytest.mark.anyio


def pg_settings(tmp_path: Path, server: PgServer, schema: str, **overrides: Any) -> Settings:
    return make_settings(tmp_path / "t.db", store=server.url, store_schema=schema, **overrides)


def logged_movements(server: PgServer, schema: str) -> list[str]:
    """Movement ids in the bus log, read from PostgreSQL itself (one row per append)."""
    with psycopg.connect(server.dsn) as conn:
        rows = conn.execute(
            f'SELECT envelope::jsonb -> \'payload\' ->> \'movement_id\' FROM "{schema}".messages '
            "WHERE type = %s ORDER BY position", (MOVEMENT,)).fetchall()
    return [r[0] for r in rows]


async def test_a_movement_is_booked_once_its_duplicate_answered_and_a_conflict_is_409(
        tmp_path: Path, pg_server: PgServer, pg_schema: str) -> None:
    async with running(pg_settings(tmp_path, pg_server, pg_schema)) as api:
        r = await api.post("/v1/movements", movement("m1", quantity=3))
        assert r.status_code == 202 and r.json()["status"] == "accepted", r.text
        again = await api.post("/v1/movements", movement("m1", quantity=3))
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
        other = await api.post("/v1/movements", movement("m1", quantity=4))
        assert other.status_code == 409
        assert other.headers["content-type"] == "application/problem+json"
        batch = await api.post("/v1/movements:batch", {"movements": [
            movement("m2", quantity=5), movement("m1", quantity=3), movement("m3", quantity=7),
            movement("m2", quantity=6)]})
        doc = batch.json()
        assert batch.status_code == 202, batch.text
        assert (doc["accepted"], doc["duplicates"], doc["rejected"]) == (2, 1, 1)
        await api.drain()
        assert await api.applied(["m1", "m2", "m3", "m4"]) == {"m1": 1, "m2": 1, "m3": 1,
                                                                "m4": 0}
        inv = (await api.get("/v1/inventory/SKU-00001")).json()
        assert inv["erp_on_hand"] == 3 + 5 + 7
    # The state is PostgreSQL's: each movement logged there once; no SQLite file was made.
    assert logged_movements(pg_server, pg_schema) == ["m1", "m2", "m3"]
    assert not (tmp_path / "t.db").exists()


async def test_idempotency_records_are_in_postgres_and_survive_a_restart(
        tmp_path: Path, pg_server: PgServer, pg_schema: str) -> None:
    settings = pg_settings(tmp_path, pg_server, pg_schema)
    h = {"Idempotency-Key": "batch-7"}
    batch = {"movements": [movement("m1"), movement("m2")]}
    async with running(settings) as api:
        first = await api.post("/v1/movements:batch", batch, headers=h)
        assert first.status_code == 202 and first.json()["accepted"] == 2
        again = await api.post("/v1/movements:batch", batch, headers=h)
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        placed = await api.post("/v1/orders", order("O-1"), as_="shop", headers=h)
        assert placed.status_code == 202  # keys are scoped per calling system
        await api.drain()
    with psycopg.connect(pg_server.dsn) as conn:
        rows = conn.execute(f'SELECT system, key, status FROM "{pg_schema}".idempotency '
                            "ORDER BY system").fetchall()
    assert rows == [("shop", "batch-7", 202), ("wms", "batch-7", 202)]

    async with running(settings) as api:  # a new service on the same schema
        again = await api.post("/v1/movements:batch", batch, headers=h)
        assert again.content == first.content
        assert again.headers["idempotent-replayed"] == "true"
        r = await api.post("/v1/movements:batch", {"movements": [movement("m3")]}, headers=h)
        assert r.status_code == 409
        # Without the key the bus still knows the ids: duplicates, not bookings.
        r = await api.post("/v1/movements", movement("m1"))
        assert r.status_code == 200 and r.json()["status"] == "duplicate"
        await api.drain()
        assert await api.applied(["m1", "m2"]) == {"m1": 1, "m2": 1}
        assert (await api.get("/v1/orders/O-1", as_="shop")).status_code == 200


async def wait_for(api: Api, path: str, status: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (await api.http.get(path)).status_code != status:
        assert time.monotonic() < deadline, f"{path} did not answer {status} in {timeout_s} s"
        await asyncio.sleep(0.05)


async def test_a_database_restart_is_an_outage_then_recovery_without_restarting_the_service(
        tmp_path: Path, pg_server: PgServer, pg_schema: str) -> None:
    settings = pg_settings(tmp_path, pg_server, pg_schema)
    async with running(settings) as api:
        assert (await api.post("/v1/movements", movement("m1"))).status_code == 202
        await api.drain()
        pg_server.stop("immediate")  # a crash: no checkpoint, WAL replay on start
        try:
            refused = [
                await api.post("/v1/movements", movement("m2")),
                await api.post("/v1/movements:batch", {"movements": [movement("m3")]}),
                await api.post("/v1/orders", order("O-1"), as_="shop",
                               headers={"Idempotency-Key": "o1"}),
            ]
            for r in refused:
                assert r.status_code == 503, r.text
                assert r.headers["content-type"] == "application/problem+json"
                assert int(r.headers["retry-after"]) > 0
                assert "postgres" in r.json()["detail"]
            assert (await api.http.get("/healthz")).status_code == 200  # still serving
        finally:
            pg_server.start()
        # Same process, same app: the store reconnects on its next call.
        r = await api.post("/v1/movements", movement("m2"))
        assert r.status_code == 202, r.text
        r = await api.post("/v1/movements:batch", {"movements": [movement("m3"),
                                                                 movement("m1")]})
        assert r.status_code == 202 and r.json()["accepted"] == 1, r.text
        placed = await api.post("/v1/orders", order("O-1"), as_="shop",
                                headers={"Idempotency-Key": "o1"})
        assert placed.status_code == 202, placed.text
        await api.drain()
        await wait_for(api, "/readyz", 200)
        assert await api.applied(["m1", "m2", "m3"]) == {"m1": 1, "m2": 1, "m3": 1}
    assert logged_movements(pg_server, pg_schema) == ["m1", "m2", "m3"]


def test_the_store_setting_comes_from_env_is_checked_and_keeps_its_password_secret() -> None:
    env = {"TWIN_API_KEY_ADMIN": "a" * 20,
           "TWIN_STORE": "postgresql://twin:s3cret-pw@db.example:5432/twin",
           "TWIN_STORE_SCHEMA": "tenant_a"}
    s = Settings.from_env(env)
    assert s.postgres_url == env["TWIN_STORE"] and s.store_schema == "tenant_a"
    assert "s3cret-pw" not in repr(s) and "s3cret-pw" not in s.model_dump_json()
    assert s.store_label == ("PostgreSQL postgresql://twin:***@db.example:5432/twin "
                             "schema tenant_a")
    assert Settings.from_env({"TWIN_API_KEY_ADMIN": "a" * 20}).postgres_url is None
    with pytest.raises(ValueError, match="store: a PostgreSQL URL"):
        Settings.from_env({**env, "TWIN_STORE": "mysql://db/twin"})
