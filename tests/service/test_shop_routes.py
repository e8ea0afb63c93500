"""The shop's cancel and return routes (`service/routes/shop.py`), in process against the
live twins: the saga's cancellation through the WMS and the ERP's credit memo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.service.helpers import SKU, Api, make_settings, order, running, shipment

pytestmark = pytest.mark.anyio


def events(view: dict[str, Any]) -> list[str]:
    return [t["name"] for t in view["trace"] if t["kind"] == "event"]


async def in_fulfilment(api: Api, oid: str) -> None:
    await api.stock()
    assert (await api.post("/v1/orders", order(oid), as_="shop")).status_code == 202
    await api.drain()
    assert (await api.get(f"/v1/orders/{oid}", as_="shop")).json()["status"] == "in_fulfilment"


async def test_a_cancel_after_release_goes_through_the_wms_and_once_only(
        tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        await in_fulfilment(api, "O-1")
        r = await api.post("/v1/orders/O-1/cancel", {"reason": "changed my mind"}, as_="shop")
        assert r.status_code == 202, r.text
        assert r.json()["message_id"] == "order.cancel_requested:O-1"
        await api.drain()
        view = (await api.get("/v1/orders/O-1", as_="shop")).json()
        assert view["status"] == "cancelled"
        assert events(view)[-2:] == ["cancel_requested", "cancel_confirmed"]
        assert any(t["name"] == "partner.reply" and t["detail"] == "from cancel_release"
                   for t in view["trace"])
        again = await api.post("/v1/orders/O-1/cancel", None, as_="shop")  # no body
        assert again.status_code == 200 and again.json()["status"] == "duplicate"


async def test_cancel_and_return_refuse_what_cannot_be_so(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        r = await api.post("/v1/orders/O-404/cancel", {}, as_="shop")
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("application/problem+json")
        await in_fulfilment(api, "O-1")
        r = await api.post("/v1/orders/O-1/cancel", {"order_id": "O-2"}, as_="shop")
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "order_id"
        r = await api.post("/v1/orders/O-1/returns", {"rma_id": "R-1", "lines": [
            {"sku": SKU, "quantity_base": 0}]}, as_="shop")
        assert r.status_code == 422 and "lines" in r.json()["errors"][0]["field"]
        r = await api.post("/v1/orders/O-1/cancel", {}, as_="wms")  # outside its scopes
        assert r.status_code == 403


async def test_a_return_of_a_completed_order_gets_its_credit_memo(tmp_path: Path) -> None:
    async with running(make_settings(tmp_path / "t.db")) as api:
        await in_fulfilment(api, "O-1")
        await api.post("/v1/shipments/confirmations", shipment("S-1", "O-1"))
        await api.post("/v1/carrier/milestones", {
            "shipment_id": "S-1", "tracking": "T-S-1", "milestone": "delivered",
            "at": "2026-01-06T10:00:00Z"}, as_="carrier")
        await api.drain()
        assert (await api.get("/v1/orders/O-1", as_="shop")).json()["status"] == "completed"
        rma = {"rma_id": "RMA-1", "lines": [{"sku": SKU, "quantity_base": 2}],
               "authorized_at": "2026-01-08T10:00:00Z"}
        r = await api.post("/v1/orders/O-1/returns", rma, as_="shop")
        assert r.status_code == 202 and r.json()["id"] == "RMA-1"
        await api.drain()
        view = (await api.get("/v1/orders/O-1", as_="shop")).json()
        assert view["status"] == "completed"
        assert events(view)[-2:] == ["return_authorized", "credit_memo_posted"]
        assert (await api.post("/v1/orders/O-1/returns", rma, as_="shop")).status_code == 200
        changed = {**rma, "lines": [{"sku": SKU, "quantity_base": 1}]}
        assert (await api.post("/v1/orders/O-1/returns", changed, as_="shop")).status_code == 409
