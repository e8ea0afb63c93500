"""Happy paths of the HTTP API, in process."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.service.helpers import (
    KEYS,
    SKU,
    make_settings,
    movement,
    order,
    running,
    shipment,
)

pytestmark = pytest.mark.anyio


async def test_movement_is_acknowledged_then_applied_by_the_erp(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        r = await api.post("/v1/movements", movement("m1", quantity=2, unit="CS"))
        assert r.status_code == 202
        assert r.json() == {"status": "accepted", "id": "m1",
                            "message_id": "inventory.movement:m1", "position": 1}
        await api.post("/v1/movements", movement("m2", kind="pick", quantity=5))
        await api.drain()
        inv = (await api.get(f"/v1/inventory/{SKU}", as_="wms")).json()
        assert inv["erp_on_hand"] == inv["wms_on_hand"] == 24 - 5
        assert inv["in_flight_units"] == inv["unexplained_units"] == 0
        assert inv["rows"] == [{"location": "A-01", "lot": None, "erp_on_hand": 19,
                                "wms_on_hand": 19, "in_flight_units": 0,
                                "unexplained_units": 0}]
        assert await api.applied(["m1", "m2", "never"]) == {"m1": 1, "m2": 1, "never": 0}


async def test_inventory_shows_in_flight_while_the_erp_is_down(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db", retry_max_attempts=1000,
                             retry_initial_delay_s=2.0, retry_max_delay_s=2.0)
    async with running(settings) as api:
        assert (await api.put("/v1/admin/faults/erp", {"mode": "down"})).json()["mode"] == "down"
        await api.post("/v1/movements", movement("m1", quantity=7))
        await api.post("/v1/movements", movement("m2", quantity=3, location="B-02"))
        # The ERP answers no reads either while down.
        r = await api.get(f"/v1/inventory/{SKU}", as_="erp")
        assert r.status_code == 503 and "erp" in r.json()["detail"]
        while (await api.status())["erp_posting"]["failed_calls"] < 1:
            await asyncio.sleep(0.01)
        # Back up, but the refused postings wait out their backoff: in flight, not lost.
        await api.put("/v1/admin/faults/erp", {"mode": "up"})
        inv = (await api.get(f"/v1/inventory/{SKU}", as_="erp")).json()
        assert (inv["erp_on_hand"], inv["wms_on_hand"], inv["in_flight_units"]) == (0, 10, 10)
        assert inv["in_flight_movements"] == 2 and inv["unexplained_units"] == 0
        await api.drain(timeout_s=10)
        inv = (await api.get(f"/v1/inventory/{SKU}", as_="erp")).json()
        assert (inv["erp_on_hand"], inv["wms_on_hand"], inv["in_flight_units"]) == (10, 10, 0)


async def test_a_lost_answer_is_redelivered_and_booked_once(tmp_path: Path) -> None:
    # One movement per posting call, so the switch decides for each.
    settings = make_settings(tmp_path / "t.db", retry_max_attempts=1000, erp_batch=1)
    async with running(settings) as api:
        r = await api.put("/v1/admin/faults/erp", {"mode": "flaky", "failure_rate": 0.6})
        assert r.status_code == 200 and r.json()["failure_rate"] == 0.6
        ids = [f"f{i}" for i in range(40)]
        for mid in ids:
            await api.post("/v1/movements", movement(mid, location=f"L-{mid}"))
        await api.drain(timeout_s=20)
        r = await api.post("/v1/erp/applied-counts", {"movement_ids": ids}, as_="admin")
        doc = r.json()
        assert doc["counts"] == dict.fromkeys(ids, 1)
        fault = (await api.get("/v1/admin/faults/erp")).json()
        # Some answers were lost after the ERP booked: those movements came again, as
        # duplicates the ERP recognised.
        assert fault["lost_answers"] > 0
        assert sum(doc["received"].values()) > len(ids)
        inv = (await api.get(f"/v1/inventory/{SKU}")).json()
        assert inv["erp_on_hand"] == inv["wms_on_hand"] == 40


async def test_batch_path_with_a_colon_routes_to_the_batch_endpoint(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        batch = {"movements": [movement(f"b{i}") for i in range(5)]}
        r = await api.post("/v1/movements:batch", batch)
        assert r.status_code == 202, r.text
        assert r.json()["accepted"] == 5
        # Percent-encoded colon reaches the same route.
        r = await api.post("/v1/movements%3Abatch", {"movements": [movement("b9")]})
        assert r.status_code == 202 and r.json()["accepted"] == 1
        # The single-movement route is not confused with it.
        assert (await api.post("/v1/movements", movement("s1"))).json()["id"] == "s1"
        spec = (await api.get("/openapi.json")).json()
        assert "/v1/movements:batch" in spec["paths"] and "/v1/movements" in spec["paths"]
        await api.drain()
        assert (await api.get(f"/v1/inventory/{SKU}")).json()["erp_on_hand"] == 7


async def test_order_to_ship_flow_and_its_trace(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        await api.stock()
        r = await api.post("/v1/orders", order("O-1"), as_="shop")
        assert r.status_code == 202 and r.json()["message_id"] == "order.placed:O-1"
        await api.drain()
        view = (await api.get("/v1/orders/O-1", as_="shop")).json()
        assert view["status"] == "in_fulfilment" and view["waiting_on"] == "wms"
        r = await api.post("/v1/shipments/confirmations", shipment("S-1", "O-1"))
        assert r.status_code == 202
        await api.drain()
        view = (await api.get("/v1/orders/O-1", as_="shop")).json()
        assert view["status"] == "shipped"
        assert view["shipments"] == [{"shipment_id": "S-1", "tracking": "T-S-1",
                                      "invoice_id": "INV-S-1", "delivered": False}]
        r = await api.post("/v1/carrier/milestones", {
            "shipment_id": "S-1", "tracking": "T-S-1", "milestone": "delivered",
            "at": "2026-01-06T10:00:00Z"}, as_="carrier")
        assert r.status_code == 202
        await api.drain()
        view = (await api.get("/v1/orders/O-1", as_="erp")).json()
        assert view["status"] == "completed" and view["waiting_on"] is None
        messages = [t for t in view["trace"] if t["kind"] == "message"]
        # The partners' answers come back through the outbox as messages of their own.
        assert [(m["name"], m["detail"]) for m in messages] == [
            ("order.placed", "from shop"), ("partner.reply", "from credit_check"),
            ("partner.reply", "from release"), ("shipment.confirmed", "from wms"),
            ("partner.reply", "from invoice"), ("shipment.milestone", "from carrier")]
        assert {m["correlation_id"] for m in messages} == {"O-1"}
        assert all(m["at"] > 0 and m["occurred_at"] for m in messages)
        events = [t["name"] for t in view["trace"] if t["kind"] == "event"]
        assert events == ["validated", "credit_approved", "allocated", "release_accepted",
                          "packed", "label_created", "shipment_confirmed", "invoiced",
                          "delivered"]


async def test_order_not_yet_handled_is_reported_as_received(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db", retry_max_attempts=1000)) as api:
        await api.put("/v1/admin/faults/erp", {"mode": "down"})  # the credit check fails
        await api.post("/v1/orders", order("O-2"), as_="shop")
        view = (await api.get("/v1/orders/O-2", as_="shop")).json()
        assert view["status"] == "received"
        assert [t["kind"] for t in view["trace"]] == ["queued"]


async def test_probes_and_metrics(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        assert (await api.http.get("/healthz")).json() == {"status": "ok", "detail": ""}
        assert (await api.http.get("/readyz")).status_code == 200
        await api.post("/v1/movements", movement("m1"))
        await api.post("/v1/movements", movement("m1"))
        await api.http.post("/v1/movements", json=movement("m2"))  # no key: 401
        await api.drain()
        await api.post("/v1/reconcile", as_="admin")
        r = await api.http.get("/metrics")
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = r.text
        for line in [
            'twin_http_requests_total{method="POST",route="/v1/movements",status="202"} 1',
            'twin_http_requests_total{method="POST",route="/v1/movements",status="200"} 1',
            'twin_http_requests_total{method="POST",route="/v1/movements",status="401"} 1',
            'twin_bus_events_total{event="duplicate_publishes"} 1',
            'twin_consumer_backlog{consumer="erp"} 0',
            'twin_divergence_unexplained_units 0',
            'twin_auth_rejections_total{status="401"} 1',
            'twin_ready 1',
        ]:
            assert line in text, line
        assert 'twin_http_request_duration_seconds_bucket{method="POST",route="/v1/movements",' \
               'le="+Inf"} 3' in text
        assert 'twin_consumer_lag_seconds{consumer="erp"}' in text
        assert 'twin_sqlite_wal_checkpoints_total{result="failed"} 0' in text
        assert "twin_sqlite_wal_frames " in text
        for key in KEYS.values():
            assert key not in text


async def test_reconcile_reports_divergence_and_breaks(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "t.db", retry_max_attempts=1000,
                             retry_initial_delay_s=2.0, retry_max_delay_s=2.0)
    async with running(settings) as api:
        await api.post("/v1/movements", movement("m1", quantity=4))
        await api.drain()
        await api.put("/v1/admin/faults/erp", {"mode": "down"})
        await api.post("/v1/movements", movement("m2", quantity=6))
        while (await api.status())["erp_posting"]["failed_calls"] < 1:
            await asyncio.sleep(0.01)
        await api.put("/v1/admin/faults/erp", {"mode": "up"})  # m2 waits out its backoff
        r = await api.post("/v1/reconcile", as_="admin")
        assert r.status_code == 200
        doc = r.json()
        assert (doc["divergence_units"], doc["in_flight_units"], doc["unexplained_units"]) \
            == (6, 6, 0)
        assert doc["breaks"][0]["key"] == f"{SKU}@A-01" and doc["breaks"][0]["residual"] == 0
