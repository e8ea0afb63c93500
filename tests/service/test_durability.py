"""Exactly-once effect across duplicates, dead letters, requeues and restarts, checked with
the core's history checker against the ERP twin's applied counts read back from the store."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from integration_core.bus import SQLiteStore
from integration_core.checker import check
from integration_core.clock import ManualClock
from integration_core.service import runner
from tests.service.helpers import (
    SKU,
    Api,
    expand,
    make_settings,
    movement,
    order,
    running,
    shipment,
)

pytestmark = pytest.mark.anyio


async def test_same_movement_id_many_times_is_applied_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db")
    async with running(settings) as api:
        codes = [(await api.post("/v1/movements", movement("m1", quantity=4))).status_code
                 for _ in range(3)]
        assert codes == [202, 200, 200]
        r = await api.post("/v1/movements:batch", {"movements": [movement("m1", quantity=4)]})
        assert r.json()["duplicates"] == 1
        await api.drain()
    async with running(settings) as api:  # the dedupe horizon outlives the process
        assert (await api.post("/v1/movements", movement("m1", quantity=4))).status_code == 200
        await api.drain()
        assert await api.applied(["m1"]) == {"m1": 1}
        inv = (await api.get(f"/v1/inventory/{SKU}")).json()
        assert inv["erp_on_hand"] == inv["wms_on_hand"] == 4


async def wait_for_dead_letters(api: Api, n: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        doc = (await api.get("/v1/dead-letters")).json()
        if doc["total"] >= n:
            return list(doc["items"])
        assert time.monotonic() < deadline, f"{doc['total']} dead letters, expected {n}"
        await asyncio.sleep(0.01)


async def test_erp_outage_dead_letters_then_requeue_applies_once(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db", retry_max_attempts=3)) as api:
        await api.post("/v1/movements", movement("before", quantity=10))
        await api.drain()
        await api.put("/v1/admin/faults/erp", {"mode": "down"})
        ids = [f"m{i}" for i in range(5)]
        for mid in ids:
            assert (await api.post("/v1/movements", movement(mid, quantity=2))).status_code \
                == 202
        dead = await wait_for_dead_letters(api, 5)
        assert {d["message_id"] for d in dead} == {f"inventory.movement:{m}" for m in ids}
        assert {(d["consumer"], d["cause_type"], d["attempts"]) for d in dead} \
            == {("erp", "TransientError", 3)}
        assert dead[0]["envelope"]["payload"]["movement_id"] in ids
        # The ERP answers no reads while down; once up, the dead-lettered movements are not
        # in flight (nothing will deliver them): their units are unexplained.
        assert (await api.post("/v1/reconcile", as_="admin")).status_code == 503
        await api.put("/v1/admin/faults/erp", {"mode": "up"})
        rec = (await api.post("/v1/reconcile", as_="admin")).json()
        assert (rec["unexplained_units"], rec["in_flight_units"]) == (10, 0)
        assert "twin_dead_letters{consumer=\"erp\"} 5" in (await api.http.get("/metrics")).text

        for d in dead:
            r = await api.post(f"/v1/dead-letters/{d['id']}/requeue", as_="admin")
            assert r.status_code == 202 and r.json() == {"id": d["id"], "status": "requeued"}
        await api.drain()
        assert (await api.get("/v1/dead-letters")).json()["total"] == 0
        # Requeueing twice is a 404, never a second application.
        assert (await api.post(f"/v1/dead-letters/{dead[0]['id']}/requeue",
                               as_="admin")).status_code == 404
        counts = await api.applied(["before", *ids])
        result = check(attempted=["before", *ids], acknowledged=["before", *ids],
                       applied=expand(counts))
        assert result.ok, result.summary()
        assert set(counts.values()) == {1}
        rec = (await api.post("/v1/reconcile", as_="admin")).json()
        assert rec["divergence_units"] == 0


async def test_shipment_for_an_unknown_order_waits_in_dead_letters(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        assert (await api.post("/v1/shipments/confirmations",
                               shipment("S-1", "O-9"))).status_code == 202
        (dl,) = await wait_for_dead_letters(api, 1)
        assert (dl["consumer"], dl["cause_type"], dl["attempts"]) == ("orders", "NotFound", 1)
        assert "O-9" in dl["cause_message"] and dl["correlation_id"] == "O-9"
        await api.stock()
        await api.post("/v1/orders", order("O-9"), as_="shop")
        await api.drain()
        r = await api.post(f"/v1/dead-letters/{dl['id']}/requeue", as_="admin")
        assert r.status_code == 202
        await api.drain()
        view = (await api.get("/v1/orders/O-9", as_="shop")).json()
        assert view["status"] == "shipped" and view["shipments"][0]["invoice_id"] == "INV-S-1"


async def test_restart_loses_nothing_acknowledged_and_applies_nothing_twice(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "t.db", retry_max_attempts=10_000)
    attempted: list[str] = []
    acked: list[str] = []
    async with running(settings) as api:
        for i in range(40):
            mid = f"early-{i}"
            attempted.append(mid)
            if (await api.post("/v1/movements", movement(mid, location=f"L{i % 3}"))
                    ).status_code in (200, 202):
                acked.append(mid)
        await api.drain()
        # The ERP goes down: what follows is acknowledged but still in flight at shutdown.
        await api.put("/v1/admin/faults/erp", {"mode": "down"})
        batch = [movement(f"late-{i}", location=f"L{i % 3}") for i in range(60)]
        attempted += [m["movement_id"] for m in batch]
        r = await api.post("/v1/movements:batch", {"movements": batch})
        acked += [i["movement_id"] for i in r.json()["items"] if i["status"] != "rejected"]
        doc = await api.status()
        assert doc["consumers"]["erp"]["backlog"] == 60
    # The clean stop saved where the ERP consumer stands: the next start reads the log from
    # the first late movement (position 41) on, not from the beginning.
    store = SQLiteStore(settings.db)
    assert store.subscription("erp") == (frozenset({"inventory.movement"}), 41)
    store.close()
    async with running(settings) as api:
        doc = await api.status()
        assert doc["consumers"]["erp"]["recovered_at_start"] == 60
        # The twins restarted with the service (in process): their switch is not durable.
        assert (await api.get("/v1/admin/faults/erp")).json()["mode"] == "up"
        await api.drain()
        counts = await api.applied(attempted)
        result = check(attempted=attempted, acknowledged=acked, applied=expand(counts))
        assert result.ok and result.applied == 100, result.summary()
        rec = (await api.post("/v1/reconcile", as_="admin")).json()
        assert rec["divergence_units"] == 0
        inv = (await api.get(f"/v1/inventory/{SKU}")).json()
        assert inv["erp_on_hand"] == inv["wms_on_hand"] == 100


async def test_saga_timeouts_fire_once_also_after_a_restart(tmp_path: Path) -> None:
    clock = ManualClock(1_800_000_000.0)
    settings = make_settings(tmp_path / "t.db")

    async def overdue(api: Api, oid: str) -> list[dict[str, Any]]:
        deadline = time.monotonic() + 5
        while True:
            view = (await api.get(f"/v1/orders/{oid}", as_="shop")).json()
            found = [x for x in view["exceptions"] if x["type"] == "overdue"]
            if found or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.02)

    async with running(settings, clock) as api:
        await api.stock()
        await api.post("/v1/orders", order("O-1"), as_="shop")
        await api.post("/v1/orders", order("O-2"), as_="shop")
        await api.drain()
        view = (await api.get("/v1/orders/O-1", as_="shop")).json()
        assert view["status"] == "in_fulfilment"
        due = view["pending_timeout"]["due_at"]
        clock.set(due + 1)  # two days later, the WMS has still not shipped O-1
        assert len(await overdue(api, "O-1")) == 1
    clock.advance(60)
    async with running(settings, clock) as api:
        # O-2's timer was pending at shutdown; the restarted desk reloads it from the store.
        assert len(await overdue(api, "O-2")) == 1
        assert len(await overdue(api, "O-1")) == 1  # and O-1's did not fire again
        fired = [t for t in (await api.get("/v1/orders/O-1", as_="shop")).json()["trace"]
                 if t["name"] == "saga.timeout"]
        assert len(fired) == 1


async def test_consumer_starts_advance_while_serving(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "ADVANCE_EVERY_S", 0.0)
    settings = make_settings(tmp_path / "t.db", idle_poll_s=0.01)
    async with running(settings) as api:
        r = await api.post("/v1/movements:batch",
                           {"movements": [movement(f"m{i}") for i in range(20)]})
        assert r.json()["accepted"] == 20
        await api.drain()
        store = SQLiteStore(settings.db)
        try:
            deadline = time.monotonic() + 5.0
            while store.subscription("erp") != (frozenset({"inventory.movement"}), 21):
                assert time.monotonic() < deadline, store.subscription("erp")
                await asyncio.sleep(0.01)
        finally:
            store.close()
