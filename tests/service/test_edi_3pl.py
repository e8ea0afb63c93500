"""Releases to an EDI 3PL: the order desk's release carried as an X12 940 to the live 3PL
twin, its 997 read back, the twin's 945 posted to POST /v1/edi/x12 invoicing the order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from integration_core.bus import MemoryStore
from integration_core.edi import Gateway, MemorySeen, OrderRelease, ReleaseAction, parse
from integration_core.engine.partners import Release, ReleaseLine
from integration_core.errors import TransientError
from integration_core.models import Catalog, Item, Shipment, UnitConversion
from integration_core.service import create_app
from integration_core.service.partners_x12 import (
    CANCEL_REFUSED,
    X12Partners,
    partners_for,
    read_997,
    release_940,
)
from sim.live import create_twins_app
from sim.live.edi_3pl import LiveEdi3pl
from tests.edi.documents import x940
from tests.service.helpers import KEYS, PARTNER_KEY, SKU, Api, make_settings, order, twins_db

pytestmark = pytest.mark.anyio
X12 = "application/edi-x12"
WHEN = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


@dataclass
class Landscape:
    api: Api
    twins: httpx.AsyncClient
    edi_3pl: LiveEdi3pl
    twins_app: FastAPI
    core: httpx.AsyncClient
    """The 3PL's client of the service (as the WMS: edi:write)."""

    def connect(self) -> None:
        self.twins_app.state.core = self.core

    async def ship(self, order_id: str | None = None) -> dict[str, object]:
        r = await self.twins.post("/3pl/ship", json={"order_id": order_id},
                                  headers={"X-Partner-Key": PARTNER_KEY})
        assert r.status_code == 200, r.text
        doc: dict[str, object] = r.json()
        return doc

    async def order(self, oid: str) -> dict[str, object]:
        r = await self.api.get(f"/v1/orders/{oid}", as_="shop")
        assert r.status_code == 200, r.text
        doc: dict[str, object] = r.json()
        return doc


@asynccontextmanager
async def landscape(tmp_path: Path, connect: bool = True) -> AsyncIterator[Landscape]:
    """The service with its WMS an EDI 3PL (the in-process twins' /3pl), and the 3PL's
    945s going back to the service's own POST /v1/edi/x12 (as the WMS: edi:write)."""
    settings = make_settings(tmp_path / "t.db", edi_3pl_url="http://twins/3pl")
    twins = create_twins_app(twins_db(settings), PARTNER_KEY)
    app = create_app(settings, partner_transport=httpx.ASGITransport(app=twins))
    core = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://twin",
                             headers={"X-API-Key": KEYS["wms"]})
    twins.state.core = None
    try:
        async with (app.router.lifespan_context(app),
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                      base_url="http://twin") as http,
                    httpx.AsyncClient(transport=httpx.ASGITransport(app=twins),
                                      base_url="http://twins") as to_twins):
            land = Landscape(Api(http), to_twins, twins.state.edi_3pl, twins, core)
            if connect:
                land.connect()
            yield land
    finally:
        await core.aclose()
        twins.state.close()


async def test_a_940_in_is_released_to_the_edi_3pl_as_a_940_and_its_945_invoices_the_order(
        tmp_path: Path) -> None:
    async with landscape(tmp_path) as land:
        api = land.api
        await api.stock()
        r = await api.http.post("/v1/edi/x12", content=x940("O-3PL", SKU, quantity=4),
                                headers={"X-API-Key": KEYS["wms"], "Content-Type": X12})
        assert r.status_code == 200 and r.headers["EDI-Outcome"] == "accepted"
        await api.drain()
        view = await land.order("O-3PL")
        assert view["status"] == "in_fulfilment" and view["waiting_on"] == "wms"
        held = land.edi_3pl.order("O-3PL")  # the 3PL got our 940 and acknowledged it
        assert held is not None and held["state"] == "released" and held["partner"] == "TWIN"
        assert held["lines"] == [{"line_no": 1, "sku": SKU, "quantity": "4", "unit": "EA"}]

        shipped = await land.ship()
        assert shipped == {"shipped": ["O-3PL"], "posted": {"O-3PL": 200}}
        await api.drain()
        view = await land.order("O-3PL")
        assert view["status"] == "shipped" and view["waiting_on"] == "carrier"  # invoiced
        assert view["shipments"] == [{"shipment_id": "SHP-O-3PL", "tracking": None,
                                      "invoice_id": "INV-SHP-O-3PL", "delivered": False}]
        assert land.edi_3pl.outbox() == {}
        r = await api.get("/v1/dead-letters", consumer="ingress")
        assert r.json()["items"] == []


async def test_an_order_placed_over_json_goes_out_as_a_940_and_a_945_resent_is_a_duplicate(
        tmp_path: Path) -> None:
    async with landscape(tmp_path, connect=False) as land:
        api = land.api
        await api.stock()
        r = await api.post("/v1/orders", order("O-J1", quantity=2), as_="shop")
        assert r.status_code == 202, r.text
        await api.drain()
        assert land.edi_3pl.order("O-J1") is not None
        # the 3PL ships, but cannot reach the core: the 945 waits in its outbox
        assert (await land.ship("O-J1"))["posted"] == {"O-J1": "no core configured"}
        (raw,) = land.edi_3pl.outbox().values()
        assert (await land.order("O-J1"))["status"] == "in_fulfilment"
        land.connect()
        assert await land.ship() == {"shipped": [], "posted": {"O-J1": 200}}
        await api.drain()
        assert (await land.order("O-J1"))["status"] == "shipped"
        # the same 945 again (a 3PL's resend): the core recognises the interchange
        again = await land.core.post("/v1/edi/x12", content=raw,
                                     headers={"Content-Type": X12})
        assert again.status_code == 200 and again.headers["EDI-Outcome"] == "duplicate"


async def test_a_3pl_that_is_down_gets_the_940_again_later(tmp_path: Path) -> None:
    async with landscape(tmp_path) as land:
        api = land.api
        await api.stock()
        down = await land.twins.put("/wms/fault", json={"mode": "down"},
                                    headers={"X-Partner-Key": PARTNER_KEY})
        assert down.status_code == 200, down.text
        r = await api.post("/v1/orders", order("O-D1"), as_="shop")
        assert r.status_code == 202
        deadline = time.monotonic() + 5.0
        while not (await land.twins.get("/wms/fault", headers={"X-Partner-Key": PARTNER_KEY})
                   ).json()["refused"]:  # until the 940 was sent and refused
            assert time.monotonic() < deadline, "the release was not attempted within 5 s"
            await asyncio.sleep(0.02)
        assert land.edi_3pl.order("O-D1") is None
        await land.twins.put("/wms/fault", json={"mode": "up"},
                             headers={"X-Partner-Key": PARTNER_KEY})
        await api.drain(timeout_s=10.0)
        assert land.edi_3pl.order("O-D1") is not None
        assert (await land.order("O-D1"))["waiting_on"] == "wms"


# -- the 940 and the 997, without HTTP -------------------------------------------------------

CATALOG = Catalog([Item(sku="SKU-1", conversions=(UnitConversion(unit="CS", factor=12),))])


def test_the_release_940_carries_base_units_the_customer_and_the_warehouse() -> None:
    release = Release(order_id="O-1", lines=[ReleaseLine(line_no=2, sku="SKU-1",
                                                         quantity_base=24)])
    placed = {"customer_id": "C-9", "placed_at": "2026-02-01T08:00:00Z", "ship_from": "WH2",
              "requested_date": "2026-02-03"}
    raw = release_940(release, placed, CATALOG, 41, "TWIN", "THREEPL", WHEN)
    receipt = Gateway(MemorySeen(), catalog=CATALOG).receive(raw, 0.0)
    assert receipt.errors == () and receipt.ack is not None
    (msg,) = receipt.messages
    assert isinstance(msg, OrderRelease)
    assert (msg.order.order_id, msg.order.customer_id, msg.order.ship_from) == (
        "O-1", "C-9", "WH2")
    assert [(ln.line_no, ln.sku, ln.quantity_base, ln.unit) for ln in msg.order.lines] == [
        (2, "SKU-1", 24, "EA")]
    ic = parse(raw).interchange
    assert ic is not None and ic.control == "000000041"
    assert read_997(receipt.ack, 41).accepted


def test_a_rejecting_997_or_ta1_is_a_refusal_and_a_foreign_reply_is_transient() -> None:
    bad = release_940(Release(order_id="O-2", lines=[ReleaseLine(line_no=1, sku="SKU-1",
                                                                 quantity_base=3)]),
                      None, CATALOG, 7, "TWIN", "THREEPL", WHEN).replace(b"W76*3", b"W76*4")
    receipt = Gateway(MemorySeen()).receive(bad, 0.0)
    assert receipt.ack is not None
    answer = read_997(receipt.ack, 7)
    assert not answer.accepted and answer.reason.startswith("997 AK9 R")
    assert "AK5*R" in answer.reason
    with pytest.raises(TransientError, match="acknowledges group 7, ours was 8"):
        read_997(receipt.ack, 8)
    with pytest.raises(TransientError, match="not X12"):
        read_997(b"<html>", 7)
    envelope = bad.replace(b"IEA*1*000000007", b"IEA*1*000000070")
    ta1 = Gateway(MemorySeen()).receive(envelope, 0.0).ack
    assert ta1 is not None
    refused = read_997(ta1, 7)
    assert not refused.accepted and refused.reason.startswith("TA1 R 001")


# -- the 3PL twin on its own --------------------------------------------------------------------


def test_the_twin_releases_an_order_once_replays_its_997_and_keeps_the_945_until_taken(
        tmp_path: Path) -> None:
    twin = LiveEdi3pl(tmp_path / "twins.db")
    try:
        first = x940("O-T1", SKU, quantity=5, control=11)
        got = twin.receive(first, 0.0)
        assert got.accepted and got.ack is not None and b"AK5*A" in got.ack
        assert twin.receive(first, 1.0) == got  # the same interchange: the same answer
        again = twin.receive(x940("O-T1", SKU, quantity=9, control=12), 2.0)
        assert again.accepted  # acknowledged, but the order is released once
        held = twin.order("O-T1")
        assert held is not None and held["lines"][0]["quantity"] == "5"
        assert held["partner"] == "THREEPL"  # who sent the 940 (tests.edi's sender)
        assert twin.ship(now=3.0) == ["O-T1"] and twin.ship(now=4.0) == []
        (raw,) = twin.outbox().values()
        receipt = Gateway(MemorySeen()).receive(raw, 5.0)
        assert receipt.errors == ()
        (shipment,) = receipt.messages
        assert isinstance(shipment, Shipment)
        assert (shipment.order_id, shipment.shipment_id, shipment.warehouse_id) == (
            "O-T1", "SHP-O-T1", "3PL-EDI")
        assert [(ln.order_line_no, ln.sku, ln.quantity_base) for ln in shipment.lines] == [
            (1, SKU, 5)]
        assert twin.outbox() == {"O-T1": raw}  # the same bytes until the core took them
        twin.delivered("O-T1")
        assert twin.outbox() == {}
        cancel = twin.receive(x940("O-T2", SKU, control=13), 6.0)
        assert cancel.accepted
        twin.receive(x940("O-T2", SKU, control=14, action=ReleaseAction.CANCEL), 7.0)
        assert (twin.order("O-T2") or {})["state"] == "cancelled" and twin.ship("O-T2") == []
    finally:
        twin.close()


async def test_a_cancellation_is_refused_without_a_call_so_the_3pl_and_the_core_agree(
        tmp_path: Path) -> None:
    def no_call(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no partner call expected, got {request.url}")

    settings = make_settings(tmp_path / "t.db", edi_3pl_url="http://twins/3pl")
    partners = partners_for(settings, MemoryStore(), CATALOG, httpx.MockTransport(no_call))
    try:
        assert isinstance(partners, X12Partners)
        answer = await partners.perform("cancel_release", {"order_id": "O-1", "reason": "x"})
        assert answer == {"cancelled": False, "reason": CANCEL_REFUSED}
    finally:
        await partners.close()
    plain = partners_for(make_settings(tmp_path / "u.db"), MemoryStore(), CATALOG)
    assert not isinstance(plain, X12Partners)
    await plain.close()
